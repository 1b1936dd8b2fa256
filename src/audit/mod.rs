//! Tools for auditors and downstream teams, all built on replaying the event log: rebuild the read
//! model, verify it, export the registry as it stood at a moment, follow the log as consumers see
//! it, and read one customer's history back from Kafka.
//!
//! Exit codes of the subcommands: 0 success, 1 drift found (`audit` only), 2 error.

mod export;
pub mod log;
mod rebuild;
mod tail;
mod verify;

pub use export::export;
pub use rebuild::rebuild;
pub use tail::tail;
pub use verify::audit;

use crate::read_model::{self, FlushPolicy, ReadModel, ReadModelError, ReadModelWriter};
use crate::write::TopicError;
use rdkafka::error::KafkaError;
use std::path::{Path, PathBuf};

/// Why a tool could not do its work (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// Kafka could not be read.
    #[error("reading the event log failed: {0}")]
    Kafka(#[from] KafkaError),
    /// The topic is unreachable or missing.
    #[error(transparent)]
    Topic(#[from] TopicError),
    /// The topic does not exist.
    #[error("topic {0} does not exist")]
    NoTopic(String),
    /// A read model failed.
    #[error(transparent)]
    ReadModel(#[from] ReadModelError),
    /// A record named by the read model is no longer in the log.
    #[error("the record at partition {partition}, offset {offset} is not in the log")]
    Missing {
        /// Its partition.
        partition: i32,
        /// Its offset.
        offset: i64,
    },
    /// The broker did not deliver a record in time.
    #[error("reading partition {partition}, offset {offset} timed out: the broker did not answer")]
    TimedOut {
        /// Its partition.
        partition: i32,
        /// Its offset.
        offset: i64,
    },
    /// The broker stopped delivering records mid-replay.
    #[error("the replay stalled after {read} of {total} records: the broker stopped answering")]
    Stalled {
        /// Records read.
        read: u64,
        /// Records expected.
        total: u64,
    },
    /// A file could not be written or moved.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The operating system's answer.
        source: std::io::Error,
    },
    /// An argument that cannot be used.
    #[error("{0}")]
    Usage(String),
}

impl AuditError {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> AuditError {
        let what = what.into();
        move |source| AuditError::Io { what, source }
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
