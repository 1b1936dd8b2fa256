//! The events of the public contract (`events/`): an envelope naming the type and schema version,
//! around a type-specific `data` object. Consumers read `eventType` and `schemaVersion` first.

use super::customer::{rfc3339_millis, Customer, CustomerId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The schema version this build writes and the newest it reads.
pub const SCHEMA_VERSION: u32 = 1;

/// `eventType` of [`CustomerCreated`].
const CUSTOMER_CREATED: &str = "CustomerCreated";

/// Every event the registry writes to its topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryEvent {
    /// A customer was registered.
    CustomerCreated(CustomerCreated),
}

/// A customer was registered: the full customer as the API answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerCreated {
    /// Unique per event; consumers dedupe on it.
    pub event_id: Uuid,
    /// When the event was recorded (the customer's `createdAt`).
    pub occurred_at: DateTime<Utc>,
    /// Who asked, and in which request.
    pub audit: AuditTrail,
    /// The customer created.
    pub customer: Customer,
}

/// Who caused an event, for auditors: optional in the v1 envelope, since events written before
/// they existed lack them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditTrail {
    /// The id of the HTTP request that caused the event (`X-Request-Id`).
    pub request_id: Option<String>,
    /// The authenticated principal; `anonymous` until the API has authentication.
    pub actor: Option<String>,
}

impl CustomerCreated {
    /// The event that records `customer`'s creation, with a fresh event id.
    pub fn new(customer: Customer) -> Self {
        Self::with_event_id(Uuid::now_v7(), customer)
    }

    /// The event that records `customer`'s creation, with a given event id (one derived from an
    /// idempotency key).
    pub fn with_event_id(event_id: Uuid, customer: Customer) -> Self {
        Self {
            event_id,
            occurred_at: customer.created_at,
            audit: AuditTrail::default(),
            customer,
        }
    }

    /// The same event, recording who caused it.
    pub fn caused_by(mut self, audit: AuditTrail) -> Self {
        self.audit = audit;
        self
    }
}

/// Why bytes read from the topic are not an event this build can apply.
#[derive(Debug, thiserror::Error)]
pub enum EventDecodeError {
    /// A record with no value at all.
    #[error("record has no value")]
    Empty,
    /// Not JSON, or not an envelope, or a payload that does not match its schema.
    #[error("malformed event: {0}")]
    Malformed(#[from] serde_json::Error),
    /// An `eventType` this build does not know.
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    /// A `schemaVersion` newer than this build reads.
    #[error("{event_type} schema version {version} is newer than the supported {SCHEMA_VERSION}")]
    UnsupportedVersion {
        /// The event's type.
        event_type: String,
        /// The version it declared.
        version: u32,
    },
}

/// The wire form of every event.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<T> {
    event_id: Uuid,
    event_type: String,
    schema_version: u32,
    #[serde(with = "rfc3339_millis")]
    occurred_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    actor: Option<String>,
    data: T,
}

impl RegistryEvent {
    /// The `eventType` written in the envelope and in the `event-type` Kafka header.
    pub fn event_type(&self) -> &'static str {
        match self {
            RegistryEvent::CustomerCreated(_) => CUSTOMER_CREATED,
        }
    }

    /// The customer the event is about: its id is the Kafka record key.
    pub fn customer_id(&self) -> CustomerId {
        match self {
            RegistryEvent::CustomerCreated(created) => created.customer.id,
        }
    }

    /// The event's JSON bytes, as published.
    pub fn encode(&self) -> Vec<u8> {
        let RegistryEvent::CustomerCreated(created) = self;
        let envelope = Envelope {
            event_id: created.event_id,
            event_type: self.event_type().to_owned(),
            schema_version: SCHEMA_VERSION,
            occurred_at: created.occurred_at,
            request_id: created.audit.request_id.clone(),
            actor: created.audit.actor.clone(),
            data: &created.customer,
        };
        serde_json::to_vec(&envelope).expect("an envelope of plain data always serialises")
    }

    /// Reads an event from the bytes of a Kafka record.
    ///
    /// # Errors
    /// [`EventDecodeError`] when the bytes are not an event of a type and version this build reads.
    pub fn decode(bytes: &[u8]) -> Result<RegistryEvent, EventDecodeError> {
        // The common case in one pass: a CustomerCreated this build reads.
        if let Ok(envelope) = serde_json::from_slice::<Envelope<Customer>>(bytes) {
            if envelope.event_type == CUSTOMER_CREATED && envelope.schema_version <= SCHEMA_VERSION
            {
                return Ok(RegistryEvent::CustomerCreated(CustomerCreated {
                    event_id: envelope.event_id,
                    occurred_at: envelope.occurred_at,
                    audit: AuditTrail {
                        request_id: envelope.request_id,
                        actor: envelope.actor,
                    },
                    customer: envelope.data,
                }));
            }
        }
        // Anything else is told apart by its type and version first, its payload read only
        // when they are ones this build reads (then to say what in it is malformed).
        let envelope: Envelope<Box<serde_json::value::RawValue>> = serde_json::from_slice(bytes)?;
        if envelope.event_type != CUSTOMER_CREATED {
            return Err(EventDecodeError::UnknownType(envelope.event_type));
        }
        if envelope.schema_version > SCHEMA_VERSION {
            return Err(EventDecodeError::UnsupportedVersion {
                event_type: envelope.event_type,
                version: envelope.schema_version,
            });
        }
        let customer: Customer = serde_json::from_str(envelope.data.get())?;
        Ok(RegistryEvent::CustomerCreated(CustomerCreated {
            event_id: envelope.event_id,
            occurred_at: envelope.occurred_at,
            audit: AuditTrail {
                request_id: envelope.request_id,
                actor: envelope.actor,
            },
            customer,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AccountId, CustomerDetails};

    fn created() -> RegistryEvent {
        let mut details = CustomerDetails::for_account(AccountId::parse(9).unwrap());
        details
            .set_text(crate::domain::TextField::FirstName, "Émile")
            .unwrap();
        RegistryEvent::CustomerCreated(CustomerCreated::new(Customer::register(details)))
    }

    #[test]
    fn an_event_survives_encode_and_decode() {
        let event = created();
        assert_eq!(RegistryEvent::decode(&event.encode()).unwrap(), event);
    }

    #[test]
    fn the_audit_trail_travels_with_the_event_and_is_optional() {
        let RegistryEvent::CustomerCreated(plain) = created();
        let audited = plain.clone().caused_by(AuditTrail {
            request_id: Some("req-1".into()),
            actor: Some("anonymous".into()),
        });
        let event = RegistryEvent::CustomerCreated(audited);
        let json: serde_json::Value = serde_json::from_slice(&event.encode()).unwrap();
        assert_eq!(
            (json["requestId"].as_str(), json["actor"].as_str()),
            (Some("req-1"), Some("anonymous"))
        );
        assert_eq!(RegistryEvent::decode(&event.encode()).unwrap(), event);
        let without = serde_json::to_vec(&serde_json::json!({
            "eventId": plain.event_id, "eventType": "CustomerCreated", "schemaVersion": 1,
            "occurredAt": "2026-11-25T16:48:31.137Z", "data": plain.customer,
        }))
        .unwrap();
        let RegistryEvent::CustomerCreated(decoded) = RegistryEvent::decode(&without).unwrap();
        assert_eq!(decoded.audit, AuditTrail::default());
    }

    #[test]
    fn the_envelope_names_type_and_version() {
        let json: serde_json::Value = serde_json::from_slice(&created().encode()).unwrap();
        assert_eq!(json["eventType"], "CustomerCreated");
        assert_eq!(json["schemaVersion"], 1);
        assert_eq!(json["data"]["firstName"], "Émile");
    }

    #[test]
    fn unknown_types_newer_versions_and_garbage_are_told_apart() {
        let mut json: serde_json::Value = serde_json::from_slice(&created().encode()).unwrap();
        json["schemaVersion"] = 2.into();
        let newer = RegistryEvent::decode(json.to_string().as_bytes()).unwrap_err();
        assert!(matches!(
            newer,
            EventDecodeError::UnsupportedVersion { version: 2, .. }
        ));
        json["eventType"] = "CustomerDeleted".into();
        let unknown = RegistryEvent::decode(json.to_string().as_bytes()).unwrap_err();
        assert!(
            matches!(unknown, EventDecodeError::UnknownType(name) if name == "CustomerDeleted")
        );
        let garbage = RegistryEvent::decode(b"\xff not json").unwrap_err();
        assert!(matches!(garbage, EventDecodeError::Malformed(_)));
    }

    #[test]
    fn timestamps_outside_the_contract_form_are_malformed() {
        for (field, value) in [
            ("/occurredAt", "2026-11-25T16:48:31.137999Z"),
            ("/data/createdAt", "2026-11-25T17:48:31.137+01:00"),
        ] {
            let mut json: serde_json::Value = serde_json::from_slice(&created().encode()).unwrap();
            *json.pointer_mut(field).unwrap() = value.into();
            let decoded = RegistryEvent::decode(json.to_string().as_bytes());
            assert!(
                matches!(decoded, Err(EventDecodeError::Malformed(_))),
                "{field} = {value}"
            );
        }
    }
}
