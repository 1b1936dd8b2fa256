//! `customer-registry repartition`: the way to more (or fewer) partitions. A topic's partitioning
//! is fixed for its life (see [`crate::log::Partitioning`]), so growing means a new topic: every
//! record is copied (see [`super::copy`]) to the partition the new count gives its customer.

use super::copy::{copy_log, CopyPlan};
use super::AuditError;
use crate::config::RepartitionSettings;
use std::process::ExitCode;

/// Copies `--from` into `--to` (created with `settings.partitions` partitions when
/// missing, or resumed when a copy stopped part-way), then checks that both give the same
/// registry. Exit code 0 when they do, 1 when they differ.
///
/// # Errors
/// [`AuditError`] (exit code 2) when a topic cannot be read or written, or the target holds
/// records that were not copied from the source.
pub async fn repartition(settings: &RepartitionSettings) -> Result<ExitCode, AuditError> {
    copy_log(CopyPlan {
        settings: settings.copy.clone(),
        partitions: settings.partitions,
        rewrite: None,
    })
    .await
}
