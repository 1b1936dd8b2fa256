//! The keys topic beside the event log (`<topic>.keys`, compacted): where the customers' wrapped
//! data keys and erased markers live, shared by every replica. This module moves its records'
//! bytes; what they mean is `crypto`'s. Every record of one customer goes to one partition, so
//! that its records are read in the order they were written: see [`key_routing`].

use super::client::{client_config, leader_moving, reader_config, KafkaLogs};
use super::partitioning::Partitioning;
use super::producer::{EventLogError, RenewedProducer, DELIVERY_TIMEOUT};
use super::EventLogSettings;
use crate::domain::CustomerId;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureRecord, Producer};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The keys topic of the event topic `topic`.
pub fn keys_topic(topic: &str) -> String {
    format!("{topic}.keys")
}

/// How long reading a partition's end may take.
const END_TIMEOUT: Duration = Duration::from_secs(5);

/// Appends records to the keys topic: idempotent, `acks=all`, each confirmed before the call
/// returns (a key is acknowledged before any event sealed with it is appended).
pub struct KeyLog {
    producer: RenewedProducer,
    topic: String,
    partitioning: Partitioning,
}

impl KeyLog {
    /// A producer for the keys topic of `settings.topic` (which must exist), routing as
    /// [`key_routing`] says for its partitions and the event topic's `events` partitioning.
    ///
    /// # Errors
    /// [`EventLogError::Setup`] when librdkafka rejects the configuration,
    /// [`EventLogError::NotConfirmed`] when the topic's partitions cannot be learnt in time.
    pub fn connect(
        settings: &EventLogSettings,
        events: Partitioning,
    ) -> Result<Self, EventLogError> {
        let producer = RenewedProducer::connect(settings)?;
        let topic = keys_topic(&settings.topic);
        let partitions = partitions_of(producer.current().client(), &topic)
            .map_err(EventLogError::NotConfirmed)?;
        Ok(Self {
            producer,
            topic,
            partitioning: key_routing(partitions, events),
        })
    }

    /// Appends the record `key` → `value` (`None`: a tombstone) about `customer` and waits for
    /// Kafka's confirmation.
    ///
    /// # Errors
    /// [`EventLogError::NotConfirmed`] when the broker refused it or did not confirm it in time.
    pub async fn append(
        &self,
        customer: CustomerId,
        key: &str,
        value: Option<&[u8]>,
    ) -> Result<(), EventLogError> {
        let mut record = FutureRecord::<str, [u8]>::to(&self.topic)
            .partition(self.partitioning.partition_of(customer))
            .key(key);
        if let Some(value) = value {
            record = record.payload(value);
        }
        fail::fail_point!("keys-produce", |_| Err(EventLogError::NotConfirmed(
            KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)
        )));
        let producer = self.producer.current();
        producer
            .send(record, Timeout::After(DELIVERY_TIMEOUT))
            .await
            .map_err(|(error, _)| {
                self.producer.replace_if_fatal(&producer);
                EventLogError::NotConfirmed(error)
            })?;
        Ok(())
    }

    /// The end of the keys topic's partition that holds `customer`'s records now (every record
    /// confirmed so far lies below it), as `(partition, end)`.
    ///
    /// # Errors
    /// [`KafkaError`] when the partition's leader does not answer in time.
    pub fn end_for(&self, customer: CustomerId) -> Result<(i32, i64), KafkaError> {
        let partition = self.partitioning.partition_of(customer);
        let (_, high) = self.producer.current().client().fetch_watermarks(
            &self.topic,
            partition,
            END_TIMEOUT,
        )?;
        Ok((partition, high))
    }
}

/// How the records of a keys topic of `partitions` partitions are routed, all of one customer's
/// to one partition for the life of the topic: to the one partition of a keys topic made with
/// one (as the registry makes them: a batch of keys then needs one produce batch, not one per
/// partition, which halved what the brokers did for the keys of creates), or, on a keys topic
/// made before with the event topic's count, to the partition its customer's events are on.
fn key_routing(partitions: i32, events: Partitioning) -> Partitioning {
    if partitions == 1 {
        Partitioning::over(1)
    } else {
        events
    }
}

/// How many partitions `topic` has, asked again while it is just created or its leader moves,
/// until [`END_TIMEOUT`] has passed.
fn partitions_of<C: rdkafka::client::ClientContext>(
    client: &rdkafka::client::Client<C>,
    topic: &str,
) -> Result<i32, KafkaError> {
    let deadline = Instant::now() + END_TIMEOUT;
    loop {
        // Asks for all topics: a producer's request for one could have the broker create it,
        // uncompacted.
        let found = client.fetch_metadata(None, END_TIMEOUT).map(|metadata| {
            metadata
                .topics()
                .iter()
                .find(|found| found.name() == topic && found.error().is_none())
                .map_or(0, |found| found.partitions().len())
        });
        match found {
            Ok(0) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Ok(0) => {
                return Err(KafkaError::MetadataFetch(
                    RDKafkaErrorCode::UnknownTopicOrPartition,
                ))
            }
            Ok(partitions) => return Ok(i32::try_from(partitions).unwrap_or(i32::MAX)),
            Err(error) if leader_moving(&error) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(error) => return Err(error),
        }
    }
}

/// One record of the keys topic, as read.
pub struct KeyTopicRecord {
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its key.
    pub key: Vec<u8>,
    /// Its value; `None` for a tombstone.
    pub value: Option<Vec<u8>>,
}

/// Reads every partition of the keys topic from its beginning, for as long as it is polled.
pub struct KeyTail {
    consumer: BaseConsumer<KafkaLogs>,
    topic: String,
    partitions: i32,
}

impl KeyTail {
    /// A reader of every partition of the keys topic of `settings.topic` (which must exist),
    /// from the beginning.
    ///
    /// # Errors
    /// [`KafkaError`] when the consumer cannot be set up or assigned.
    pub fn open(settings: &EventLogSettings) -> Result<Self, KafkaError> {
        let consumer: BaseConsumer<KafkaLogs> = reader_config(&settings.kafka_bootstrap)
            .set("group.id", "customer-registry.keys")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("auto.offset.reset", "earliest")
            .set("allow.auto.create.topics", "false")
            .create_with_context(KafkaLogs)?;
        let topic = keys_topic(&settings.topic);
        let partitions = partitions_of(consumer.client(), &topic)?;
        let tail = Self {
            consumer,
            topic,
            partitions,
        };
        // From each partition's first offset rather than `Offset::Beginning`: librdkafka's
        // first fetch after resolving `Beginning` came back only after `fetch.wait.max.ms`
        // (half a second on every start and every tool run).
        let mut assignment = TopicPartitionList::new();
        for (partition, (first, _)) in tail.watermarks()? {
            assignment.add_partition_offset(&tail.topic, partition, Offset::Offset(first))?;
        }
        tail.consumer.assign(&assignment)?;
        Ok(tail)
    }

    /// The end of every partition now: the offset its next record will get. A partition whose
    /// leader is being elected (the topic was just created, or a broker restarts) is asked again
    /// until [`END_TIMEOUT`] has passed.
    ///
    /// # Errors
    /// [`KafkaError`] when a partition's leader does not answer in time.
    pub fn ends(&self) -> Result<BTreeMap<i32, i64>, KafkaError> {
        Ok(self
            .watermarks()?
            .into_iter()
            .map(|(partition, (_, end))| (partition, end))
            .collect())
    }

    /// Every partition's first offset and end, asked as [`KeyTail::ends`] says.
    fn watermarks(&self) -> Result<BTreeMap<i32, (i64, i64)>, KafkaError> {
        let deadline = Instant::now() + END_TIMEOUT;
        (0..self.partitions)
            .map(|partition| loop {
                match self
                    .consumer
                    .fetch_watermarks(&self.topic, partition, END_TIMEOUT)
                {
                    Ok(watermarks) => return Ok((partition, watermarks)),
                    Err(error) if leader_moving(&error) && Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    Err(error) => return Err(error),
                }
            })
            .collect()
    }

    /// Hands `each` every record up to the end of each partition as it is now, in each
    /// partition's order: what a tool that reads the whole keys topic once does.
    ///
    /// # Errors
    /// [`KafkaError`] when consuming fails, or when no record came for `stall`
    /// (`OperationTimedOut`).
    pub fn read_to_end(
        &self,
        stall: Duration,
        mut each: impl FnMut(KeyTopicRecord),
    ) -> Result<(), KafkaError> {
        let ends = self.ends()?;
        let mut read: BTreeMap<i32, i64> = BTreeMap::new();
        let mut last_record = Instant::now();
        while ends
            .iter()
            .any(|(partition, end)| read.get(partition).copied().unwrap_or(0) < *end)
        {
            match self.next(Duration::from_millis(500)) {
                Some(record) => {
                    let record = record?;
                    last_record = Instant::now();
                    read.insert(record.partition, record.offset + 1);
                    each(record);
                }
                None if last_record.elapsed() > stall => {
                    return Err(KafkaError::MessageConsumption(
                        RDKafkaErrorCode::OperationTimedOut,
                    ))
                }
                None => {}
            }
        }
        Ok(())
    }

    /// The next record, waiting up to `timeout`; `None` when none came.
    ///
    /// # Errors
    /// [`KafkaError`] when consuming failed (librdkafka reconnects by itself meanwhile).
    pub fn next(&self, timeout: Duration) -> Option<Result<KeyTopicRecord, KafkaError>> {
        self.consumer.poll(timeout).map(|polled| {
            polled.map(|message| KeyTopicRecord {
                partition: message.partition(),
                offset: message.offset(),
                key: message.key().unwrap_or_default().to_vec(),
                value: message.payload().map(<[u8]>::to_vec),
            })
        })
    }
}

/// How long looking for one record of the keys topic may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// How many of the records at `places` (`(partition, offset)`) the keys topic of
/// `settings.topic` still holds: a record compaction removed reads as the next one kept, or as
/// the partition's end. What an erasure's status reports as the key gone from storage.
///
/// # Errors
/// [`KafkaError`] when a partition cannot be read in time.
pub fn records_still_held(
    settings: &EventLogSettings,
    places: &[(i32, i64)],
) -> Result<usize, KafkaError> {
    if places.is_empty() {
        return Ok(0);
    }
    let consumer: BaseConsumer<KafkaLogs> = client_config(&settings.kafka_bootstrap)
        .set("group.id", "customer-registry.keys-probe")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("allow.auto.create.topics", "false")
        .create_with_context(KafkaLogs)?;
    let topic = keys_topic(&settings.topic);
    let mut held = 0;
    for &(partition, offset) in places {
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(&topic, partition, Offset::Offset(offset))?;
        consumer.assign(&assignment)?;
        let deadline = Instant::now() + PROBE_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match consumer.poll(left) {
                Some(Ok(message)) => {
                    held += usize::from(message.offset() == offset);
                    break;
                }
                Some(Err(KafkaError::PartitionEOF(_))) => break,
                Some(Err(error)) if leader_moving(&error) && !left.is_zero() => {}
                Some(Err(error)) => return Err(error),
                None => {
                    return Err(KafkaError::MessageConsumption(
                        RDKafkaErrorCode::OperationTimedOut,
                    ))
                }
            }
        }
    }
    Ok(held)
}
