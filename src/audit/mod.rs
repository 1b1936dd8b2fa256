//! Tools for auditors and operators, all built on replaying the event log: rebuild the read
//! model, verify it (erasures included), export the registry as it stood at a moment, follow the
//! log as consumers see it, copy it into a topic with another partition count, list the
//! erasures the keys topic records; and snapshot a read model. (Reading the log itself, for them and for a customer's history, is [`crate::log`]'s.)
//!
//! Exit codes of the subcommands: 0 success, 1 drift found (`audit` only), 2 error.

mod copy;
mod erasures;
mod export;
mod ledger;
mod migrate;
mod rebuild;
mod repartition;
mod snapshot;
mod tail;
mod verify;

pub use export::export;
pub use ledger::erasures;
pub use migrate::migrate;
pub use rebuild::rebuild;
pub use repartition::repartition;
pub use snapshot::snapshot;
pub use tail::tail;
pub use verify::audit;

use crate::config::ToolSettings;
use crate::crypto::Encryption;
use crate::domain::Opener;
use crate::log::{EventLogSettings, LogReadError, TopicError, TopicLayout};
use crate::read_model::{self, FlushPolicy, ReadModel, ReadModelError, ReadModelWriter};
use rdkafka::error::KafkaError;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a tool could not do its work (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Kafka could not be read.
    #[error("reading the event log failed: {0}")]
    Kafka(#[from] KafkaError),
    /// The topic is unreachable or missing.
    #[error(transparent)]
    Topic(#[from] TopicError),
    /// The log could not be read.
    #[error(transparent)]
    Read(#[from] LogReadError),
    /// A read model failed.
    #[error(transparent)]
    ReadModel(#[from] ReadModelError),
    /// A file could not be written or moved.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The operating system's answer.
        source: std::io::Error,
    },
    /// A snapshot could not be written or read.
    #[error(transparent)]
    Snapshot(#[from] crate::read_model::SnapshotError),
    /// The running serve could not be asked.
    #[error(transparent)]
    Control(#[from] crate::control::ControlError),
    /// An argument that cannot be used.
    #[error("{0}")]
    Usage(String),
    /// The KEK file or the keys topic cannot be used.
    #[error("cannot use the data keys: {0}")]
    Keys(String),
}

/// The keys a tool that replays the log opens sealed events with: those of `kek_file`, or none
/// for a log that was never sealed. A sealed log (one with a keys topic) replayed without them
/// is refused: every sealed event would count as unreadable, and a rebuild would swap in a read
/// model without its customers.
async fn keys_for(
    kek_file: Option<&Path>,
    settings: &EventLogSettings,
    layout: &TopicLayout,
) -> Result<Encryption, AuditError> {
    match kek_file {
        Some(file) => Encryption::load(file, settings, layout, false)
            .await
            .map_err(AuditError::Keys),
        None => match crate::log::existing_keys_topic(settings, layout).await {
            Err(TopicError::Missing(_)) => Ok(Encryption::Off),
            _ => Err(AuditError::Usage(format!(
                "{} has a keys topic: its events are sealed; give the KEK file (--kek-file or \
                 REGISTRY_KEK_FILE)",
                settings.topic
            ))),
        },
    }
}

/// The opener of the replay tools (`rebuild`, `audit`, `export`): [`keys_for`] their settings.
async fn opener_for(
    tool: &ToolSettings,
    layout: &TopicLayout,
) -> Result<Arc<dyn Opener + Send + Sync>, AuditError> {
    let keys = keys_for(tool.kek_file.as_deref(), &tool.event_log.settings(), layout).await?;
    Ok(keys.opener())
}

impl AuditError {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> AuditError {
        let what = what.into();
        move |source| AuditError::Io { what, source }
    }
}

/// Prints a tool's report on stdout: as one JSON object with `--json`, for machines, else as
/// `text` says, for people.
fn print_outcome(report: &impl serde::Serialize, json: bool, text: impl FnOnce()) {
    if json {
        println!(
            "{}",
            serde_json::to_string(report).expect("a report serialises")
        );
    } else {
        text();
    }
}

/// The live read model's directory inside a data dir.
pub fn live_read_model_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("read-model")
}

/// Refuses a read model built from another log than the one named by the settings.
fn check_follows(model: &ReadModel, topic: &str, cluster: &str) -> Result<(), AuditError> {
    match model.bound_log()? {
        Some((bound_topic, bound_cluster)) if bound_topic != topic || bound_cluster != cluster => {
            Err(AuditError::Usage(format!(
                "the read model projects topic {bound_topic:?} on cluster {bound_cluster:?}, not \
                 topic {topic:?} on cluster {cluster:?}; check --topic and --kafka-bootstrap"
            )))
        }
        _ => Ok(()),
    }
}

/// A scratch read model that deletes its directory when dropped.
struct ScratchReadModel {
    model: ReadModel,
    writer: ReadModelWriter,
    dir: PathBuf,
}

impl ScratchReadModel {
    fn create(dir: PathBuf) -> Result<Self, AuditError> {
        let (model, writer) = read_model::open_with(&dir, FlushPolicy::replay())?;
        Ok(Self { model, writer, dir })
    }
}

impl Drop for ScratchReadModel {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
