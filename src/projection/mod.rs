//! The projector: reads every partition of the topic from the offsets the read model stored and
//! applies each event, so the read model is a pure function of the log.
//!
//! The projector assigns itself partitions (no consumer group), so every replica keeps a full
//! projection of its own, and Kafka's committed offsets play no part: the next offset of each
//! partition lives in sled, written atomically with the changes it accounts for.

mod position;
mod progress;

pub use position::LogPosition;
pub use progress::ProjectionProgress;

use crate::domain::{EventDecodeError, RegistryEvent};
use crate::read_model::{ApplyOutcome, ReadModel, ReadModelError, RejectionKind};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

/// Why the projector stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The consumer could not be set up or assigned.
    #[error("cannot start consuming the topic: {0}")]
    Consumer(#[from] KafkaError),
    /// The read model failed; applying more would risk its consistency.
    #[error(transparent)]
    ReadModel(#[from] ReadModelError),
    /// The read model has applied records the log no longer has.
    #[error(
        "the read model has applied partition {partition} up to offset {next}, but the log ends at \
         {high}: the topic was recreated or truncated. Delete the data dir to rebuild from the log"
    )]
    AheadOfLog {
        /// The partition.
        partition: i32,
        /// The read model's next offset.
        next: i64,
        /// The log's end.
        high: i64,
    },
}

/// The assignment of `partitions` of `topic`, each from the read model's next offset, or from
/// the beginning for a partition it has never seen.
fn assignment(
    topic: &str,
    partitions: &[i32],
    next_offsets: &BTreeMap<i32, i64>,
) -> Result<TopicPartitionList, KafkaError> {
    let mut assignment = TopicPartitionList::new();
    for &partition in partitions {
        let start = next_offsets
            .get(&partition)
            .map_or(Offset::Beginning, |&next| Offset::Offset(next));
        assignment.add_partition_offset(topic, partition, start)?;
    }
    Ok(assignment)
}

/// How long a look for new partitions waits for metadata.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

/// How long start-up waits for a partition's offsets.
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(10);

/// Consumes the topic into the read model.
pub struct Projector {
    consumer: Arc<StreamConsumer>,
    topic: String,
    assigned: BTreeSet<i32>,
    partition_check: Duration,
    read_model: ReadModel,
    progress: watch::Sender<BTreeMap<i32, i64>>,
}

impl Projector {
    /// A projector over `partitions` of `topic`, starting each partition at the offset the read
    /// model stored (the beginning for a partition it has never seen), and looking for partitions
    /// added later every `partition_check`.
    ///
    /// # Errors
    /// [`ProjectionError`] when the consumer cannot be created or the stored offsets read.
    pub fn new(
        bootstrap: &str,
        topic: &str,
        partitions: &[i32],
        partition_check: Duration,
        read_model: ReadModel,
    ) -> Result<(Self, ProjectionProgress), ProjectionError> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            // librdkafka wants a group id even for self-assigned partitions; nothing is ever
            // committed under it, and no group is joined.
            .set("group.id", "customer-registry.projector")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("auto.offset.reset", "earliest")
            .set("allow.auto.create.topics", "false")
            .create()?;
        let next_offsets = read_model.next_offsets()?;
        // A read model ahead of the log means the log was recreated or truncated under it:
        // following it would skip records silently. (A blocking call, at start-up only.)
        for (&partition, &next) in &next_offsets {
            let (_, high) = consumer.fetch_watermarks(topic, partition, WATERMARK_TIMEOUT)?;
            if next > high {
                return Err(ProjectionError::AheadOfLog {
                    partition,
                    next,
                    high,
                });
            }
        }
        consumer.assign(&assignment(topic, partitions, &next_offsets)?)?;
        let (progress, watcher) = watch::channel(next_offsets);
        Ok((
            Self {
                consumer: Arc::new(consumer),
                topic: topic.to_owned(),
                assigned: partitions.iter().copied().collect(),
                partition_check,
                read_model,
                progress,
            },
            ProjectionProgress::new(watcher),
        ))
    }

    /// Applies events as they arrive until `shutdown` turns true.
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`] when the read model fails: the projector stops rather than
    /// skip an event it could not record.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), ProjectionError> {
        let mut partition_check = tokio::time::interval(self.partition_check);
        partition_check.set_missed_tick_behavior(MissedTickBehavior::Delay);
        partition_check.tick().await;
        loop {
            tokio::select! {
                // Only a stop is ever sent; a dropped sender means the same.
                _ = shutdown.changed() => return Ok(()),
                _ = partition_check.tick() => self.assign_new_partitions().await?,
                received = self.consumer.recv() => match received {
                    Ok(message) => self.project(&message)?,
                    // librdkafka reconnects by itself; a broker outage shows up here meanwhile.
                    Err(error) => tracing::warn!(%error, "consuming the event log failed; retrying"),
                },
            }
        }
    }

    /// Starts reading partitions added to the topic since the last look, from their beginning
    /// (or from where the read model stopped, should it have seen them before).
    async fn assign_new_partitions(&mut self) -> Result<(), ProjectionError> {
        let consumer = Arc::clone(&self.consumer);
        let topic = self.topic.clone();
        let looked = tokio::task::spawn_blocking(move || {
            consumer.fetch_metadata(Some(&topic), METADATA_TIMEOUT)
        })
        .await;
        let metadata = match looked {
            Ok(Ok(metadata)) => metadata,
            // The broker may be away; the next look will tell.
            Ok(Err(error)) => {
                tracing::debug!(%error, "cannot look for new partitions now");
                return Ok(());
            }
            Err(_) => return Ok(()),
        };
        let added: Vec<i32> = metadata
            .topics()
            .iter()
            .flat_map(|topic| topic.partitions().iter().map(|partition| partition.id()))
            .filter(|partition| !self.assigned.contains(partition))
            .collect();
        if added.is_empty() {
            return Ok(());
        }
        let next_offsets = self.read_model.next_offsets()?;
        self.consumer
            .incremental_assign(&assignment(&self.topic, &added, &next_offsets)?)?;
        tracing::info!(topic = %self.topic, ?added, "reading partitions added to the topic");
        self.assigned.extend(added);
        Ok(())
    }

    fn project(&self, message: &BorrowedMessage<'_>) -> Result<(), ProjectionError> {
        let (partition, offset) = (message.partition(), message.offset());
        apply_record(&self.read_model, partition, offset, message.payload())?;
        self.progress.send_modify(|next| {
            next.insert(partition, offset + 1);
        });
        Ok(())
    }
}

/// Applies the record at `partition`/`offset` to `read_model`: the event it holds, or, when it
/// holds none this build applies, its rejection. The one rule of projection, shared by the live
/// projector and by rebuilds and audits.
///
/// # Errors
/// [`ReadModelError`] when sled fails.
pub fn apply_record(
    read_model: &ReadModel,
    partition: i32,
    offset: i64,
    payload: Option<&[u8]>,
) -> Result<(), ReadModelError> {
    let decoded = match payload {
        Some(bytes) => RegistryEvent::decode(bytes),
        None => Err(EventDecodeError::Empty),
    };
    match decoded {
        Ok(RegistryEvent::CustomerCreated(created)) => {
            match read_model.apply_customer_created(&created, partition, offset)? {
                ApplyOutcome::Applied => {}
                ApplyOutcome::Duplicate => tracing::debug!(
                    partition, offset, event = %created.event_id,
                    "event already applied; nothing changed"
                ),
                ApplyOutcome::Conflict => tracing::warn!(
                    partition, offset, customer = %created.customer.id, event = %created.event_id,
                    "conflict: another event already created this customer; recorded and skipped"
                ),
            }
        }
        Err(error) => {
            let kind = match error {
                EventDecodeError::UnknownType(_) => RejectionKind::UnknownType,
                EventDecodeError::UnsupportedVersion { .. } => RejectionKind::UnsupportedVersion,
                EventDecodeError::Empty | EventDecodeError::Malformed(_) => {
                    RejectionKind::Malformed
                }
            };
            tracing::error!(partition, offset, reason = %error, "rejected a record the projector cannot apply; recorded and skipped");
            read_model.reject_record(partition, offset, kind, &error.to_string())?;
        }
    }
    Ok(())
}
