//! The Kafka producer that appends events: idempotent, `acks=all`, keyed by customer id.

use crate::config::EventLogSettings;
use crate::domain::{RegistryEvent, SCHEMA_VERSION};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use rdkafka::ClientConfig;
use std::time::Duration;

/// How long a record may wait for the broker's confirmation before the create fails.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Where an appended record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogPosition {
    /// The topic partition.
    pub partition: i32,
    /// The record's offset in it.
    pub offset: i64,
}

/// Why an event could not be appended.
#[derive(Debug, thiserror::Error)]
pub enum EventLogError {
    /// The producer could not be set up.
    #[error("cannot create the Kafka producer: {0}")]
    Setup(KafkaError),
    /// Kafka did not confirm the write in time, or refused it.
    #[error("Kafka did not confirm the event: {0}")]
    NotConfirmed(KafkaError),
}

/// The append-only event log on the registry's topic.
pub struct EventLog {
    producer: FutureProducer,
    topic: String,
}

impl EventLog {
    /// A producer for `settings.topic`.
    ///
    /// # Errors
    /// [`EventLogError::Setup`] when librdkafka rejects the configuration.
    pub fn connect(settings: &EventLogSettings) -> Result<Self, EventLogError> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", &settings.kafka_bootstrap)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "2")
            .set(
                "message.timeout.ms",
                DELIVERY_TIMEOUT.as_millis().to_string(),
            )
            .create()
            .map_err(EventLogError::Setup)?;
        Ok(Self {
            producer,
            topic: settings.topic.clone(),
        })
    }

    /// Appends `event`, keyed by its customer id, and waits for Kafka's confirmation.
    ///
    /// # Errors
    /// [`EventLogError::NotConfirmed`] when the broker refused it or did not confirm it in time.
    pub async fn append(&self, event: &RegistryEvent) -> Result<LogPosition, EventLogError> {
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
        let record = FutureRecord::to(&self.topic)
            .key(&key)
            .payload(&payload)
            .headers(headers);
        let delivery = self
            .producer
            .send(record, Timeout::After(DELIVERY_TIMEOUT))
            .await
            .map_err(|(error, _)| EventLogError::NotConfirmed(error))?;
        Ok(LogPosition {
            partition: delivery.partition,
            offset: delivery.offset,
        })
    }

    /// Waits, up to `timeout`, for every record in flight to be confirmed.
    ///
    /// # Errors
    /// [`EventLogError::NotConfirmed`] when some were not confirmed in time.
    pub fn flush(&self, timeout: Duration) -> Result<(), EventLogError> {
        self.producer
            .flush(Timeout::After(timeout))
            .map_err(EventLogError::NotConfirmed)
    }
}
