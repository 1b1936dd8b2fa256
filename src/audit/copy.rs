//! Copying a log into a new topic, record by record, each source partition in order, to the
//! partition the target's count gives each record's customer: what `repartition` (another count)
//! and `migrate --encrypt` (every personal field sealed on the way) share. A customer lives on
//! one source partition, so its events arrive in the target in the order they had.
//!
//! Copies keep their key, timestamp and headers (and their value, unless rewritten; event ids
//! always), with the target's `partitioning` and a `source-position` header
//! (`<topic>/<partition>:<offset>`) naming where the record was copied from.
//!
//! **Resuming.** The producer is idempotent with the gapless guarantee, so what reached one target
//! partition from one source partition is a prefix of what was sent there, in order. After a
//! crash the next run waits until the target's ends stop moving (records the crashed run sent may
//! still be awaiting replication), reads the target once, takes for each (target, source)
//! partition pair the highest source offset it holds, and copies the rest, skipping each record
//! whose pair already has it. Nothing is missed; a record of the crashed run that commits only
//! after that wait would be copied twice, which the end-of-run check reports.
//!
//! **The check.** Each run copies the source up to its end when the run began, then compares:
//! the target holds as many records as the source had up to there, and replays of both (the
//! source up to there) give the same customers. Records written to the source meanwhile are the
//! next run's: run it again once the writers are stopped, and it copies only those.
//!
//! A record goes to the partition its key gives (the registry keys each record by its customer
//! id); a customer whose events an older producer already split over two source partitions is
//! copied in the order the replay reads them, which need not be its own.

use super::verify::compare;
use super::{AuditError, ScratchReadModel};
use crate::config::CopyArgs;
use crate::domain::{CustomerId, NoKeys, Opener};
use crate::log::{
    client_config, create_topic, ensure_keys_topic, existing_keys_topic, existing_topic, reader,
    replay, replay_ends, EventLogSettings, KeyLog, KeyTail, LogPosition, Partitioning, TopicLayout,
    PARTITIONING_HEADER,
};
use crate::projection::BatchApplier;
use parking_lot::Mutex;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::util::Timeout;
use rdkafka::ClientContext;
use serde::Serialize;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The header naming where a copied record came from.
const SOURCE_POSITION_HEADER: &str = "source-position";

/// How long the copy waits for Kafka to confirm what it sent, at the end.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(120);

/// What a copy did.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct CopyReport {
    from: String,
    to: String,
    partitions: i32,
    source_records: u64,
    copied: u64,
    copied_before: u64,
    /// Records rewritten on the way (a migration's sealed events).
    #[serde(skip_serializing_if = "Option::is_none")]
    rewritten: Option<u64>,
    /// Records of the source's keys topic copied into the target's.
    keys_copied: u64,
    target_records: u64,
    customers: usize,
    mismatched_customers: usize,
    seconds: f64,
}

/// Copies `plan.from` into `plan.to` (created with `plan.partitions` partitions when missing, or
/// resumed when a copy stopped part-way), each record rewritten as `plan.rewrite` says, then
/// checks that both give the same registry. Exit code 0 when they do, 1 when they differ.
///
/// # Errors
/// [`AuditError`] (exit code 2) when a topic cannot be read or written, or the target holds
/// records that were not copied from the source.
pub(super) async fn copy_log(plan: CopyPlan) -> Result<ExitCode, AuditError> {
    let (settings, partitions) = (&plan.settings, plan.partitions);
    let started = Instant::now();
    if settings.from == settings.to {
        return Err(AuditError::Usage(
            "--from and --to name the same topic; copy into a new one".into(),
        ));
    }
    let source = settings.topic(&settings.from, partitions);
    let target = settings.topic(&settings.to, partitions);
    let layout = match existing_topic(&target).await {
        Ok(layout) => layout,
        Err(crate::log::TopicError::Missing(_)) => {
            // The source must exist before anything is created.
            replay_ends(&reader(&source)?, &source.topic, None)?;
            create_topic(&target, partitions).await?
        }
        Err(error) => return Err(error.into()),
    };
    let partition_count = i32::try_from(layout.partitions.len()).unwrap_or(i32::MAX);
    if partition_count != partitions || layout.partitioning.count() != partitions {
        return Err(AuditError::Usage(format!(
            "topic {} exists with {} partitions ({}), not {}: resume with --partitions {} or \
             copy into another new topic",
            settings.to,
            partition_count,
            layout.partitioning,
            partitions,
            layout.partitioning.count()
        )));
    }
    let partitioning = Partitioning::over(partitions);
    let crash_after = settings.test_crash_after;
    let rewrite = match &plan.rewrite {
        Some(make) => Some(make(&target, &layout).await?),
        None => None,
    };
    let (from, to) = (source.clone(), target.clone());
    let (mut report, copied_up_to, rewrite) = tokio::task::spawn_blocking(move || {
        wait_for_settled_ends(&to)?;
        let copied_already = copied_so_far(&to, &from.topic)?;
        let (report, until) = copy(
            &from,
            &to,
            partitioning,
            &copied_already,
            crash_after,
            rewrite.as_deref(),
        )?;
        Ok::<_, AuditError>((report, until, rewrite))
    })
    .await
    .map_err(|_| AuditError::Usage("the copy was cancelled".into()))??;
    report.keys_copied = copy_keys(&source, &target, &layout).await?;

    let (from, to) = (source.clone(), target.clone());
    let openers = match &rewrite {
        Some(rewrite) => rewrite.openers(),
        None => (
            Arc::new(NoKeys) as Arc<dyn Opener + Send + Sync>,
            Arc::new(NoKeys) as Arc<dyn Opener + Send + Sync>,
        ),
    };
    let (customers, mismatched, target_records) =
        tokio::task::spawn_blocking(move || compare_topics(&from, &copied_up_to, &to, openers))
            .await
            .map_err(|_| AuditError::Usage("the comparison was cancelled".into()))??;
    report.customers = customers;
    report.mismatched_customers = mismatched;
    report.target_records = target_records;
    report.from.clone_from(&settings.from);
    report.to.clone_from(&settings.to);
    report.partitions = partitions;
    report.seconds = started.elapsed().as_secs_f64();
    if let Some(rewrite) = rewrite {
        rewrite.finish();
    }
    let agree = mismatched == 0 && target_records == report.source_records;
    super::print_outcome(&report, settings.json, || {
        println!(
            "copied {} records of {} into {} ({} partitions, {}; {} copied by an earlier run; {} \
             rewritten) in {:.1} s; {} holds {} records; {} customers, {} differ",
            report.copied,
            report.from,
            report.to,
            report.partitions,
            partitioning,
            report.copied_before,
            report.rewritten.unwrap_or(0),
            report.seconds,
            report.to,
            report.target_records,
            report.customers,
            report.mismatched_customers
        );
    });
    Ok(if agree {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// For each target partition, the highest offset of each source partition it holds a copy of.
type CopiedSoFar = BTreeMap<(i32, i32), i64>;

/// How long the target's ends must stay still before it is read for what was copied.
const SETTLED_FOR: Duration = Duration::from_secs(2);
/// The longest wait for them to.
const SETTLE_LIMIT: Duration = Duration::from_secs(30);

/// Waits until the target's ends have not moved for [`SETTLED_FOR`] (or [`SETTLE_LIMIT`] has
/// passed): a crashed run's last records may still be on their way to enough replicas.
fn wait_for_settled_ends(target: &EventLogSettings) -> Result<(), AuditError> {
    let consumer = reader(target)?;
    let started = Instant::now();
    let mut ends = replay_ends(&consumer, &target.topic, None)?;
    let mut still_since = Instant::now();
    while still_since.elapsed() < SETTLED_FOR && started.elapsed() < SETTLE_LIMIT {
        std::thread::sleep(Duration::from_millis(200));
        let now = replay_ends(&consumer, &target.topic, None)?;
        if now != ends {
            ends = now;
            still_since = Instant::now();
        }
    }
    Ok(())
}

/// Reads the target once: what earlier runs copied into it.
fn copied_so_far(target: &EventLogSettings, source_topic: &str) -> Result<CopiedSoFar, AuditError> {
    let ends = replay_ends(&reader(target)?, &target.topic, None)?;
    let mut copied = CopiedSoFar::new();
    replay::<AuditError>(target, &ends, |message| {
        let position = message
            .headers()
            .and_then(|headers| {
                headers
                    .iter()
                    .find(|header| header.key == SOURCE_POSITION_HEADER)
                    .and_then(|header| header.value)
            })
            .and_then(|value| std::str::from_utf8(value).ok())
            .and_then(parse_source_position);
        let Some((topic, partition, offset)) = position else {
            return Err(AuditError::Usage(format!(
                "topic {} holds a record (partition {}, offset {}) that was not copied by \
                 repartition: copy into a new topic",
                target.topic,
                message.partition(),
                message.offset()
            )));
        };
        if topic != source_topic {
            return Err(AuditError::Usage(format!(
                "topic {} holds records copied from {topic}, not from {source_topic}",
                target.topic
            )));
        }
        let highest = copied.entry((message.partition(), partition)).or_insert(-1);
        *highest = (*highest).max(offset);
        Ok(())
    })?;
    Ok(copied)
}

/// `<topic>/<partition>:<offset>`.
fn parse_source_position(text: &str) -> Option<(&str, i32, i64)> {
    let (topic, place) = text.rsplit_once('/')?;
    let (partition, offset) = place.split_once(':')?;
    Some((topic, partition.parse().ok()?, offset.parse().ok()?))
}

/// Remembers the first failed delivery; the copy stops at it.
#[derive(Default, Clone)]
struct Deliveries {
    failure: Arc<Mutex<Option<KafkaError>>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        if let Err((error, _)) = result {
            self.failure.lock().get_or_insert_with(|| error.clone());
        }
    }
}

impl Deliveries {
    fn check(&self) -> Result<(), AuditError> {
        match self.failure.lock().clone() {
            Some(error) => Err(AuditError::Usage(format!(
                "Kafka did not confirm a copied record ({error}); run the same command again to \
                 resume"
            ))),
            None => Ok(()),
        }
    }
}

/// A source record, owned: the copy holds a chunk of them while it rewrites them.
pub(super) struct SourceRecord {
    /// Where it is in the source.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
    key: Option<Vec<u8>>,
    /// Its value.
    pub payload: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    timestamp: Option<i64>,
}

impl SourceRecord {
    fn of(message: &rdkafka::message::BorrowedMessage<'_>) -> Self {
        Self {
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            headers: message
                .headers()
                .map(|headers| {
                    headers
                        .iter()
                        .map(|header| (header.key.to_owned(), header.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default(),
            timestamp: message.timestamp().to_millis(),
        }
    }
}

/// A record as rewritten on its way: its new value, and the headers that replace its own of the
/// same names.
pub(super) struct Rewritten {
    /// The new value.
    pub payload: Vec<u8>,
    /// Headers replacing the record's own of the same names.
    pub headers: Vec<(&'static str, String)>,
}

/// How a copy changes records on their way into the target (a migration seals them).
pub(super) trait Rewrite: Send + Sync {
    /// Each record of `chunk` (the chunks come in order) as the target takes it, or `None` to
    /// copy it as it is.
    ///
    /// # Errors
    /// What stops the copy.
    fn rewrite(&self, chunk: &[SourceRecord]) -> Result<Vec<Option<Rewritten>>, AuditError>;

    /// What opens the source's and the target's sealed events, for the check.
    fn openers(&self) -> (Arc<dyn Opener + Send + Sync>, Arc<dyn Opener + Send + Sync>);

    /// Called once the copy is done.
    fn finish(&self);
}

/// Makes the rewrite of a copy into the target (given its settings and layout), once the target
/// exists.
pub(super) type MakeRewrite = Box<
    dyn Fn(
            &EventLogSettings,
            &TopicLayout,
        ) -> futures::future::BoxFuture<'static, Result<Box<dyn Rewrite>, AuditError>>
        + Send
        + Sync,
>;

/// What to copy, where, and how.
pub(super) struct CopyPlan {
    /// The cluster, the topics and the report.
    pub settings: CopyArgs,
    /// The target's partitions.
    pub partitions: i32,
    /// How records change on their way; `None`: copied as they are.
    pub rewrite: Option<MakeRewrite>,
}

/// Records read from the source before they are rewritten and sent, as one chunk.
const CHUNK: usize = 1_000;

/// Copies every source record not yet in the target, up to the source's end as it is now,
/// rewritten by `rewrite` when given; answers what it did and that end.
fn copy(
    source: &EventLogSettings,
    target: &EventLogSettings,
    partitioning: Partitioning,
    copied_already: &CopiedSoFar,
    crash_after: Option<u64>,
    rewrite: Option<&dyn Rewrite>,
) -> Result<(CopyReport, LogPosition), AuditError> {
    let deliveries = Deliveries::default();
    let producer: BaseProducer<Deliveries> = client_config(&target.kafka_bootstrap)
        .set("enable.idempotence", "true")
        // A record lost between two that arrived would break the prefix rule resuming rests on;
        // with this, librdkafka stops with a fatal error instead.
        .set("enable.gapless.guarantee", "true")
        .set("acks", "all")
        .set("linger.ms", "20")
        .set("message.timeout.ms", "60000")
        .create_with_context(deliveries.clone())?;
    let ends = replay_ends(&reader(source)?, &source.topic, None)?;
    let mut report = CopyReport {
        source_records: ends.values().sum::<i64>().try_into().unwrap_or(0),
        rewritten: rewrite.map(|_| 0),
        ..CopyReport::default()
    };
    let mut sender = Sender {
        producer: &producer,
        deliveries: &deliveries,
        target: &target.topic,
        source: &source.topic,
        partitioning,
        partitioning_header: partitioning.to_string(),
        crash_after,
        rewrite,
    };
    let mut chunk = Vec::with_capacity(CHUNK);
    replay::<AuditError>(source, &ends, |message| {
        let to_partition = partitioning.partition_of_key(message.key().unwrap_or_default());
        if copied_already
            .get(&(to_partition, message.partition()))
            .is_some_and(|&highest| message.offset() <= highest)
        {
            report.copied_before += 1;
            return Ok(());
        }
        chunk.push(SourceRecord::of(message));
        if chunk.len() == CHUNK {
            sender.send_all(&std::mem::take(&mut chunk), &mut report)?;
        }
        Ok(())
    })?;
    sender.send_all(&chunk, &mut report)?;
    producer.flush(Timeout::After(FLUSH_TIMEOUT))?;
    deliveries.check()?;
    Ok((report, LogPosition::from_next_offsets(ends)))
}

/// Sends source records into the target.
struct Sender<'a> {
    producer: &'a BaseProducer<Deliveries>,
    deliveries: &'a Deliveries,
    target: &'a str,
    source: &'a str,
    partitioning: Partitioning,
    partitioning_header: String,
    crash_after: Option<u64>,
    rewrite: Option<&'a dyn Rewrite>,
}

impl Sender<'_> {
    /// Rewrites `chunk` (when the copy rewrites) and sends each record.
    fn send_all(
        &mut self,
        chunk: &[SourceRecord],
        report: &mut CopyReport,
    ) -> Result<(), AuditError> {
        let mut rewrites = match self.rewrite {
            Some(rewrite) => rewrite.rewrite(chunk)?,
            None => Vec::new(),
        };
        rewrites.resize_with(chunk.len(), || None);
        for (record, rewritten) in chunk.iter().zip(rewrites) {
            if let (Some(_), Some(count)) = (&rewritten, &mut report.rewritten) {
                *count += 1;
            }
            self.send(record, rewritten)?;
            report.copied += 1;
            if self.crash_after.is_some_and(|limit| report.copied >= limit) {
                // The test hook: some records confirmed, some in flight, then a crash.
                self.producer.poll(Duration::from_millis(200));
                std::process::abort();
            }
            self.deliveries.check()?;
        }
        Ok(())
    }

    /// Sends `record` (or its rewrite) to the partition its key gives, with where it came from.
    fn send(&self, record: &SourceRecord, rewritten: Option<Rewritten>) -> Result<(), AuditError> {
        let key = record.key.as_deref().unwrap_or_default();
        let to_partition = self.partitioning.partition_of_key(key);
        let source_position = format!("{}/{}:{}", self.source, record.partition, record.offset);
        let (payload, mut replaced) = match &rewritten {
            Some(rewritten) => (
                Some(rewritten.payload.as_slice()),
                rewritten.headers.clone(),
            ),
            None => (record.payload.as_deref(), Vec::new()),
        };
        replaced.retain(|(name, _)| *name != PARTITIONING_HEADER);
        replaced.push((PARTITIONING_HEADER, self.partitioning_header.clone()));
        replaced.push((SOURCE_POSITION_HEADER, source_position));
        let mut headers = OwnedHeaders::new();
        for (name, value) in &record.headers {
            if replaced.iter().all(|(replacing, _)| replacing != name) {
                headers = headers.insert(Header {
                    key: name,
                    value: value.as_deref(),
                });
            }
        }
        for (name, value) in &replaced {
            headers = headers.insert(Header {
                key: name,
                value: Some(value.as_str()),
            });
        }
        let mut outgoing = BaseRecord::<[u8], [u8]>::to(self.target)
            .partition(to_partition)
            .headers(headers);
        if let Some(key) = &record.key {
            outgoing = outgoing.key(key);
        }
        if let Some(payload) = payload {
            outgoing = outgoing.payload(payload);
        }
        if let Some(millis) = record.timestamp {
            outgoing = outgoing.timestamp(millis);
        }
        loop {
            match self.producer.send(outgoing) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    outgoing = returned;
                    self.producer.poll(Duration::from_millis(50));
                    self.deliveries.check()?;
                }
                Err((error, _)) => return Err(error.into()),
            }
        }
        self.producer.poll(Duration::ZERO);
        Ok(())
    }
}

/// How long reading a keys topic may go without a record before the copy gives up.
const KEYS_STALL: Duration = Duration::from_secs(30);

/// Copies the source's keys topic, when it has one, into the target's (created as `serve`
/// creates it), up to its end now: every key an event copied so far was sealed with was
/// acknowledged before that event was appended, so it is below that end. Copying again (a resumed
/// run) only repeats records, which change nothing. Answers the records copied.
async fn copy_keys(
    source: &EventLogSettings,
    target: &EventLogSettings,
    target_layout: &TopicLayout,
) -> Result<u64, AuditError> {
    let source_layout = existing_topic(source).await?;
    match existing_keys_topic(source, &source_layout).await {
        Ok(()) => {}
        Err(crate::log::TopicError::Missing(_)) => return Ok(0),
        Err(error) => return Err(error.into()),
    }
    ensure_keys_topic(target, target_layout).await?;
    let (from, to, events) = (source.clone(), target.clone(), target_layout.partitioning);
    // Both ask the brokers and wait on them: off the runtime's threads.
    let (records, log) = tokio::task::spawn_blocking(move || {
        let mut records = Vec::new();
        KeyTail::open(&from)?.read_to_end(KEYS_STALL, |record| records.push(record))?;
        let log =
            KeyLog::connect(&to, events).map_err(|error| AuditError::Keys(error.to_string()))?;
        Ok::<_, AuditError>((records, log))
    })
    .await
    .map_err(|_| AuditError::Usage("the copy of the keys was cancelled".into()))??;
    let mut copied = 0;
    for chunk in records.chunks(1_000) {
        let sends = chunk.iter().filter_map(|record| {
            let key = std::str::from_utf8(&record.key).ok()?;
            let customer = key.split('/').next()?.parse::<CustomerId>().ok()?;
            Some(log.append(customer, key, record.value.as_deref()))
        });
        for sent in futures::future::join_all(sends).await {
            sent.map_err(|error| AuditError::Keys(error.to_string()))?;
            copied += 1;
        }
    }
    Ok(copied)
}

/// Replays both topics into scratch read models (each opened with its opener), the source up to
/// `source_until`, and compares them customer by customer. Answers the customers in the target, how many differ (or are
/// missing on either side), and how many records the target holds.
fn compare_topics(
    source: &EventLogSettings,
    source_until: &LogPosition,
    target: &EventLogSettings,
    (source_opener, target_opener): (Arc<dyn Opener + Send + Sync>, Arc<dyn Opener + Send + Sync>),
) -> Result<(usize, usize, u64), AuditError> {
    let project = |settings: &EventLogSettings,
                   until: Option<&LogPosition>,
                   opener: Arc<dyn Opener + Send + Sync>|
     -> Result<(ScratchReadModel, u64), AuditError> {
        let mut scratch = ScratchReadModel::create(std::env::temp_dir().join(format!(
            "customer-registry-repartition-{}",
            uuid::Uuid::now_v7().simple()
        )))?;
        let ends = replay_ends(&reader(settings)?, &settings.topic, until)?;
        // Without the KEK (repartition takes none), sealed events are compared sealed: for a
        // sealed log the check then covers counts and rejections, not personal fields.
        let mut applier = BatchApplier::new(&mut scratch.writer, opener);
        let read = replay::<AuditError>(settings, &ends, |message| {
            Ok(applier.push(message.partition(), message.offset(), message.payload())?)
        })?;
        applier.finish()?;
        Ok((scratch, read))
    };
    let (from_source, _) = project(source, Some(source_until), source_opener)?;
    let (from_target, target_records) = project(target, None, target_opener)?;
    let report = compare(&from_target.model, &from_source.model)?;
    let differing = report.mismatched.len() + report.missing.len() + report.extra.len();
    Ok((from_target.model.len(), differing, target_records))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_positions_read_back() {
        assert_eq!(
            parse_source_position("customers.events/3:1234"),
            Some(("customers.events", 3, 1234))
        );
        assert_eq!(parse_source_position("a/b/0:1"), Some(("a/b", 0, 1)));
        for bad in ["", "t", "t/1", "t/x:1", "t/1:y"] {
            assert_eq!(parse_source_position(bad), None, "{bad}");
        }
    }
}
