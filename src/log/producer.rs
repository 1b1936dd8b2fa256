//! The Kafka producer that appends events: idempotent, `acks=all`, keyed by customer id, each
//! customer's events on the partition its [`Partitioning`] names, and none sent to a partition
//! the cluster cannot acknowledge now ([`ClusterHealth`]).

use super::client::{client_config, KafkaLogs};
use super::health::{ClusterHealth, ReplicaShortage};
use super::partitioning::{Partitioning, HEADER as PARTITIONING_HEADER};
use super::position::RecordPosition;
use super::EventLogSettings;
use crate::domain::{CustomerId, RegistryEvent};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

/// How long a record may wait for the broker's confirmation before the create fails.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long reading a partition's end may take.
const END_TIMEOUT: Duration = Duration::from_secs(2);

/// Why an event could not be appended.
#[derive(Debug, thiserror::Error)]
pub enum EventLogError {
    /// The producer could not be set up.
    #[error("cannot create the Kafka producer: {0}")]
    Setup(KafkaError),
    /// Kafka did not confirm the write in time, or refused it.
    #[error("Kafka did not confirm the event: {0}")]
    NotConfirmed(KafkaError),
    /// The create as a whole ran past its deadline (waiting for Kafka or for its turn).
    #[error("the create did not complete within {0:?}")]
    TimedOut(Duration),
    /// The event's partition cannot take a write now: too few of its in-sync replicas answer
    /// (or no broker does). Refused before sending, or found after a failed send.
    #[error("{shortage}")]
    Unwritable {
        /// What the cluster lacks.
        shortage: ReplicaShortage,
        /// Whether the event may have been written even so (a send was attempted).
        outcome_unknown: bool,
    },
}

impl EventLogError {
    /// Whether the event may have been written even though Kafka did not confirm it: a timeout
    /// can hide a write the broker stored. Only errors raised before anything was sent are known
    /// to have written nothing.
    pub fn outcome_unknown(&self) -> bool {
        let code = match self {
            EventLogError::Setup(_) => return false,
            EventLogError::TimedOut(_) => return true,
            EventLogError::Unwritable {
                outcome_unknown, ..
            } => return *outcome_unknown,
            EventLogError::NotConfirmed(error) => error.rdkafka_error_code(),
        };
        !matches!(
            code,
            Some(
                RDKafkaErrorCode::QueueFull
                    | RDKafkaErrorCode::MessageSizeTooLarge
                    | RDKafkaErrorCode::InvalidMessageSize
                    | RDKafkaErrorCode::UnknownTopic
                    | RDKafkaErrorCode::UnknownPartition
                    | RDKafkaErrorCode::Fatal
            )
        )
    }
}

/// An event's record value as written, and the schema version it is written in (which the
/// record's headers name).
pub struct Payload {
    /// The value.
    pub bytes: Vec<u8>,
    /// Its `schemaVersion`.
    pub schema_version: u32,
}

/// The append-only event log on the registry's topic.
pub struct EventLog {
    producer: RenewedProducer,
    settings: EventLogSettings,
    partitioning: Partitioning,
    health: ClusterHealth,
}

impl EventLog {
    /// A producer for `settings.topic` that routes by `partitioning` and refuses writes that
    /// `health` says the cluster cannot acknowledge.
    ///
    /// # Errors
    /// [`EventLogError::Setup`] when librdkafka rejects the configuration.
    pub fn connect(
        settings: &EventLogSettings,
        partitioning: Partitioning,
        health: ClusterHealth,
    ) -> Result<Self, EventLogError> {
        Ok(Self {
            producer: RenewedProducer::connect(settings)?,
            settings: settings.clone(),
            partitioning,
            health,
        })
    }

    /// Appends `event` as `payload` (its encoding), keyed by its customer id, with `extra`
    /// headers on the record, and waits for Kafka's confirmation.
    ///
    /// # Errors
    /// [`EventLogError::NotConfirmed`] when the broker refused it or did not confirm it in time,
    /// [`EventLogError::Unwritable`] when the event's partition cannot take a write now.
    pub async fn append(
        &self,
        event: &RegistryEvent,
        payload: &Payload,
        extra: Vec<(&'static str, String)>,
    ) -> Result<RecordPosition, EventLogError> {
        let partition = self.partitioning.partition_of(event.customer_id());
        self.writable(event.customer_id())?;
        let key = event.customer_id().to_string();
        let mut headers = record_headers(
            event,
            payload.schema_version,
            &self.settings.topic,
            self.partitioning,
        );
        headers.extend(extra);
        let mut owned = OwnedHeaders::new_with_capacity(headers.len());
        for (name, value) in &headers {
            owned = owned.insert(Header {
                key: name,
                value: Some(value.as_str()),
            });
        }
        let headers = owned;
        let record = FutureRecord::to(&self.settings.topic)
            .partition(partition)
            .key(&key)
            .payload(&payload.bytes)
            .headers(headers);
        fail::fail_point!("log-produce", |_| Err(EventLogError::NotConfirmed(
            KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)
        )));
        let producer = self.producer.current();
        let delivery = producer
            .send(record, Timeout::After(DELIVERY_TIMEOUT))
            .await
            .map_err(|(error, _)| {
                self.producer.replace_if_fatal(&producer);
                let failed = EventLogError::NotConfirmed(error);
                // The timeout hides why; the cluster's state tells it.
                match self.health.shortage(partition) {
                    Some(shortage) => EventLogError::Unwritable {
                        shortage,
                        outcome_unknown: failed.outcome_unknown(),
                    },
                    None => failed,
                }
            })?;
        // The record is written; the answer is lost on its way (the outcome is unknown).
        fail::fail_point!("log-produce-answer", |_| Err(EventLogError::NotConfirmed(
            KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut)
        )));
        Ok(RecordPosition {
            partition: delivery.partition,
            offset: delivery.offset,
        })
    }

    /// Refuses at once when the partition of customer `id`'s events cannot take a write now (too
    /// few in-sync replicas answer): before anything is sent, so nothing was written.
    ///
    /// # Errors
    /// [`EventLogError::Unwritable`], its outcome known.
    pub fn writable(&self, id: CustomerId) -> Result<(), EventLogError> {
        match self.health.shortage(self.partitioning.partition_of(id)) {
            Some(shortage) => Err(EventLogError::Unwritable {
                shortage,
                outcome_unknown: false,
            }),
            None => Ok(()),
        }
    }

    /// The partition every event of customer `id` goes to.
    pub fn partition_of(&self, id: CustomerId) -> i32 {
        self.partitioning.partition_of(id)
    }

    /// The end of `partition` now (its high watermark: the offset its next record will get;
    /// every acknowledged record lies below it), or `None` when the leader cannot say now.
    /// Tells a wait that can succeed (a position below it) from one that never will.
    pub async fn end_of(&self, partition: i32) -> Option<i64> {
        let producer = self.producer.current();
        let topic = self.settings.topic.clone();
        let read = tokio::task::spawn_blocking(move || {
            fail::fail_point!("log-offset-read", |_| Err(KafkaError::MetadataFetch(
                RDKafkaErrorCode::BrokerTransportFailure
            )));
            producer
                .client()
                .fetch_watermarks(&topic, partition, END_TIMEOUT)
        })
        .await;
        match read {
            Ok(Ok((_, high))) => Some(high),
            Ok(Err(error)) => {
                tracing::debug!(%error, partition, "cannot read the partition's end now");
                None
            }
            Err(_) => None,
        }
    }

    /// Records handed to the producer and not yet confirmed by Kafka.
    pub fn queued(&self) -> u64 {
        u64::try_from(self.producer.current().in_flight_count()).unwrap_or(0)
    }

    /// Waits, up to `timeout`, for every record in flight to be confirmed.
    ///
    /// # Errors
    /// [`EventLogError::NotConfirmed`] when some were not confirmed in time.
    pub fn flush(&self, timeout: Duration) -> Result<(), EventLogError> {
        self.producer
            .current()
            .flush(Timeout::After(timeout))
            .map_err(EventLogError::NotConfirmed)
    }
}

/// An idempotent producer, replaced when librdkafka declares it fatally broken (a fenced
/// idempotent producer cannot send again; a new one starts a fresh idempotent session), so that
/// the next write can succeed without a restart: the event log's and the keys topic's.
pub(super) struct RenewedProducer {
    current: RwLock<FutureProducer<KafkaLogs>>,
    settings: EventLogSettings,
}

impl RenewedProducer {
    /// A producer for the brokers of `settings`.
    ///
    /// # Errors
    /// [`EventLogError::Setup`] when librdkafka rejects the configuration.
    pub(super) fn connect(settings: &EventLogSettings) -> Result<Self, EventLogError> {
        Ok(Self {
            current: RwLock::new(new_producer(settings)?),
            settings: settings.clone(),
        })
    }

    /// The producer to send with now.
    pub(super) fn current(&self) -> FutureProducer<KafkaLogs> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// After a failed send: if `failed` is fatally broken and still the current producer, put a
    /// new one in its place.
    pub(super) fn replace_if_fatal(&self, failed: &FutureProducer<KafkaLogs>) {
        let Some((code, reason)) = failed.client().fatal_error() else {
            return;
        };
        tracing::warn!(%code, %reason, "the producer failed fatally; starting a new one");
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if current.client().fatal_error().is_some() {
            match new_producer(&self.settings) {
                Ok(fresh) => *current = fresh,
                Err(error) => tracing::error!(%error, "cannot start a new producer"),
            }
        }
    }
}

/// The headers of `event`'s record: the registry's own (`event-type`, `schema-version`, and the
/// `partitioning` it was routed by) and the CloudEvents Kafka protocol binding's, binary mode
/// (`ce_*`, `content-type`), so generic tooling routes and dedupes records without reading their
/// value.
pub fn record_headers(
    event: &RegistryEvent,
    schema_version: u32,
    topic: &str,
    partitioning: Partitioning,
) -> Vec<(&'static str, String)> {
    let event_type = event.event_type();
    let schema = event_type
        .strip_prefix("Customer")
        .unwrap_or(event_type)
        .to_ascii_lowercase();
    vec![
        ("event-type", event_type.to_owned()),
        ("schema-version", schema_version.to_string()),
        (PARTITIONING_HEADER, partitioning.to_string()),
        ("content-type", "application/json".to_owned()),
        ("ce_specversion", "1.0".to_owned()),
        ("ce_id", event.event_id().to_string()),
        (
            "ce_type",
            format!("customer-registry.{event_type}.v{schema_version}"),
        ),
        ("ce_source", format!("/customer-registry/{topic}")),
        (
            "ce_time",
            event
                .occurred_at()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        ),
        ("ce_subject", event.customer_id().to_string()),
        (
            "ce_dataschema",
            format!(
                "https://customer-registry.invalid/events/customer-{schema}.v{schema_version}.schema.json"
            ),
        ),
    ]
}

/// A producer whose every record is confirmed by the in-sync replicas (`acks=all`), idempotent,
/// within [`DELIVERY_TIMEOUT`]: the event log's and the keys topic's.
fn new_producer(settings: &EventLogSettings) -> Result<FutureProducer<KafkaLogs>, EventLogError> {
    client_config(&settings.kafka_bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set(
            "message.timeout.ms",
            DELIVERY_TIMEOUT.as_millis().to_string(),
        )
        .create_with_context(KafkaLogs)
        .map_err(EventLogError::Setup)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AccountId, Customer, CustomerCreated, CustomerDeleted, CustomerDetails};

    #[test]
    fn records_carry_the_cloudevents_binary_mode_headers() {
        let customer =
            Customer::register(CustomerDetails::for_account(AccountId::parse(42).unwrap()));
        let created = RegistryEvent::CustomerCreated(CustomerCreated::new(customer.clone()));
        let deleted = RegistryEvent::CustomerDeleted(CustomerDeleted {
            event_id: uuid::Uuid::now_v7(),
            occurred_at: customer.created_at,
            audit: Default::default(),
            customer_id: customer.id,
            account_id: customer.details.account_id,
            version: 2,
        });
        for event in [created, deleted] {
            let headers: std::collections::BTreeMap<&str, String> =
                record_headers(&event, 1, "customers.events", Partitioning::over(12))
                    .into_iter()
                    .collect();
            let kind = event.event_type();
            assert_eq!(headers["ce_specversion"], "1.0");
            assert_eq!(headers["ce_id"], event.event_id().to_string());
            assert_eq!(headers["ce_type"], format!("customer-registry.{kind}.v1"));
            assert_eq!(headers["ce_source"], "/customer-registry/customers.events");
            assert_eq!(headers["ce_subject"], customer.id.to_string());
            assert_eq!(headers["content-type"], "application/json");
            assert_eq!(headers["event-type"], kind);
            assert_eq!(headers["partitioning"], "crc32/12");
            assert!(headers["ce_dataschema"].ends_with(&format!(
                "/events/customer-{}.v1.schema.json",
                kind.trim_start_matches("Customer").to_lowercase()
            )));
            assert_eq!(
                chrono::DateTime::parse_from_rfc3339(&headers["ce_time"]).unwrap(),
                event.occurred_at()
            );
        }
    }

    #[test]
    fn a_fatally_broken_producer_is_replaced_and_a_sound_one_kept() {
        let settings = EventLogSettings {
            // No broker is needed: librdkafka connects lazily.
            kafka_bootstrap: "127.0.0.1:1".into(),
            topic: "customers".into(),
            topic_partitions: 1,
            topic_replication: None,
        };
        let producer = RenewedProducer::connect(&settings).unwrap();
        let sound = producer.current();
        producer.replace_if_fatal(&sound);
        assert!(producer.current().client().native_ptr() == sound.client().native_ptr());
        // SAFETY: the pointer is the live client's, and the reason a NUL-terminated literal.
        let raised = unsafe {
            rdkafka::bindings::rd_kafka_test_fatal_error(
                sound.client().native_ptr(),
                rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                c"fenced, as a test".as_ptr(),
            )
        };
        assert_eq!(
            raised,
            rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
        );
        assert!(sound.client().fatal_error().is_some());
        producer.replace_if_fatal(&sound);
        let renewed = producer.current();
        assert!(renewed.client().native_ptr() != sound.client().native_ptr());
        assert!(renewed.client().fatal_error().is_none());
    }
}
