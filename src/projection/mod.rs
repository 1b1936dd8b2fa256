//! The projector: reads every partition of the topic from the offsets the read model stored and
//! applies each event, so the read model is a pure function of the log.
//!
//! The projector assigns itself partitions (no consumer group), so every replica keeps a full
//! projection of its own, and Kafka's committed offsets play no part: the next offset of each
//! partition lives in sled, committed atomically with the changes it accounts for.
//!
//! Applied records are visible to reads at once, from memory; the read model's writer commits
//! them to disk in the background (every few seconds, or sooner when many pile up). After a crash
//! the projector resumes from the last commit, and until it has caught up with the log end it
//! saw at start ([`ProjectionProgress::is_caught_up`]) the API does not serve reads: so nothing a
//! client was shown before the crash is ever missing after it.

mod progress;
pub mod readiness;
mod replay;

pub use progress::ProjectionProgress;
pub use replay::BatchApplier;

use crate::domain::{ErasedAsEmpty, EventDecodeError, OpenError, Opener, RegistryEvent};
use crate::log::{
    leader_moving, reader_config, EventLogSettings, KafkaLogs, LogPosition, OutageLog,
};
use crate::metrics::Metrics;
use crate::read_model::{
    ApplyOutcome, LogRecord, PreparedBatch, ReadModel, ReadModelError, ReadModelWriter,
    RecordChange, RejectionKind,
};
use futures::FutureExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

/// The end of one partition's log. A partition whose leader is being elected (just after the
/// topic was created, or during a broker restart) answers "not leader" for a moment: that is
/// retried until [`WATERMARK_TIMEOUT`] has passed. (A blocking call, made at start-up only.)
fn log_end_of(
    consumer: &StreamConsumer<KafkaLogs>,
    topic: &str,
    partition: i32,
) -> Result<i64, KafkaError> {
    let deadline = std::time::Instant::now() + WATERMARK_TIMEOUT;
    loop {
        match consumer.fetch_watermarks(topic, partition, WATERMARK_TIMEOUT) {
            Ok((_, high)) => return Ok(high),
            Err(error) if leader_moving(&error) && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(error) => return Err(error),
        }
    }
}

/// Why the projector stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The consumer could not be set up or assigned.
    #[error("cannot start consuming the topic: {0}")]
    Consumer(#[from] KafkaError),
    /// The read model failed; applying more would risk its consistency.
    #[error(transparent)]
    ReadModel(#[from] ReadModelError),
    /// The projector's blocking work was cancelled (the runtime is shutting down).
    #[error("the projector was stopped mid-batch")]
    Stopped,
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

/// Refuses a read model that has applied `partition` past `high`, the end of its log now: the log
/// was recreated or truncated under it, and following it would skip records silently. A
/// partition the read model never saw is at 0, never past the end.
fn not_ahead_of_log(
    partition: i32,
    next_offsets: &BTreeMap<i32, i64>,
    high: i64,
) -> Result<(), ProjectionError> {
    let next = next_offsets.get(&partition).copied().unwrap_or(0);
    if next > high {
        return Err(ProjectionError::AheadOfLog {
            partition,
            next,
            high,
        });
    }
    Ok(())
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
const METADATA_TIMEOUT: Duration = Duration::from_secs(2);

/// How long start-up waits for a partition's offsets.
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the projector has the writer flush what is due by age
/// ([`crate::read_model::FlushPolicy`]).
const FLUSH_CHECK: Duration = Duration::from_secs(1);

/// Consumes the topic into the read model.
pub struct Projector {
    consumer: Arc<StreamConsumer<KafkaLogs>>,
    topic: String,
    assigned: BTreeSet<i32>,
    partition_check: Duration,
    read_model: ReadModel,
    /// Taken while a batch is applied on the blocking pool.
    writer: Option<ReadModelWriter>,
    progress: watch::Sender<BTreeMap<i32, i64>>,
    /// Rings when a request wants partitions looked for now.
    look_for_partitions: Arc<tokio::sync::Notify>,
    /// Counts looks for new partitions started, and finished.
    looks: watch::Sender<(u64, u64)>,
    /// Consuming failures, logged once per outage rather than once each.
    outage: OutageLog,
    /// Counts the records applied, by outcome.
    metrics: Metrics,
    /// Whether the read model has yet to note its topic's origin: the first record this
    /// projector receives gives it.
    origin_pending: bool,
    /// Opens sealed events.
    opener: Arc<dyn Opener + Send + Sync>,
    /// Turns true when the projector is asked to stop (a wait for the keys then gives up).
    stopping: watch::Receiver<bool>,
}

/// A record as read from the log, not yet decoded.
#[derive(Clone)]
pub(crate) struct RawRecord {
    partition: i32,
    offset: i64,
    payload: Option<Vec<u8>>,
}

impl RawRecord {
    fn of(message: &impl Message) -> Self {
        Self {
            partition: message.partition(),
            offset: message.offset(),
            payload: message.payload().map(<[u8]>::to_vec),
        }
    }
}

impl Projector {
    /// A projector over `partitions` of `log`'s topic, starting each partition at the offset the read
    /// model committed (the beginning for a partition it has never seen), looking for
    /// partitions added later every `partition_check`, `opener` opening sealed events.
    ///
    /// # Errors
    /// [`ProjectionError`] when the consumer cannot be created or the stored offsets read.
    pub fn new(
        log: &EventLogSettings,
        partitions: &[i32],
        partition_check: Duration,
        read_model: ReadModel,
        writer: ReadModelWriter,
        metrics: Metrics,
        opener: Arc<dyn Opener + Send + Sync>,
    ) -> Result<(Self, ProjectionProgress), ProjectionError> {
        let topic = log.topic.as_str();
        let consumer: StreamConsumer<KafkaLogs> = reader_config(&log.kafka_bootstrap)
            // librdkafka wants a group id even for self-assigned partitions; nothing is ever
            // committed under it, and no group is joined.
            .set("group.id", "customer-registry.projector")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("auto.offset.reset", "earliest")
            .set("allow.auto.create.topics", "false")
            .create_with_context(KafkaLogs)?;
        let next_offsets = read_model.next_offsets()?;
        // A read model ahead of the log means the log was recreated or truncated under it:
        // following it would skip records silently. The log's end now is also how far the
        // projection must get before reads are served. (Blocking calls, at start-up only.)
        let mut log_end = BTreeMap::new();
        for &partition in partitions.iter().chain(next_offsets.keys()) {
            let high = log_end_of(&consumer, topic, partition)?;
            not_ahead_of_log(partition, &next_offsets, high)?;
            log_end.insert(partition, high);
        }
        consumer.assign(&assignment(topic, partitions, &next_offsets)?)?;
        let origin_pending = read_model.origin()?.is_none();
        let (progress, watcher) = watch::channel(next_offsets);
        let look_for_partitions = Arc::new(tokio::sync::Notify::new());
        let (looks, looks_watcher) = watch::channel((0, 0));
        Ok((
            Self {
                consumer: Arc::new(consumer),
                topic: topic.to_owned(),
                assigned: partitions.iter().copied().collect(),
                partition_check,
                read_model,
                writer: Some(writer),
                progress,
                look_for_partitions: Arc::clone(&look_for_partitions),
                looks,
                outage: OutageLog::new("the event log"),
                metrics,
                origin_pending,
                opener,
                stopping: watch::channel(false).1,
            },
            ProjectionProgress::new(
                watcher,
                LogPosition::from_next_offsets(log_end),
                look_for_partitions,
                looks_watcher,
            ),
        ))
    }

    /// Applies events as they arrive until `shutdown` turns true, then commits everything
    /// applied.
    ///
    /// # Errors
    /// [`ProjectionError::ReadModel`] when the read model fails: the projector stops rather than
    /// skip an event it could not record.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), ProjectionError> {
        self.stopping = shutdown.clone();
        let mut partition_check = tokio::time::interval(self.partition_check);
        partition_check.set_missed_tick_behavior(MissedTickBehavior::Delay);
        partition_check.tick().await;
        let mut flush_check = tokio::time::interval(FLUSH_CHECK);
        flush_check.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let asked_to_look = Arc::clone(&self.look_for_partitions);
        loop {
            tokio::select! {
                // Only a stop is ever sent; a dropped sender means the same.
                _ = shutdown.changed() => {
                    return self.with_writer(|writer| writer.flush_all()).await;
                }
                _ = partition_check.tick() => self.assign_new_partitions().await?,
                () = asked_to_look.notified() => self.assign_new_partitions().await?,
                _ = flush_check.tick() => self.with_writer(|writer| writer.flush_if_due(false)).await?,
                received = self.consumer.recv() => match received {
                    Ok(message) => {
                        self.outage.recovered();
                        if self.origin_pending {
                            self.read_model.note_origin(&crate::log::origin_of(&message))?;
                            self.origin_pending = false;
                        }
                        let first = RawRecord::of(&message);
                        drop(message);
                        match self.project_batch(first).await {
                            // Stopped while waiting for the keys: the batch was not applied,
                            // and is read again at the next start.
                            Err(ProjectionError::Stopped) if *shutdown.borrow() => {
                                return self.with_writer(|writer| writer.flush_all()).await;
                            }
                            projected => projected?,
                        }
                    }
                    // librdkafka reconnects by itself; a broker outage shows up here meanwhile.
                    Err(error) => self.outage.failed(&error),
                },
            }
        }
    }

    /// Starts reading partitions added to the topic since the last look, from their beginning
    /// (or from where the read model stopped, should it have seen them before), and counts the
    /// look as done.
    async fn assign_new_partitions(&mut self) -> Result<(), ProjectionError> {
        self.looks.send_modify(|(started, _)| *started += 1);
        let looked = self.look_for_new_partitions().await;
        self.looks.send_modify(|(_, finished)| *finished += 1);
        looked
    }

    async fn look_for_new_partitions(&mut self) -> Result<(), ProjectionError> {
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
        // Known from now on, before any record of theirs is applied: a read may name them.
        self.progress.send_modify(|next| {
            progress::advance(next, added.iter().map(|&partition| (partition, 0)));
        });
        self.assigned.extend(added);
        Ok(())
    }

    /// Decodes `batch` and applies it, in one task on the blocking pool (opening a sealed event
    /// may wait for the keys topic; one hand-over a batch rather than two, which live batches of
    /// a few records felt). While the keys cannot be read, nothing is decided: the batch is
    /// decoded again a second later, until it opens or the projector is stopped
    /// ([`ProjectionError::Stopped`]), so a passing outage of the keys topic never turns an event
    /// into a rejection.
    async fn decode_and_apply(
        &mut self,
        batch: Vec<RawRecord>,
    ) -> Result<Vec<ApplyOutcome>, ProjectionError> {
        let mut outage = OutageLog::new("the keys topic (projection waits)");
        let batch = Arc::new(batch);
        loop {
            let opener = Arc::clone(&self.opener);
            let raw = Arc::clone(&batch);
            let applied = self
                .with_writer(move |writer| {
                    let mut prepared = match replay::prepare(&raw, opener.as_ref()) {
                        Ok(prepared) => prepared,
                        Err(error) => return Ok(Err(error)),
                    };
                    // A test's stalled projector (`sleep(ms)`): the replica then trails the log.
                    fail::fail_point!("projection-apply");
                    let outcomes = apply_records(writer, &mut prepared)?;
                    // An erasure is durable at once, not at the next flush: until the layer that
                    // purges the customer is written, the store still holds its personal fields.
                    let erased =
                        prepared
                            .records()
                            .iter()
                            .zip(&outcomes)
                            .any(|(record, outcome)| {
                                *outcome == ApplyOutcome::Applied
                                    && matches!(&record.change, RecordChange::Event(event)
                                if matches!(**event, RegistryEvent::CustomerErased(_)))
                            });
                    if erased {
                        writer.flush_if_due(true)?;
                    }
                    Ok(Ok(outcomes))
                })
                .await?;
            match applied {
                Ok(outcomes) => {
                    outage.recovered();
                    return Ok(outcomes);
                }
                Err(error) => outage.failed(&error),
            }
            if *self.stopping.borrow() {
                return Err(ProjectionError::Stopped);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Runs `work` with the writer on the blocking pool.
    async fn with_writer<T: Send + 'static>(
        &mut self,
        work: impl FnOnce(&mut ReadModelWriter) -> Result<T, ReadModelError> + Send + 'static,
    ) -> Result<T, ProjectionError> {
        let mut writer = self.writer.take().ok_or(ProjectionError::Stopped)?;
        let (writer, outcome) = tokio::task::spawn_blocking(move || {
            let outcome = work(&mut writer);
            (writer, outcome)
        })
        .await
        .map_err(|_| ProjectionError::Stopped)?;
        self.writer = Some(writer);
        Ok(outcome?)
    }

    /// Applies `first` and every record already waiting behind it (up to [`MAX_BATCH`]), then
    /// announces the new position: reads see the batch from then on.
    async fn project_batch(&mut self, first: RawRecord) -> Result<(), ProjectionError> {
        // A consumer that fails with a batch read and nothing of it applied.
        fail::fail_point!("log-consume", |_| Err(ProjectionError::Consumer(
            KafkaError::MessageConsumption(
                rdkafka::error::RDKafkaErrorCode::BrokerTransportFailure
            )
        )));
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match self.consumer.recv().now_or_never() {
                Some(Ok(message)) => batch.push(RawRecord::of(&message)),
                Some(Err(error)) => {
                    self.outage.failed(&error);
                    break;
                }
                None => break,
            }
        }
        let outcomes = self.decode_and_apply(batch).await?;
        self.metrics.count_records(&outcomes);
        let applied = self.read_model.applied_offsets();
        self.progress
            .send_modify(|next| progress::advance(next, applied));
        Ok(())
    }
}

/// What the record at `partition`/`offset` asks of the read model: the event it holds (sealed
/// personal fields opened by `opener`), or, when it holds none this build applies, its rejection.
///
/// # Errors
/// An [`OpenError`] that [passes](OpenError::is_passing) (the keys cannot be read now, a KEK not
/// held yet): nothing may be decided about the record; it must be read again later.
pub fn decode_record(
    partition: i32,
    offset: i64,
    payload: Option<&[u8]>,
    opener: &dyn Opener,
) -> Result<LogRecord, OpenError> {
    let decoded = match payload {
        // An erased customer's events open to nothing: they still make and move the customer
        // (so a replay ends where a live replica does), and its `CustomerErased` purges it.
        Some(bytes) => RegistryEvent::decode_with(bytes, &ErasedAsEmpty(opener)),
        None => Err(EventDecodeError::Empty),
    };
    if let Err(EventDecodeError::Sealed(error)) = &decoded {
        if error.is_passing() {
            return Err(error.clone());
        }
    }
    let change = match decoded {
        Ok(event) => RecordChange::Event(Box::new(event)),
        Err(error) => {
            let kind = match error {
                EventDecodeError::UnknownType(_) => RejectionKind::UnknownType,
                EventDecodeError::UnsupportedVersion { .. } => RejectionKind::UnsupportedVersion,
                EventDecodeError::Sealed(_) => RejectionKind::Unreadable,
                EventDecodeError::Empty | EventDecodeError::Malformed(_) => {
                    RejectionKind::Malformed
                }
            };
            RecordChange::Rejected {
                kind,
                reason: error.to_string(),
            }
        }
    };
    Ok(LogRecord {
        partition,
        offset,
        change,
    })
}

/// Applies `batch` through `writer` and logs what deserves a look. The one rule of projection,
/// shared by the live projector and by rebuilds, audits and exports.
///
/// # Errors
/// [`ReadModelError`] when the read model fails.
pub fn apply_records(
    writer: &mut ReadModelWriter,
    batch: &mut PreparedBatch,
) -> Result<Vec<ApplyOutcome>, ReadModelError> {
    let outcomes = writer.apply_prepared(batch)?;
    for (record, outcome) in batch.records().iter().zip(outcomes.iter().copied()) {
        let (partition, offset) = (record.partition, record.offset);
        match (&record.change, outcome) {
            (RecordChange::Event(event), ApplyOutcome::Duplicate) => tracing::debug!(
                partition, offset, event = %event.event_id(),
                "event already applied; nothing changed"
            ),
            // Normal when creates of one code race: the request that wrote it answered 409.
            (RecordChange::Event(event), ApplyOutcome::Conflict)
                if matches!(&**event, RegistryEvent::CustomerCreated(created)
                    if created.customer.details.code.is_some()) =>
            {
                tracing::debug!(
                    partition, offset, customer = %event.customer_id(), event = %event.event_id(),
                    "a create lost its code to an earlier create; recorded and skipped"
                )
            }
            (RecordChange::Event(event), ApplyOutcome::Conflict) => tracing::warn!(
                partition, offset, customer = %event.customer_id(), event = %event.event_id(),
                "conflict: the event contradicts the customer the log holds; recorded and skipped"
            ),
            // Normal under concurrent changes: the request that wrote it learns it lost.
            (RecordChange::Event(event), ApplyOutcome::Stale | ApplyOutcome::Absent) => {
                tracing::debug!(
                    partition, offset, customer = %event.customer_id(), event = %event.event_id(),
                    ?outcome, "change refused by the version rule; recorded and skipped"
                )
            }
            // The reason stays out of the log: it may quote the record's values (names,
            // emails), and logs at this level carry no personal data. The admin listing of
            // rejected events has it.
            (RecordChange::Rejected { kind, .. }, _) => {
                tracing::error!(
                partition, offset, ?kind,
                "rejected a record the projector cannot apply; recorded and skipped (the reason \
                 is in GET /api/v01/admin/rejected-events)"
            )
            }
            _ => {}
        }
    }
    Ok(outcomes)
}

/// The most records the live projector applies at once.
pub const MAX_BATCH: usize = 1_000;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AccountId, Customer, CustomerCreated, CustomerDetails};

    #[test]
    fn a_read_model_ahead_of_the_log_is_refused_at_start() {
        let next_offsets = BTreeMap::from([(0, 12)]);
        let refused = not_ahead_of_log(0, &next_offsets, 11);
        assert!(matches!(
            refused,
            Err(ProjectionError::AheadOfLog {
                partition: 0,
                next: 12,
                high: 11
            })
        ));
    }

    #[test]
    fn a_read_model_at_or_short_of_the_log_end_starts_and_so_does_a_partition_never_seen() {
        let next_offsets = BTreeMap::from([(0, 12)]);
        assert!(not_ahead_of_log(0, &next_offsets, 12).is_ok());
        assert!(not_ahead_of_log(0, &next_offsets, 40).is_ok());
        assert!(not_ahead_of_log(1, &next_offsets, 0).is_ok());
    }

    #[test]
    fn each_partition_resumes_at_the_read_models_next_offset_or_from_the_beginning() {
        let next_offsets = BTreeMap::from([(0, 12), (2, 0)]);
        let assigned = assignment("customers", &[0, 1, 2], &next_offsets).unwrap();
        let start = |partition| {
            assigned
                .find_partition("customers", partition)
                .map(|element| element.offset())
        };
        assert_eq!(start(0), Some(Offset::Offset(12)));
        assert_eq!(start(1), Some(Offset::Beginning));
        assert_eq!(start(2), Some(Offset::Offset(0)));
        assert_eq!(start(3), None, "only the partitions asked for");
    }

    fn created() -> RegistryEvent {
        let details = CustomerDetails::for_account(AccountId::parse(42).unwrap());
        RegistryEvent::CustomerCreated(CustomerCreated::new(Customer::register(details)))
    }

    /// The kind of rejection `payload` is recorded as, or `None` when it is an event to apply.
    fn rejected_as(payload: Option<&[u8]>) -> Option<RejectionKind> {
        let record = decode_record(3, 70, payload, &crate::domain::NoKeys).unwrap();
        assert_eq!((record.partition, record.offset), (3, 70));
        match record.change {
            RecordChange::Event(_) => None,
            RecordChange::Rejected { kind, reason } => {
                assert!(!reason.is_empty(), "a rejection says why");
                Some(kind)
            }
        }
    }

    #[test]
    fn an_event_this_build_applies_is_decoded_for_the_writer() {
        let event = created();
        let record = decode_record(3, 70, Some(&event.encode()), &crate::domain::NoKeys).unwrap();
        assert!(matches!(record.change, RecordChange::Event(decoded) if *decoded == event));
    }

    #[test]
    fn a_poison_record_is_a_rejection_with_its_kind_never_an_error() {
        let mut json: serde_json::Value = serde_json::from_slice(&created().encode()).unwrap();
        json["schemaVersion"] = 99.into();
        let newer = json.to_string();
        json["schemaVersion"] = 1.into();
        json["eventType"] = "CustomerMerged".into();
        let unknown = json.to_string();
        assert_eq!(
            rejected_as(None),
            Some(RejectionKind::Malformed),
            "a tombstone"
        );
        assert_eq!(
            rejected_as(Some(b"\xff not json")),
            Some(RejectionKind::Malformed)
        );
        assert_eq!(
            rejected_as(Some(newer.as_bytes())),
            Some(RejectionKind::UnsupportedVersion)
        );
        assert_eq!(
            rejected_as(Some(unknown.as_bytes())),
            Some(RejectionKind::UnknownType)
        );
    }
}
