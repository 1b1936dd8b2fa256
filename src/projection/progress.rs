//! How far the projection has got, so a request can wait until what it needs has been applied.

use super::position::LogPosition;
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
