//! How far the projection has got, so a request can wait until what it needs has been applied.

use crate::log::LogPosition;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// A read-only view of the next offset the projector will apply, per partition.
#[derive(Clone)]
pub struct ProjectionProgress {
    next_offsets: watch::Receiver<BTreeMap<i32, i64>>,
    /// The end of the log when the projector started.
    log_end_at_start: LogPosition,
    /// Asks the projector to look for partitions added to the topic now.
    look_for_partitions: Arc<Notify>,
    /// How many looks for new partitions the projector has started, and finished.
    looks: watch::Receiver<(u64, u64)>,
}

impl ProjectionProgress {
    /// A view of the projector's `next_offsets`, whose log ended at `log_end_at_start` when it
    /// started; `look_for_partitions` asks it to look for new partitions, and `looks` counts the
    /// looks it started and finished.
    pub(crate) fn new(
        next_offsets: watch::Receiver<BTreeMap<i32, i64>>,
        log_end_at_start: LogPosition,
        look_for_partitions: Arc<Notify>,
        looks: watch::Receiver<(u64, u64)>,
    ) -> Self {
        Self {
            next_offsets,
            log_end_at_start,
            look_for_partitions,
            looks,
        }
    }

    /// Has the projector look for partitions added to the topic now, rather than at its next
    /// periodic look, and waits (up to `timeout`) until that look is done; answers whether every
    /// one of `wanted` is known then. For a client's position naming a partition added a moment
    /// ago, which another replica already found.
    pub async fn look_for(&self, wanted: &BTreeSet<i32>, timeout: Duration) -> bool {
        let mut looks = self.looks.clone();
        // A look under way may have read the topic before the request came: wait for one that
        // starts after it (the notification makes sure there is one).
        let (started, _) = *looks.borrow_and_update();
        self.look_for_partitions.notify_one();
        let looked =
            tokio::time::timeout(timeout, looks.wait_for(|&(_, finished)| finished > started))
                .await;
        looked.is_ok() && wanted.is_subset(&self.partitions())
    }

    /// Whether the projection has applied everything the log held when the projector started:
    /// until then, what it reflects may be older than what this replica showed before a crash.
    pub fn is_caught_up(&self) -> bool {
        self.log_end_at_start
            .is_reached_by(&self.next_offsets.borrow())
    }

    /// Waits until [`ProjectionProgress::is_caught_up`]; returns at once if the projector stops.
    pub async fn caught_up(&self) {
        let mut next_offsets = self.next_offsets.clone();
        let _ = next_offsets
            .wait_for(|next| self.log_end_at_start.is_reached_by(next))
            .await;
    }

    /// The end of the log when the projector started.
    pub fn log_end_at_start(&self) -> &LogPosition {
        &self.log_end_at_start
    }

    /// Every partition known to hold records: those of the log at start, and any applied since.
    pub fn partitions(&self) -> BTreeSet<i32> {
        let applied = self.next_offsets.borrow();
        self.log_end_at_start
            .partitions()
            .chain(applied.keys().copied())
            .collect()
    }

    /// The position the read model reflects now.
    pub fn position(&self) -> LogPosition {
        LogPosition::from_next_offsets(self.next_offsets.borrow().clone())
    }

    /// Waits up to `timeout` until the projection has reached `wanted`; returns whether it has.
    pub async fn wait_until_reached(&self, wanted: &LogPosition, timeout: Duration) -> bool {
        let mut next_offsets = self.next_offsets.clone();
        let reached = async {
            next_offsets
                .wait_for(|next| wanted.is_reached_by(next))
                .await
                .is_ok()
        };
        tokio::time::timeout(timeout, reached)
            .await
            .unwrap_or(false)
    }
}

/// `next_offsets` moved to each `(partition, next offset)` of `reached` where that is further,
/// and knowing every partition `reached` names (at 0 when it names it at 0): what reads wait on
/// only ever moves forward, and a partition the projector starts reading is known before any of
/// its records is applied, since a read may already name it.
pub(super) fn advance(
    next_offsets: &mut BTreeMap<i32, i64>,
    reached: impl IntoIterator<Item = (i32, i64)>,
) {
    for (partition, next) in reached {
        let at = next_offsets.entry(partition).or_insert(0);
        *at = (*at).max(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_moves_only_forward() {
        let mut next = BTreeMap::from([(0, 10), (1, 4)]);
        advance(&mut next, [(0, 7), (1, 9)]);
        assert_eq!(next, BTreeMap::from([(0, 10), (1, 9)]));
    }

    #[test]
    fn a_partition_added_to_the_topic_is_known_at_0_before_any_record_of_it_is_applied() {
        let mut next = BTreeMap::from([(0, 10)]);
        advance(&mut next, [(0, 0), (1, 0)]);
        assert_eq!(next, BTreeMap::from([(0, 10), (1, 0)]));
        advance(&mut next, [(1, 3)]);
        assert_eq!(next[&1], 3);
    }
}
