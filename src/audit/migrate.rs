//! `customer-registry migrate --encrypt`: the upgrade path of a log written in plain text
//! (contract v1) to one whose personal fields are sealed (v2), so that erasure covers every
//! customer. The log is copied into a new topic (see [`super::copy`]: order, event ids and source
//! positions kept, resumable, checked): each plain event is sealed on its way under a data key of
//! its customer's, minted in the new topic's keys topic (acknowledged before the first event it
//! seals is sent, as `serve` does). Events sealed already, and records that hold no event, are
//! copied as they are, with the source's keys.

use super::copy::{copy_log, CopyPlan, Rewrite, Rewritten, SourceRecord};
use super::{keys_for, AuditError};
use crate::config::MigrateSettings;
use crate::crypto::{Encryption, Keys};
use crate::domain::{CustomerId, Opener, RegistryEvent, PLAIN_SCHEMA_VERSION};
use crate::log::{existing_topic, record_headers, Partitioning};
use serde::Deserialize;
use std::collections::HashSet;
use std::process::ExitCode;
use std::sync::Arc;

/// Copies `--from` into `--to` with every personal field sealed, then checks that
/// both give the same registry (each opened with its keys). Exit code 0 when they do, 1 when
/// they differ.
///
/// # Errors
/// [`AuditError`] (exit code 2) when a topic or the KEK file cannot be used, or the target holds
/// records that were not copied from the source.
pub async fn migrate(settings: &MigrateSettings) -> Result<ExitCode, AuditError> {
    let copying = &settings.copy;
    // The source must exist (the partition count is only for a topic to create).
    let source = copying.topic(&copying.from, 1);
    let source_layout = existing_topic(&source).await?;
    let source_opener = keys_for(Some(&settings.kek_file), &source, &source_layout)
        .await?
        .opener();
    let kek_file = settings.kek_file.clone();
    copy_log(CopyPlan {
        settings: copying.clone(),
        // The target keeps the source's partitioning: a migration changes values, not routes.
        partitions: source_layout.partitioning.count(),
        rewrite: Some(Box::new(move |target, layout| {
            let (kek_file, target, layout) = (kek_file.clone(), target.clone(), layout.clone());
            let source_opener = Arc::clone(&source_opener);
            Box::pin(async move {
                let keys = Encryption::load(&kek_file, &target, &layout, true)
                    .await
                    .map_err(AuditError::Keys)?;
                let Encryption::On(target_keys) = &keys else {
                    unreachable!("loading with create makes the keys topic")
                };
                let sealer = Sealer {
                    target_keys: Arc::clone(target_keys),
                    keys,
                    source_opener,
                    topic: target.topic.clone(),
                    partitioning: layout.partitioning,
                };
                Ok(Box::new(sealer) as Box<dyn Rewrite>)
            })
        })),
    })
    .await
}

/// Seals plain events on their way into the target.
struct Sealer {
    target_keys: Arc<Keys>,
    keys: Encryption,
    source_opener: Arc<dyn Opener + Send + Sync>,
    topic: String,
    partitioning: Partitioning,
}

/// The part of an envelope that tells a plain event from a sealed one.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Version {
    schema_version: u32,
}

impl Sealer {
    /// `event` sealed (its key minted already), with the headers of its sealed form.
    fn seal(&self, event: &RegistryEvent) -> Result<Rewritten, AuditError> {
        let payload = futures::executor::block_on(self.keys.encode(event))
            .map_err(|error| AuditError::Keys(error.to_string()))?;
        let headers = record_headers(
            event,
            payload.schema_version,
            &self.topic,
            self.partitioning,
        );
        Ok(Rewritten {
            payload: payload.bytes,
            headers,
        })
    }

    /// The plain event `record` holds, if it holds one.
    fn plain_event(record: &SourceRecord) -> Option<RegistryEvent> {
        let bytes = record.payload.as_deref()?;
        let version: Version = serde_json::from_slice(bytes).ok()?;
        if version.schema_version != PLAIN_SCHEMA_VERSION {
            return None;
        }
        RegistryEvent::decode(bytes).ok()
    }
}

impl Rewrite for Sealer {
    /// Seals the chunk's plain events, minting first, all at once, the keys of its customers
    /// that have none in the target yet.
    fn rewrite(&self, chunk: &[SourceRecord]) -> Result<Vec<Option<Rewritten>>, AuditError> {
        let events: Vec<Option<RegistryEvent>> = chunk.iter().map(Self::plain_event).collect();
        let customers: HashSet<CustomerId> = events
            .iter()
            .flatten()
            .filter(|event| !matches!(event, RegistryEvent::CustomerDeleted(_)))
            .map(RegistryEvent::customer_id)
            .collect();
        let minted = futures::executor::block_on(futures::future::join_all(
            customers
                .into_iter()
                .map(|customer| self.target_keys.key_for(customer)),
        ));
        for key in minted {
            key.map_err(|error| AuditError::Keys(error.to_string()))?;
        }
        events
            .into_iter()
            .map(|event| event.map(|event| self.seal(&event)).transpose())
            .collect()
    }

    fn openers(&self) -> (Arc<dyn Opener + Send + Sync>, Arc<dyn Opener + Send + Sync>) {
        (Arc::clone(&self.source_opener), self.keys.opener())
    }

    fn finish(&self) {
        self.keys.stop();
    }
}
