//! Reading the event log as it was published: single records by position, and whole replays from
//! offset 0 up to the end the log had when the replay began (or an earlier bound).

use super::client::{reader_config, KafkaLogs};
use super::position::LogPosition;
use super::EventLogSettings;
use crate::domain::AccountId;
use crate::shares::{Share, Shares};
use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why the log could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LogReadError {
    /// Kafka could not be read.
    #[error("reading the event log failed: {0}")]
    Kafka(#[from] KafkaError),
    /// The topic does not exist.
    #[error("topic {0} does not exist")]
    NoTopic(String),
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
}

/// How long a read waits for the broker.
const BROKER_TIMEOUT: Duration = Duration::from_secs(10);

/// One record as it sits in the log.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishedRecord {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// When Kafka says it was written.
    pub timestamp: Option<DateTime<Utc>>,
    /// Its key, as text.
    pub key: Option<String>,
    /// Its headers, name → value as text (the registry's own, the CloudEvents attributes, and
    /// for a change made with an `Idempotency-Key`, the key and the request's digest).
    pub headers: BTreeMap<String, String>,
    /// Its value as published: the event's JSON, or the bytes as text when they are not JSON.
    pub event: serde_json::Value,
}

impl PublishedRecord {
    /// The record `message` holds.
    pub fn of(message: &BorrowedMessage<'_>) -> Self {
        let event = message.payload().map_or(serde_json::Value::Null, |bytes| {
            serde_json::from_slice(bytes)
                .unwrap_or_else(|_| String::from_utf8_lossy(bytes).into_owned().into())
        });
        Self {
            partition: message.partition(),
            offset: message.offset(),
            timestamp: message
                .timestamp()
                .to_millis()
                .and_then(DateTime::from_timestamp_millis),
            key: message
                .key()
                .map(|key| String::from_utf8_lossy(key).into_owned()),
            headers: message
                .headers()
                .map(|headers| {
                    headers
                        .iter()
                        .map(|header| {
                            let value = header.value.map(String::from_utf8_lossy);
                            (
                                header.key.to_owned(),
                                value.unwrap_or_default().into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
            event,
        }
    }
}

/// A consumer that commits nothing and joins no group: auditors read, never move anyone's offsets.
/// Its queue of fetched records holds 4 MiB rather than librdkafka's 64: a replay applies records
/// far slower than Kafka hands them over, so a deeper queue only held memory (at 1M customers,
/// ~100 MiB of a rebuild's peak RSS; 4 MiB is ~70 ms of a rebuild's reading).
///
/// # Errors
/// [`LogReadError::Kafka`] when librdkafka refuses the configuration.
pub fn reader(settings: &EventLogSettings) -> Result<BaseConsumer<KafkaLogs>, LogReadError> {
    Ok(reader_config(&settings.kafka_bootstrap)
        .set("queued.max.messages.kbytes", "4096")
        .set("group.id", "customer-registry.audit")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("allow.auto.create.topics", "false")
        .create_with_context(KafkaLogs)?)
}

/// Reads single records back for customers' histories, over a few long-lived consumers: at most
/// [`HISTORY_READERS`] reads run at once, each on a consumer of its own (no lock is held while
/// Kafka is polled), and a burst past that is refused at once rather than queued, so history
/// reads never take more than that many of the blocking threads the projector also uses.
///
/// One account may hold at most [`HISTORY_READERS_PER_ACCOUNT`] of them, so a client looping on
/// its own customers' histories leaves room for every other account's.
pub struct HistoryReader {
    settings: EventLogSettings,
    idle: Mutex<Vec<BaseConsumer<KafkaLogs>>>,
    permits: Arc<Semaphore>,
    /// Permits held, by the account whose customer is read.
    held_by: Arc<Shares<u32>>,
}

/// How many history reads run at once.
pub const HISTORY_READERS: usize = 4;
/// How many of them reads of one account's customers may hold.
pub const HISTORY_READERS_PER_ACCOUNT: usize = 2;

/// The right to run one history read: take it before going to a blocking thread. Dropping it
/// gives the place back.
pub struct HistoryPermit {
    _held: OwnedSemaphorePermit,
    _share: Share<u32>,
}

impl HistoryReader {
    /// A reader of `settings.topic`; its consumers connect on first use.
    pub fn new(settings: EventLogSettings) -> Self {
        Self {
            settings,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(HISTORY_READERS)),
            held_by: Arc::default(),
        }
    }

    /// A permit to read a customer of `account`, or `None` when [`HISTORY_READERS`] reads are
    /// already running, or [`HISTORY_READERS_PER_ACCOUNT`] of them for that account.
    pub fn try_reserve(&self, account: AccountId) -> Option<HistoryPermit> {
        let share = self
            .held_by
            .take(account.get(), HISTORY_READERS_PER_ACCOUNT)?;
        let permit = Arc::clone(&self.permits).try_acquire_owned().ok()?;
        Some(HistoryPermit {
            _held: permit,
            _share: share,
        })
    }

    /// The records at `positions` (partition, offset), in that order. A blocking call, made
    /// holding a permit.
    ///
    /// # Errors
    /// [`LogReadError::Kafka`] when the broker cannot be read, [`LogReadError::TimedOut`] when it
    /// does not answer in time, [`LogReadError::Missing`] when a record is no longer in the log.
    pub fn read_at(
        &self,
        _permit: &HistoryPermit,
        positions: &[(i32, i64)],
    ) -> Result<Vec<PublishedRecord>, LogReadError> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let consumer = match idle {
            Some(consumer) => consumer,
            None => reader(&self.settings)?,
        };
        let records = read_records(&consumer, &self.settings.topic, positions);
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(consumer);
        records
    }
}

fn read_records(
    consumer: &BaseConsumer<KafkaLogs>,
    topic: &str,
    positions: &[(i32, i64)],
) -> Result<Vec<PublishedRecord>, LogReadError> {
    let mut records = Vec::with_capacity(positions.len());
    for &(partition, offset) in positions {
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(topic, partition, Offset::Offset(offset))?;
        consumer.assign(&assignment)?;
        let deadline = std::time::Instant::now() + BROKER_TIMEOUT;
        let record = loop {
            if std::time::Instant::now() > deadline {
                return Err(LogReadError::TimedOut { partition, offset });
            }
            match consumer.poll(Duration::from_millis(200)) {
                Some(Ok(message)) if message.partition() != partition => {}
                Some(Ok(message)) if message.offset() == offset => {
                    break PublishedRecord::of(&message)
                }
                Some(Ok(message)) if message.offset() > offset => {
                    return Err(LogReadError::Missing { partition, offset })
                }
                Some(Err(error)) => return Err(error.into()),
                _ => {}
            }
        };
        records.push(record);
    }
    Ok(records)
}

/// Where a replay stops: the end of the log as it is when the replay begins, or a position before
/// it (partitions a position leaves out are not read).
///
/// # Errors
/// [`LogReadError::NoTopic`] when the topic does not exist, [`LogReadError::Kafka`] when the
/// broker cannot be read.
pub fn replay_ends(
    consumer: &BaseConsumer<KafkaLogs>,
    topic: &str,
    until: Option<&LogPosition>,
) -> Result<BTreeMap<i32, i64>, LogReadError> {
    let metadata = consumer.fetch_metadata(Some(topic), BROKER_TIMEOUT)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|found| found.partitions().iter().map(|partition| partition.id()))
        .collect();
    if partitions.is_empty() {
        return Err(LogReadError::NoTopic(topic.to_owned()));
    }
    let mut ends = BTreeMap::new();
    for partition in partitions {
        let (_, high) = consumer.fetch_watermarks(topic, partition, BROKER_TIMEOUT)?;
        let end = match until {
            Some(bound) => bound.next_offset(partition).min(high),
            None => high,
        };
        ends.insert(partition, end);
    }
    Ok(ends)
}

/// Reads every record of `settings.topic` from offset 0 up to `ends`, in order per partition,
/// calling `on_record` for each, showing progress on stderr. Returns the number of records read.
/// A blocking call.
///
/// # Errors
/// [`LogReadError`] (converted into `E`) from Kafka, or `on_record`'s own error.
pub fn replay<E: From<LogReadError>>(
    settings: &EventLogSettings,
    ends: &BTreeMap<i32, i64>,
    mut on_record: impl FnMut(&BorrowedMessage<'_>) -> Result<(), E>,
) -> Result<u64, E> {
    let kafka = |error: KafkaError| E::from(LogReadError::Kafka(error));
    let consumer = reader(settings)?;
    let mut assignment = TopicPartitionList::new();
    let mut remaining: BTreeMap<i32, i64> = BTreeMap::new();
    let mut total = 0u64;
    for (&partition, &end) in ends {
        let (low, _) = consumer
            .fetch_watermarks(&settings.topic, partition, BROKER_TIMEOUT)
            .map_err(kafka)?;
        if end > low {
            assignment
                .add_partition_offset(&settings.topic, partition, Offset::Offset(low))
                .map_err(kafka)?;
            remaining.insert(partition, end);
            total += (end - low) as u64;
        }
    }
    let progress = progress_bar(total);
    if remaining.is_empty() {
        progress.finish_and_clear();
        return Ok(0);
    }
    consumer.assign(&assignment).map_err(kafka)?;
    let mut read = 0u64;
    while !remaining.is_empty() {
        let Some(polled) = consumer.poll(BROKER_TIMEOUT) else {
            return Err(LogReadError::Stalled { read, total }.into());
        };
        let message = polled.map_err(kafka)?;
        let partition = message.partition();
        let Some(&end) = remaining.get(&partition) else {
            continue;
        };
        if message.offset() >= end {
            continue;
        }
        on_record(&message)?;
        read += 1;
        progress.inc(1);
        if message.offset() + 1 >= end {
            remaining.remove(&partition);
        }
    }
    progress.finish_and_clear();
    Ok(read)
}

/// Events read, events/s and the ETA from the end offsets, on stderr (hidden when it is not a
/// terminal).
fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {pos}/{len} events  {per_sec}  ETA {eta}  [{wide_bar}]",
        )
        .expect("the template is valid"),
    );
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_account_holds_at_most_its_share_of_the_history_reads() {
        let reader = HistoryReader::new(EventLogSettings {
            kafka_bootstrap: "127.0.0.1:1".into(),
            topic: "unused".into(),
            topic_partitions: 1,
            topic_replication: None,
        });
        let busy = AccountId::parse(42).unwrap();
        let other = AccountId::parse(43).unwrap();
        let first = reader.try_reserve(busy).expect("a first read");
        let second = reader.try_reserve(busy).expect("a second read");
        assert!(
            reader.try_reserve(busy).is_none(),
            "past the account's share"
        );
        let others: Vec<_> = (0..HISTORY_READERS - HISTORY_READERS_PER_ACCOUNT)
            .map(|_| reader.try_reserve(other).expect("room for another account"))
            .collect();
        assert!(
            reader.try_reserve(AccountId::parse(44).unwrap()).is_none(),
            "all taken"
        );
        drop((first, others));
        assert!(
            reader.try_reserve(busy).is_some(),
            "a returned place is free again"
        );
        drop(second);
    }
}
