//! The Kafka producer that appends events: idempotent, `acks=all`, keyed by customer id.

use super::client::{client_config, KafkaLogs};
use super::position::RecordPosition;
use crate::config::EventLogSettings;
use crate::domain::{RegistryEvent, SCHEMA_VERSION};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

/// How long a record may wait for the broker's confirmation before the create fails.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

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
}

impl EventLogError {
    /// Whether the event may have been written even though Kafka did not confirm it: a timeout
    /// can hide a write the broker stored. Only errors raised before anything was sent are known
    /// to have written nothing.
    pub fn outcome_unknown(&self) -> bool {
        let code = match self {
            EventLogError::Setup(_) => return false,
            EventLogError::TimedOut(_) => return true,
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

/// The append-only event log on the registry's topic.
pub struct EventLog {
    /// Replaced when librdkafka declares the producer fatally broken (a fenced idempotent
    /// producer cannot send again); a new one starts a fresh idempotent session.
    producer: RwLock<FutureProducer<KafkaLogs>>,
    settings: EventLogSettings,
}

impl EventLog {
    /// A producer for `settings.topic`.
    ///
    /// # Errors
    /// [`EventLogError::Setup`] when librdkafka rejects the configuration.
    pub fn connect(settings: &EventLogSettings) -> Result<Self, EventLogError> {
        Ok(Self {
            producer: RwLock::new(new_producer(settings)?),
            settings: settings.clone(),
        })
    }

    /// Appends `event`, keyed by its customer id, and waits for Kafka's confirmation.
    ///
    /// # Errors
    /// [`EventLogError::NotConfirmed`] when the broker refused it or did not confirm it in time.
    pub async fn append(&self, event: &RegistryEvent) -> Result<RecordPosition, EventLogError> {
        let key = event.customer_id().to_string();
        let payload = event.encode();
        let version = SCHEMA_VERSION.to_string();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "event-type",
                value: Some(event.event_type()),
            })
            .insert(Header {
                key: "schema-version",
                value: Some(version.as_str()),
            })
            .insert(Header {
                key: "content-type",
                value: Some("application/json"),
            });
        let record = FutureRecord::to(&self.settings.topic)
            .key(&key)
            .payload(&payload)
            .headers(headers);
        let producer = self.current_producer();
        let delivery = producer
            .send(record, Timeout::After(DELIVERY_TIMEOUT))
            .await
            .map_err(|(error, _)| {
                self.replace_if_fatal(&producer);
                EventLogError::NotConfirmed(error)
            })?;
        Ok(RecordPosition {
            partition: delivery.partition,
            offset: delivery.offset,
        })
    }

    /// Records handed to the producer and not yet confirmed by Kafka.
    pub fn queued(&self) -> u64 {
        u64::try_from(self.current_producer().in_flight_count()).unwrap_or(0)
    }

    /// Waits, up to `timeout`, for every record in flight to be confirmed.
    ///
    /// # Errors
    /// [`EventLogError::NotConfirmed`] when some were not confirmed in time.
    pub fn flush(&self, timeout: Duration) -> Result<(), EventLogError> {
        self.current_producer()
            .flush(Timeout::After(timeout))
            .map_err(EventLogError::NotConfirmed)
    }

    fn current_producer(&self) -> FutureProducer<KafkaLogs> {
        self.producer
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// After a failed send: if `failed` is fatally broken and still the current producer, put a
    /// new one in its place, so the next create can succeed without a restart.
    fn replace_if_fatal(&self, failed: &FutureProducer<KafkaLogs>) {
        let Some((code, reason)) = failed.client().fatal_error() else {
            return;
        };
        tracing::warn!(%code, %reason, "the producer failed fatally; starting a new one");
        let mut current = self
            .producer
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if current.client().fatal_error().is_some() {
            match new_producer(&self.settings) {
                Ok(fresh) => *current = fresh,
                Err(error) => tracing::error!(%error, "cannot start a new producer"),
            }
        }
    }
}

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
