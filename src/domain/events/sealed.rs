//! Schema version 2: the personal fields of each event sealed under a data key of its customer's
//! (`personal`), everything else readable, so that routing, ordering and audits need no key and
//! destroying a customer's keys leaves its events whole but their personal content unreadable.
//! The domain seals and opens nothing itself: the holder of the keys does, through the closure
//! [`encode`] takes and the [`Opener`] [`decode`] takes.

use super::envelope::{
    change_event, created, Changes, Envelope, CUSTOMER_UPDATED, SEALED_SCHEMA_VERSION,
};
use super::RegistryEvent;
use crate::domain::customer::{Customer, CustomerDetails};
use crate::domain::customer_json::{rfc3339_millis, IdentityJson};
use crate::domain::ids::{AccountId, CustomerId};
use crate::domain::patch::FieldChange;
use crate::domain::text_field::TextField;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;
use uuid::Uuid;
use zeroize::Zeroizing;

/// An event's personal fields as they travel: sealed under one of its customer's data keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SealedPersonal {
    /// Which of the customer's data keys sealed them (16 lower-case hex digits).
    pub key_id: String,
    /// Nonce (12 bytes) ‖ ciphertext ‖ tag (16 bytes), base64 on the wire.
    #[serde(serialize_with = "to_base64", deserialize_with = "from_base64")]
    pub sealed: Vec<u8>,
}

/// Opens the personal part of sealed events: whoever holds the customers' data keys.
pub trait Opener {
    /// The plaintext `personal` sealed for `customer` with associated data `context`.
    ///
    /// # Errors
    /// [`OpenError`] when the key is not held, was erased, or the bytes do not open.
    fn open(
        &self,
        customer: CustomerId,
        personal: &SealedPersonal,
        context: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, OpenError>;
}

/// The opener of a reader without keys: every sealed event stays shut.
pub struct NoKeys;

impl Opener for NoKeys {
    fn open(
        &self,
        _: CustomerId,
        _: &SealedPersonal,
        _: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        Err(OpenError::NoKeys)
    }
}

/// Opens as its inner opener does, except that an erased customer's events open to nothing:
/// read so, each event still does what it did to the customer's versions (a create makes it, an
/// update moves it on), without a personal field, so live replicas and replays that meet an
/// erased customer's events end alike.
pub struct ErasedAsEmpty<'a>(pub &'a dyn Opener);

impl Opener for ErasedAsEmpty<'_> {
    fn open(
        &self,
        customer: CustomerId,
        personal: &SealedPersonal,
        context: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        match self.0.open(customer, personal, context) {
            Err(OpenError::Erased) => Ok(Zeroizing::new(b"{}".to_vec())),
            opened => opened,
        }
    }
}

/// Why an event's personal part did not open. No variant holds key material or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The reader was given no keys.
    #[error("the event's personal fields are sealed and this reader holds no keys")]
    NoKeys,
    /// The keys hold no such key of the customer's.
    #[error("data key {0} of the customer is not among the keys")]
    KeyUnknown(String),
    /// The customer's keys were destroyed.
    #[error("the customer's data keys were erased")]
    Erased,
    /// The key was wrapped by a key-encryption key this reader does not hold (yet: a KEK added
    /// on another replica first).
    #[error("the customer's data key was wrapped by {0}, which this reader does not hold")]
    UnknownKek(String),
    /// The key does not unwrap (altered, or wrapped for another customer).
    #[error("the customer's data key does not unwrap")]
    Unwrap,
    /// The bytes do not open with the key and the event's associated data.
    #[error(
        "the personal fields do not open with their key (altered, or sealed for another event)"
    )]
    Inauthentic,
    /// The keys cannot be read now.
    #[error("the keys cannot be read now: {0}")]
    KeysUnreachable(String),
}

impl OpenError {
    /// Whether reading again later may open the event: nothing may be decided about it yet
    /// (the keys cannot be read, or a newer KEK is not held yet).
    pub fn is_passing(&self) -> bool {
        matches!(
            self,
            OpenError::KeysUnreachable(_) | OpenError::UnknownKek(_)
        )
    }
}

/// The associated data sealing binds an event's personal part to: `<customerId>|<eventId>|2`, so
/// that it cannot be moved to another customer, another event or another version's reading.
pub fn context(customer: CustomerId, event_id: Uuid) -> Vec<u8> {
    format!("{customer}|{event_id}|{SEALED_SCHEMA_VERSION}").into_bytes()
}

/// `data` of a version 2 `CustomerCreated`: the customer's readable members and its sealed
/// personal fields.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SealedCreate {
    id: CustomerId,
    code: String,
    account_id: AccountId,
    #[serde(with = "rfc3339_millis")]
    created_at: DateTime<Utc>,
    personal: SealedPersonal,
}

/// `data` of a version 2 `CustomerUpdated` (`personal`: its changes) and `CustomerDeleted`
/// (no `personal`). Members added later are ignored.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SealedChange {
    id: CustomerId,
    account_id: AccountId,
    version: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    personal: Option<SealedPersonal>,
}

/// A customer's present personal fields as a JSON object: what a create seals.
struct PersonalOf<'a>(&'a CustomerDetails);

impl Serialize for PersonalOf<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        for field in TextField::ALL {
            if let Some(text) = self.0.text(field) {
                map.serialize_entry(field.name(), text)?;
            }
        }
        map.end()
    }
}

/// `event` in version 2's form, its personal fields sealed by `seal` (given the plaintext and
/// the associated data; called once, and not for a delete, which carries nothing personal).
///
/// # Errors
/// What `seal` fails with.
pub fn encode<E>(
    event: &RegistryEvent,
    seal: impl FnOnce(&[u8], &[u8]) -> Result<SealedPersonal, E>,
) -> Result<Vec<u8>, E> {
    let context = context(event.customer_id(), event.event_id());
    Ok(match event {
        RegistryEvent::CustomerCreated(created) => {
            let customer = &created.customer;
            let personal = seal(&json(&PersonalOf(&customer.details)), &context)?;
            let data = SealedCreate {
                id: customer.id,
                code: customer.code().to_string(),
                account_id: customer.details.account_id,
                created_at: customer.created_at,
                personal,
            };
            Envelope::of(event, SEALED_SCHEMA_VERSION, data).to_bytes()
        }
        RegistryEvent::CustomerUpdated(updated) => {
            let changes = Changes(updated.changes.clone());
            let personal = seal(&json(&changes), &context)?;
            let data = SealedChange {
                id: updated.customer_id,
                account_id: updated.account_id,
                version: updated.version,
                personal: Some(personal),
            };
            Envelope::of(event, SEALED_SCHEMA_VERSION, data).to_bytes()
        }
        RegistryEvent::CustomerDeleted(deleted) => {
            let data = SealedChange {
                id: deleted.customer_id,
                account_id: deleted.account_id,
                version: deleted.version,
                personal: None,
            };
            Envelope::of(event, SEALED_SCHEMA_VERSION, data).to_bytes()
        }
        RegistryEvent::CustomerErased(erased) => super::erased::encode(event, erased),
    })
}

/// Why a version 2 event was not read.
pub enum SealedDecodeError {
    /// Its readable part is malformed, or what opened is.
    Malformed(serde_json::Error),
    /// Its personal part did not open.
    Shut(OpenError),
}

impl From<serde_json::Error> for SealedDecodeError {
    fn from(error: serde_json::Error) -> Self {
        SealedDecodeError::Malformed(error)
    }
}

/// The version 2 event `envelope` holds (its type known to be one of the three), its personal
/// fields opened by `opener`.
pub fn decode(
    envelope: Envelope<Box<RawValue>>,
    opener: &dyn Opener,
) -> Result<RegistryEvent, SealedDecodeError> {
    let event_id = envelope.event_id;
    if envelope.event_type == super::envelope::CUSTOMER_CREATED {
        let data: SealedCreate = serde_json::from_str(envelope.data.get())?;
        let plaintext = opener
            .open(data.id, &data.personal, &context(data.id, event_id))
            .map_err(SealedDecodeError::Shut)?;
        let customer = customer_of(data, &plaintext)?;
        return Ok(created(envelope.with_data(customer)));
    }
    let change: SealedChange = serde_json::from_str(envelope.data.get())?;
    let changes = match (envelope.event_type == CUSTOMER_UPDATED, &change.personal) {
        (true, Some(personal)) => {
            let plaintext = opener
                .open(change.id, personal, &context(change.id, event_id))
                .map_err(SealedDecodeError::Shut)?;
            Some(known_changes(&plaintext)?)
        }
        // Only a delete's, which is refused as out of place.
        (false, Some(_)) => Some(Vec::new()),
        (_, None) => None,
    };
    Ok(change_event(
        &envelope,
        (change.id, change.account_id, change.version),
        changes,
        "personal",
    )?)
}

/// The personal members of an opened `plaintext` this build knows, in field order, each with its
/// value (`None`: null). They are taken as they are, not checked against their fields' rules
/// again: the registry sealed them after checking them, and they opened under the customer's key
/// with this event's associated data, so nobody without that key wrote them (checking them again
/// was ~5 % of a replay's CPU). Members added by a later minor version are skipped, as the
/// contract asks of every reader; a member named twice counts once, with its last value.
fn opened_members(plaintext: &[u8]) -> Result<Vec<(TextField, Option<String>)>, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(plaintext);
    let members = deserializer.deserialize_map(OpenedMembers)?;
    deserializer.end()?;
    Ok(TextField::ALL
        .into_iter()
        .zip(members)
        .filter_map(|(field, value)| Some((field, value?)))
        .collect())
}

/// Reads an opened personal object into one slot per [`TextField`], in [`TextField::ALL`]'s order.
struct OpenedMembers;

impl<'de> serde::de::Visitor<'de> for OpenedMembers {
    type Value = [Option<Option<String>>; TextField::ALL.len()];

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("an object of personal fields")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members: Self::Value = Default::default();
        while let Some(MemberName(field)) = map.next_key()? {
            let Some(field) = field else {
                map.next_value::<serde::de::IgnoredAny>()?;
                continue;
            };
            // The error never holds the value: it may be personal.
            let value = map.next_value::<Option<String>>().map_err(|_| {
                A::Error::custom(format!(
                    "personal.{} must be a string or null",
                    field.name()
                ))
            })?;
            let slot = TextField::ALL.iter().position(|known| *known == field);
            members[slot.expect("every field is in ALL")] = Some(value);
        }
        Ok(members)
    }
}

/// A member's name in an opened personal object: the field it names, `None` for one this build
/// does not know.
struct MemberName(Option<TextField>);

impl<'de> Deserialize<'de> for MemberName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl serde::de::Visitor<'_> for NameVisitor {
            type Value = MemberName;
            fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
                formatter.write_str("a member name")
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<MemberName, E> {
                Ok(MemberName(TextField::from_name(name)))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

/// The changes an update's opened `plaintext` names (none known: the update still takes the
/// customer to its version).
fn known_changes(plaintext: &[u8]) -> Result<Vec<FieldChange>, serde_json::Error> {
    Ok(opened_members(plaintext)?
        .into_iter()
        .map(|(field, value)| FieldChange { field, value })
        .collect())
}

/// The customer a sealed create names: its readable members (checked) and the personal fields
/// that opened, taken as they are (see [`opened_members`]; the plaintext cannot name an id or an
/// account).
fn customer_of(data: SealedCreate, plaintext: &[u8]) -> Result<Customer, serde_json::Error> {
    let identity = IdentityJson {
        id: data.id,
        code: Some(data.code),
        account_id: data.account_id,
    };
    let mut customer =
        Customer::created_from(identity, data.created_at).map_err(serde::de::Error::custom)?;
    for (field, value) in opened_members(plaintext)? {
        if let Some(value) = value {
            customer.details.set_trusted_text(field, value);
        }
    }
    Ok(customer)
}

fn to_base64<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn from_base64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
    base64::engine::general_purpose::STANDARD
        .decode(text.as_bytes())
        .map_err(|_| D::Error::custom("personal.sealed is not base64"))
}

/// `value`'s JSON bytes, zeroed when dropped (they are personal).
fn json(value: &impl Serialize) -> Zeroizing<Vec<u8>> {
    Zeroizing::new(serde_json::to_vec(value).expect("plain data always serialises"))
}

/// Opens a published version 2 event's personal part in place, for readers who are shown events
/// as published (a customer's history, `events tail`): the fields it sealed go back where version
/// 1 carries them (a create's into `data`, an update's into `data.changes`) and `data.personal`
/// goes. When it does not open, it stays sealed and `data.personalUnreadable` says why; an erased
/// customer's events read so for ever, marked `data.personalErased: true`. Other events are
/// left as they are.
pub fn open_published(event: &mut serde_json::Value, opener: &dyn Opener) {
    if event["schemaVersion"] != SEALED_SCHEMA_VERSION {
        return;
    }
    let (Some(customer), Some(event_id)) = (
        event["data"]["id"]
            .as_str()
            .and_then(|id| id.parse::<CustomerId>().ok()),
        event["eventId"]
            .as_str()
            .and_then(|id| id.parse::<Uuid>().ok()),
    ) else {
        return;
    };
    let updating = event["eventType"] == CUSTOMER_UPDATED;
    let Some(data) = event["data"].as_object_mut() else {
        return;
    };
    let Some(Ok(personal)) = data.get("personal").map(SealedPersonal::deserialize) else {
        return;
    };
    let opened = opener
        .open(customer, &personal, &context(customer, event_id))
        .and_then(|plaintext| {
            serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&plaintext)
                .map_err(|_| OpenError::Inauthentic)
        });
    match opened {
        Ok(fields) => {
            data.remove("personal");
            if updating {
                data.insert("changes".into(), serde_json::Value::Object(fields));
            } else {
                data.extend(fields);
            }
        }
        Err(error) => {
            if error == OpenError::Erased {
                data.insert("personalErased".into(), true.into());
            }
            data.insert("personalUnreadable".into(), error.to_string().into());
        }
    }
}
