//! The parts of the wire form every schema version shares: the envelope, the `data` of changes
//! and deletes, and the changed fields as a merge patch.

use super::{AuditTrail, CustomerCreated, CustomerDeleted, CustomerUpdated, RegistryEvent};
use crate::domain::customer::Customer;
use crate::domain::customer_json::rfc3339_millis;
use crate::domain::ids::{AccountId, CustomerId};
use crate::domain::patch::{normalised, FieldChange};
use crate::domain::text_field::TextField;
use chrono::{DateTime, Utc};
use serde::de::Error as _;
use serde::{Deserialize, Serialize, Serializer};
use uuid::Uuid;

/// The schema version of events whose personal fields are sealed (and of `CustomerErased`,
/// new in it).
pub const SEALED_SCHEMA_VERSION: u32 = 2;

/// `eventType` of [`CustomerCreated`].
pub const CUSTOMER_CREATED: &str = "CustomerCreated";
/// `eventType` of `CustomerUpdated`.
pub const CUSTOMER_UPDATED: &str = "CustomerUpdated";
/// `eventType` of `CustomerDeleted`.
pub const CUSTOMER_DELETED: &str = "CustomerDeleted";
/// `eventType` of `CustomerErased`.
pub const CUSTOMER_ERASED: &str = "CustomerErased";

/// The wire form of every event.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<T> {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    #[serde(with = "rfc3339_millis")]
    pub occurred_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    pub data: T,
}

impl<T> Envelope<T> {
    /// `event`'s envelope at `schema_version`, around `data`.
    pub fn of(event: &RegistryEvent, schema_version: u32, data: T) -> Self {
        let audit = event.audit();
        Envelope {
            event_id: event.event_id(),
            event_type: event.event_type().to_owned(),
            schema_version,
            occurred_at: event.occurred_at(),
            request_id: audit.request_id.clone(),
            actor: audit.actor.clone(),
            data,
        }
    }

    /// The same envelope around other data.
    pub fn with_data<U>(self, data: U) -> Envelope<U> {
        Envelope {
            event_id: self.event_id,
            event_type: self.event_type,
            schema_version: self.schema_version,
            occurred_at: self.occurred_at,
            request_id: self.request_id,
            actor: self.actor,
            data,
        }
    }

    /// Who caused the event.
    pub fn audit(&self) -> AuditTrail {
        AuditTrail {
            request_id: self.request_id.clone(),
            actor: self.actor.clone(),
        }
    }

    /// The envelope's bytes.
    pub fn to_bytes(&self) -> Vec<u8>
    where
        T: Serialize,
    {
        serde_json::to_vec(self).expect("an envelope of plain data always serialises")
    }
}

/// The `CustomerCreated` an envelope holds: a created customer is at version 1, updated when
/// created, whatever else the data says.
pub fn created(envelope: Envelope<Customer>) -> RegistryEvent {
    let audit = envelope.audit();
    let mut customer = envelope.data;
    customer.version = 1;
    customer.updated_at = customer.created_at;
    RegistryEvent::CustomerCreated(CustomerCreated {
        event_id: envelope.event_id,
        occurred_at: envelope.occurred_at,
        audit,
        customer,
    })
}

/// The `data` version 1 gives `CustomerUpdated` and `CustomerDeleted` (the latter without
/// `changes`), and version 2 gives `CustomerDeleted`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeData {
    pub id: CustomerId,
    pub account_id: AccountId,
    pub version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<Changes>,
}

/// The `CustomerUpdated` (with `changes`) or `CustomerDeleted` (without) that `envelope` holds
/// for customer `id` of `account_id` at `version`; `member` names where the changes travel, for
/// the error that says they are missing or out of place.
pub fn change_event<T>(
    envelope: &Envelope<T>,
    (id, account_id, version): (CustomerId, AccountId, u64),
    changes: Option<Vec<FieldChange>>,
    member: &str,
) -> Result<RegistryEvent, serde_json::Error> {
    let version = change_version(version)?;
    let (event_id, occurred_at, audit) =
        (envelope.event_id, envelope.occurred_at, envelope.audit());
    match (envelope.event_type == CUSTOMER_UPDATED, changes) {
        (true, Some(changes)) => Ok(RegistryEvent::CustomerUpdated(CustomerUpdated {
            event_id,
            occurred_at,
            audit,
            customer_id: id,
            account_id,
            version,
            changes,
        })),
        (false, None) => Ok(RegistryEvent::CustomerDeleted(CustomerDeleted {
            event_id,
            occurred_at,
            audit,
            customer_id: id,
            account_id,
            version,
        })),
        (true, None) => Err(serde_json::Error::custom(format!(
            "CustomerUpdated needs data.{member}"
        ))),
        (false, Some(_)) => Err(serde_json::Error::custom(format!(
            "CustomerDeleted has no data.{member}"
        ))),
    }
}

/// The version a change's `data` names, refused below 2 (version 1 is the create).
fn change_version(version: u64) -> Result<u64, serde_json::Error> {
    if version < 2 {
        return Err(serde_json::Error::custom(
            "data.version must be 2 or more (version 1 is the create)",
        ));
    }
    Ok(version)
}

/// The changed fields as a JSON object, a merge patch of the customer: each field's new value,
/// or null when it was cleared.
pub struct Changes(pub Vec<FieldChange>);

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
                    // Never the value: it may be personal.
                    _ => Err(D::Error::custom(format!(
                        "changes.{name} must be a string or null"
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

impl ChangeData {
    /// The `data` of `deleted`: the same in every version.
    pub fn of_delete(deleted: &CustomerDeleted) -> Self {
        ChangeData {
            id: deleted.customer_id,
            account_id: deleted.account_id,
            version: deleted.version,
            changes: None,
        }
    }
}
