//! How far the projection has got, so a create can wait until its own event is applied.

use crate::write::LogPosition;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::watch;

/// A read-only view of the next offset the projector will apply, per partition.
#[derive(Clone)]
pub struct ProjectionProgress {
    next_offsets: watch::Receiver<BTreeMap<i32, i64>>,
}

impl ProjectionProgress {
    pub(super) fn new(next_offsets: watch::Receiver<BTreeMap<i32, i64>>) -> Self {
        Self { next_offsets }
    }

    /// Waits up to `timeout` until the record at `position` has been applied; returns whether it was.
    pub async fn wait_until_applied(&self, position: LogPosition, timeout: Duration) -> bool {
        let mut next_offsets = self.next_offsets.clone();
        let applied = async {
            next_offsets
                .wait_for(|next| {
                    next.get(&position.partition)
                        .is_some_and(|&next| next > position.offset)
                })
                .await
                .is_ok()
        };
        tokio::time::timeout(timeout, applied)
            .await
            .unwrap_or(false)
    }
}
