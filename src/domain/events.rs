//! The events of the public contract (`events/`): an envelope naming the type and schema version,
//! around a type-specific `data` object. Consumers read `eventType` and `schemaVersion` first.

use super::customer::Customer;
use super::customer_json::{rfc3339_millis, AsCreated};
use super::ids::{AccountId, CustomerId};
use super::patch::{normalised, FieldChange};
use super::text_field::TextField;
use chrono::{DateTime, Utc};
use serde::de::Error as _;
use serde::{Deserialize, Serialize, Serializer};
use uuid::Uuid;

/// The schema version this build writes and the newest it reads, for every event type.
pub const SCHEMA_VERSION: u32 = 1;

/// `eventType` of [`CustomerCreated`].
const CUSTOMER_CREATED: &str = "CustomerCreated";
/// `eventType` of [`CustomerUpdated`].
const CUSTOMER_UPDATED: &str = "CustomerUpdated";
/// `eventType` of [`CustomerDeleted`].
const CUSTOMER_DELETED: &str = "CustomerDeleted";

/// Every event the registry writes to its topic. (A create is the largest by far; an event lives
/// from one record's decode to its apply, so boxing it would cost an allocation per create and
/// save nothing.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryEvent {
    /// A customer was registered.
    CustomerCreated(CustomerCreated),
    /// Some of a customer's fields changed.
    CustomerUpdated(CustomerUpdated),
    /// A customer was deleted.
    CustomerDeleted(CustomerDeleted),
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
    /// The customer created (version 1).
    pub customer: Customer,
}

/// Some fields of a customer changed, taking it to `version`. Applies only to a customer at
/// `version - 1`: the log decides which of two conflicting updates wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerUpdated {
    /// Unique per event.
    pub event_id: Uuid,
    /// When the event was recorded (the customer's new `updatedAt`).
    pub occurred_at: DateTime<Utc>,
    /// Who asked, and in which request.
    pub audit: AuditTrail,
    /// The customer changed.
    pub customer_id: CustomerId,
    /// Its account (never changes; carried so consumers can route without state).
    pub account_id: AccountId,
    /// The version the customer has once this event applies (2 or more).
    pub version: u64,
    /// The fields that change, in the seed's order; at least one.
    pub changes: Vec<FieldChange>,
}

/// A customer was deleted, as its `version`. Applies only to a customer at `version - 1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerDeleted {
    /// Unique per event.
    pub event_id: Uuid,
    /// When the event was recorded.
    pub occurred_at: DateTime<Utc>,
    /// Who asked, and in which request.
    pub audit: AuditTrail,
    /// The customer deleted.
    pub customer_id: CustomerId,
    /// Its account.
    pub account_id: AccountId,
    /// The version this event gives the customer (2 or more).
    pub version: u64,
}

/// Who caused an event, for auditors: optional in the v1 envelope, since events written before
/// they existed lack them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditTrail {
    /// The id of the HTTP request that caused the event (`X-Request-Id`).
    pub request_id: Option<String>,
    /// The authenticated principal (the API key's name), or `anonymous` without authentication.
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

impl CustomerUpdated {
    /// The customer as this event leaves `customer` (which must be at `version - 1`).
    pub fn applied_to(&self, customer: &Customer) -> Customer {
        let mut updated = customer.clone();
        updated.details.apply(&self.changes);
        updated.version = self.version;
        updated.updated_at = self.occurred_at;
        updated
    }
}

impl CustomerDeleted {
    /// The customer as this event leaves `customer` (which must be at `version - 1`): its last
    /// state, at the delete's version and time.
    pub fn applied_to(&self, customer: &Customer) -> Customer {
        let mut deleted = customer.clone();
        deleted.version = self.version;
        deleted.updated_at = self.occurred_at;
        deleted
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

/// `data` of `CustomerUpdated` and `CustomerDeleted` (the latter without `changes`).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ChangeData {
    id: CustomerId,
    account_id: AccountId,
    version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    changes: Option<Changes>,
}

/// The changed fields as a JSON object, a merge patch of the customer: each field's new value,
/// or null when it was cleared.
struct Changes(Vec<FieldChange>);

impl Serialize for Changes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for change in &self.0 {
            map.serialize_entry(change.field.name(), &change.value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Changes {
    /// Only the customer's text fields, each once, each value in the form the field's rule
    /// stores (anything else would be stored differently from the event that carried it).
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw: Vec<(String, Option<String>)> =
            serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?
                .into_iter()
                .map(|(name, value)| match value {
                    serde_json::Value::Null => Ok((name, None)),
                    serde_json::Value::String(text) => Ok((name, Some(text))),
                    other => Err(D::Error::custom(format!(
                        "changes.{name} must be a string or null, not {other}"
                    ))),
                })
                .collect::<Result<_, _>>()?;
        let mut changes = Vec::with_capacity(raw.len());
        for (name, value) in raw {
            let field = TextField::from_name(&name).ok_or_else(|| {
                D::Error::custom(format!("changes.{name} is not a customer field"))
            })?;
            if let Some(text) = &value {
                match normalised(field, text) {
                    Ok(stored) if &stored == text => {}
                    Ok(_) => {
                        return Err(D::Error::custom(format!(
                            "changes.{name} is not in the form the field's rule stores"
                        )))
                    }
                    Err(violation) => {
                        return Err(D::Error::custom(format!(
                            "changes.{name} {}",
                            violation.message
                        )))
                    }
                }
            }
            changes.push(FieldChange { field, value });
        }
        if changes.is_empty() {
            return Err(D::Error::custom("changes must name at least one field"));
        }
        changes.sort_by_key(|change| TextField::ALL.iter().position(|f| *f == change.field));
        Ok(Changes(changes))
    }
}

impl RegistryEvent {
    /// The `eventType` written in the envelope and in the `event-type` Kafka header.
    pub fn event_type(&self) -> &'static str {
        match self {
            RegistryEvent::CustomerCreated(_) => CUSTOMER_CREATED,
            RegistryEvent::CustomerUpdated(_) => CUSTOMER_UPDATED,
            RegistryEvent::CustomerDeleted(_) => CUSTOMER_DELETED,
        }
    }

    /// The customer the event is about: its id is the Kafka record key.
    pub fn customer_id(&self) -> CustomerId {
        match self {
            RegistryEvent::CustomerCreated(created) => created.customer.id,
            RegistryEvent::CustomerUpdated(updated) => updated.customer_id,
            RegistryEvent::CustomerDeleted(deleted) => deleted.customer_id,
        }
    }

    /// The event's id.
    pub fn event_id(&self) -> Uuid {
        match self {
            RegistryEvent::CustomerCreated(created) => created.event_id,
            RegistryEvent::CustomerUpdated(updated) => updated.event_id,
            RegistryEvent::CustomerDeleted(deleted) => deleted.event_id,
        }
    }

    /// When the event was recorded.
    pub fn occurred_at(&self) -> DateTime<Utc> {
        match self {
            RegistryEvent::CustomerCreated(created) => created.occurred_at,
            RegistryEvent::CustomerUpdated(updated) => updated.occurred_at,
            RegistryEvent::CustomerDeleted(deleted) => deleted.occurred_at,
        }
    }

    /// The version the customer has once this event applies.
    pub fn version(&self) -> u64 {
        match self {
            RegistryEvent::CustomerCreated(_) => 1,
            RegistryEvent::CustomerUpdated(updated) => updated.version,
            RegistryEvent::CustomerDeleted(deleted) => deleted.version,
        }
    }

    fn audit(&self) -> &AuditTrail {
        match self {
            RegistryEvent::CustomerCreated(created) => &created.audit,
            RegistryEvent::CustomerUpdated(updated) => &updated.audit,
            RegistryEvent::CustomerDeleted(deleted) => &deleted.audit,
        }
    }

    /// The event's JSON bytes, as published.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            RegistryEvent::CustomerCreated(created) => {
                self.encode_with(AsCreated(&created.customer))
            }
            RegistryEvent::CustomerUpdated(updated) => self.encode_with(ChangeData {
                id: updated.customer_id,
                account_id: updated.account_id,
                version: updated.version,
                changes: Some(Changes(updated.changes.clone())),
            }),
            RegistryEvent::CustomerDeleted(deleted) => self.encode_with(ChangeData {
                id: deleted.customer_id,
                account_id: deleted.account_id,
                version: deleted.version,
                changes: None,
            }),
        }
    }

    fn encode_with<T: Serialize>(&self, data: T) -> Vec<u8> {
        let audit = self.audit();
        let envelope = Envelope {
            event_id: self.event_id(),
            event_type: self.event_type().to_owned(),
            schema_version: SCHEMA_VERSION,
            occurred_at: self.occurred_at(),
            request_id: audit.request_id.clone(),
            actor: audit.actor.clone(),
            data,
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
                return Ok(created(envelope));
            }
        }
        // Anything else is told apart by its type and version first, its payload read only
        // when they are ones this build reads (then to say what in it is malformed).
        let envelope: Envelope<Box<serde_json::value::RawValue>> = serde_json::from_slice(bytes)?;
        if ![CUSTOMER_CREATED, CUSTOMER_UPDATED, CUSTOMER_DELETED]
            .contains(&envelope.event_type.as_str())
        {
            return Err(EventDecodeError::UnknownType(envelope.event_type));
        }
        if envelope.schema_version > SCHEMA_VERSION {
            return Err(EventDecodeError::UnsupportedVersion {
                event_type: envelope.event_type,
                version: envelope.schema_version,
            });
        }
        let data = envelope.data.get();
        let audit = AuditTrail {
            request_id: envelope.request_id,
            actor: envelope.actor,
        };
        let (event_id, occurred_at) = (envelope.event_id, envelope.occurred_at);
        match envelope.event_type.as_str() {
            CUSTOMER_CREATED => Ok(created(Envelope {
                event_id,
                event_type: envelope.event_type,
                schema_version: envelope.schema_version,
                occurred_at,
                request_id: audit.request_id,
                actor: audit.actor,
                data: serde_json::from_str::<Customer>(data)?,
            })),
            kind => {
                let change: ChangeData = serde_json::from_str(data)?;
                if change.version < 2 {
                    return Err(serde_json::Error::custom(
                        "data.version must be 2 or more (version 1 is the create)",
                    )
                    .into());
                }
                let updating = kind == CUSTOMER_UPDATED;
                match (updating, change.changes) {
                    (true, Some(Changes(changes))) => {
                        Ok(RegistryEvent::CustomerUpdated(CustomerUpdated {
                            event_id,
                            occurred_at,
                            audit,
                            customer_id: change.id,
                            account_id: change.account_id,
                            version: change.version,
                            changes,
                        }))
                    }
                    (false, None) => Ok(RegistryEvent::CustomerDeleted(CustomerDeleted {
                        event_id,
                        occurred_at,
                        audit,
                        customer_id: change.id,
                        account_id: change.account_id,
                        version: change.version,
                    })),
                    (true, None) => {
                        Err(serde_json::Error::custom("CustomerUpdated needs data.changes").into())
                    }
                    (false, Some(_)) => {
                        Err(serde_json::Error::custom("CustomerDeleted has no data.changes").into())
                    }
                }
            }
        }
    }
}

/// The `CustomerCreated` an envelope holds: a created customer is at version 1, updated when
/// created, whatever else the data says.
fn created(envelope: Envelope<Customer>) -> RegistryEvent {
    let mut customer = envelope.data;
    customer.version = 1;
    customer.updated_at = customer.created_at;
    RegistryEvent::CustomerCreated(CustomerCreated {
        event_id: envelope.event_id,
        occurred_at: envelope.occurred_at,
        audit: AuditTrail {
            request_id: envelope.request_id,
            actor: envelope.actor,
        },
        customer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CustomerDetails;

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
    fn a_created_code_travels_with_the_event_and_must_derive_the_id() {
        let account = AccountId::parse(9).unwrap();
        let code = crate::domain::CustomerCode::parse("ERP-1").unwrap();
        let mut details = CustomerDetails::for_account(account);
        details.code = Some(code.clone());
        let customer = Customer::register_as(code.customer_id(account), details);
        let event = RegistryEvent::CustomerCreated(CustomerCreated::new(customer));
        let bytes = event.encode();
        assert_eq!(RegistryEvent::decode(&bytes).unwrap(), event);
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["data"]["code"], "ERP-1");

        // Before contract v1.3 there was no code (it is the id), and a code equal to the id is
        // the same; a code the id does not derive from is malformed.
        let plain = created();
        let mut json: serde_json::Value = serde_json::from_slice(&plain.encode()).unwrap();
        assert_eq!(json["data"]["code"], json["data"]["id"]);
        json["data"].as_object_mut().unwrap().remove("code");
        assert_eq!(
            RegistryEvent::decode(json.to_string().as_bytes()).unwrap(),
            plain
        );
        json["data"]["code"] = "ERP-1".into();
        let error = RegistryEvent::decode(json.to_string().as_bytes()).unwrap_err();
        assert!(error.to_string().contains("derives"), "{error}");
        json["data"]["code"] = " ERP-1".into();
        assert!(RegistryEvent::decode(json.to_string().as_bytes()).is_err());
    }

    #[test]
    fn the_audit_trail_travels_with_the_event_and_is_optional() {
        let RegistryEvent::CustomerCreated(plain) = created() else {
            unreachable!()
        };
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
        let RegistryEvent::CustomerCreated(decoded) = RegistryEvent::decode(&without).unwrap()
        else {
            panic!("a create decodes as one")
        };
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
        json["eventType"] = "CustomerMerged".into();
        let unknown = RegistryEvent::decode(json.to_string().as_bytes()).unwrap_err();
        assert!(matches!(unknown, EventDecodeError::UnknownType(name) if name == "CustomerMerged"));
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

    fn updated() -> RegistryEvent {
        let RegistryEvent::CustomerCreated(created) = created() else {
            unreachable!()
        };
        RegistryEvent::CustomerUpdated(CustomerUpdated {
            event_id: Uuid::now_v7(),
            occurred_at: created.occurred_at,
            audit: AuditTrail::default(),
            customer_id: created.customer.id,
            account_id: created.customer.details.account_id,
            version: 2,
            changes: vec![
                FieldChange {
                    field: TextField::LastName,
                    value: Some("Zoë".into()),
                },
                FieldChange {
                    field: TextField::City,
                    value: None,
                },
            ],
        })
    }

    #[test]
    fn updates_and_deletes_survive_encode_and_decode() {
        let update = updated();
        let json: serde_json::Value = serde_json::from_slice(&update.encode()).unwrap();
        assert_eq!(json["eventType"], "CustomerUpdated");
        assert_eq!(
            json["data"]["changes"],
            serde_json::json!({"lastName": "Zoë", "city": null})
        );
        assert_eq!(RegistryEvent::decode(&update.encode()).unwrap(), update);
        let delete = RegistryEvent::CustomerDeleted(CustomerDeleted {
            event_id: Uuid::now_v7(),
            occurred_at: update.occurred_at(),
            audit: AuditTrail {
                request_id: Some("r".into()),
                actor: Some("ops".into()),
            },
            customer_id: update.customer_id(),
            account_id: AccountId::parse(9).unwrap(),
            version: 3,
        });
        let json: serde_json::Value = serde_json::from_slice(&delete.encode()).unwrap();
        assert_eq!(json["data"]["version"], 3);
        assert!(json["data"].get("changes").is_none());
        assert_eq!(RegistryEvent::decode(&delete.encode()).unwrap(), delete);
    }

    #[test]
    fn changes_outside_the_contract_are_malformed() {
        for (pointer, value) in [
            ("/data/changes", serde_json::json!({})),
            ("/data/changes", serde_json::json!({"nickname": "x"})),
            ("/data/changes", serde_json::json!({"lastName": " Padded "})),
            ("/data/changes", serde_json::json!({"countryCode": "fr"})),
            ("/data/changes", serde_json::json!({"city": 5})),
            ("/data/version", serde_json::json!(1)),
            ("/data/extra", serde_json::json!(true)),
        ] {
            let mut json: serde_json::Value = serde_json::from_slice(&updated().encode()).unwrap();
            let (parent, name) = pointer.rsplit_once('/').unwrap();
            json.pointer_mut(parent).unwrap()[name] = value.clone();
            let decoded = RegistryEvent::decode(json.to_string().as_bytes());
            assert!(
                matches!(decoded, Err(EventDecodeError::Malformed(_))),
                "{pointer} = {value}: {decoded:?}"
            );
        }
        let mut deleting: serde_json::Value = serde_json::from_slice(&updated().encode()).unwrap();
        deleting["eventType"] = "CustomerDeleted".into();
        assert!(matches!(
            RegistryEvent::decode(deleting.to_string().as_bytes()),
            Err(EventDecodeError::Malformed(_))
        ));
    }
}
