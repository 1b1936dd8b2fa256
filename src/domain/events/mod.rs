//! The events of the public contract (`events/`): an envelope naming the type and schema version,
//! around a type-specific `data` object. Consumers read `eventType` and `schemaVersion` first.
//! Version 1 carries every field in plain text (`plain`); version 2 seals the personal ones under
//! a data key of the customer's (`sealed`). Both are always read.

mod envelope;
mod erased;
mod plain;
mod sealed;

pub use envelope::SEALED_SCHEMA_VERSION;
pub use erased::{
    erased_event_id, erasure_id, CustomerErased, ERASED_EVENT_NAMESPACE, ERASURE_NAMESPACE,
};
pub use plain::PLAIN_SCHEMA_VERSION;
pub use sealed::{
    context as sealing_context, open_published, ErasedAsEmpty, NoKeys, OpenError, Opener,
    SealedPersonal,
};

use super::customer::Customer;
use super::ids::{AccountId, CustomerId};
use super::patch::FieldChange;
use chrono::{DateTime, Utc};
use envelope::{Envelope, CUSTOMER_CREATED, CUSTOMER_DELETED, CUSTOMER_ERASED, CUSTOMER_UPDATED};
use sealed::SealedDecodeError;
use serde_json::value::RawValue;
use uuid::Uuid;

/// How the registry's own encoder writes a version 2 envelope's version: a hint for the decoder,
/// never relied on (any other spelling is read as well, only slower).
const SEALED_MARK: &[u8] = b"\"schemaVersion\":2,";

/// The newest schema version this build reads, for every event type.
pub const SCHEMA_VERSION: u32 = SEALED_SCHEMA_VERSION;

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
    /// A customer's personal data was erased.
    CustomerErased(CustomerErased),
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
    /// A sealed event whose personal fields did not open.
    #[error("{0}")]
    Sealed(#[from] OpenError),
    /// A `schemaVersion` newer than this build reads.
    #[error("{event_type} schema version {version} is newer than the supported {SCHEMA_VERSION}")]
    UnsupportedVersion {
        /// The event's type.
        event_type: String,
        /// The version it declared.
        version: u32,
    },
}

impl RegistryEvent {
    /// The `eventType` written in the envelope and in the `event-type` Kafka header.
    pub fn event_type(&self) -> &'static str {
        match self {
            RegistryEvent::CustomerCreated(_) => CUSTOMER_CREATED,
            RegistryEvent::CustomerUpdated(_) => CUSTOMER_UPDATED,
            RegistryEvent::CustomerDeleted(_) => CUSTOMER_DELETED,
            RegistryEvent::CustomerErased(_) => CUSTOMER_ERASED,
        }
    }

    /// The customer the event is about: its id is the Kafka record key.
    pub fn customer_id(&self) -> CustomerId {
        match self {
            RegistryEvent::CustomerCreated(created) => created.customer.id,
            RegistryEvent::CustomerUpdated(updated) => updated.customer_id,
            RegistryEvent::CustomerDeleted(deleted) => deleted.customer_id,
            RegistryEvent::CustomerErased(erased) => erased.customer_id,
        }
    }

    /// The event's id.
    pub fn event_id(&self) -> Uuid {
        match self {
            RegistryEvent::CustomerCreated(created) => created.event_id,
            RegistryEvent::CustomerUpdated(updated) => updated.event_id,
            RegistryEvent::CustomerDeleted(deleted) => deleted.event_id,
            RegistryEvent::CustomerErased(erased) => erased.event_id,
        }
    }

    /// When the event was recorded.
    pub fn occurred_at(&self) -> DateTime<Utc> {
        match self {
            RegistryEvent::CustomerCreated(created) => created.occurred_at,
            RegistryEvent::CustomerUpdated(updated) => updated.occurred_at,
            RegistryEvent::CustomerDeleted(deleted) => deleted.occurred_at,
            RegistryEvent::CustomerErased(erased) => erased.occurred_at,
        }
    }

    /// The version the customer has once this event applies (0 for `CustomerErased`, which gives
    /// none: it applies to the customer at whatever version it is).
    pub fn version(&self) -> u64 {
        match self {
            RegistryEvent::CustomerCreated(_) => 1,
            RegistryEvent::CustomerUpdated(updated) => updated.version,
            RegistryEvent::CustomerDeleted(deleted) => deleted.version,
            RegistryEvent::CustomerErased(_) => 0,
        }
    }

    /// Who caused the event.
    pub fn audit(&self) -> &AuditTrail {
        match self {
            RegistryEvent::CustomerCreated(created) => &created.audit,
            RegistryEvent::CustomerUpdated(updated) => &updated.audit,
            RegistryEvent::CustomerDeleted(deleted) => &deleted.audit,
            RegistryEvent::CustomerErased(erased) => &erased.audit,
        }
    }
    /// The event's JSON bytes in plain text (schema version 1; `CustomerErased`, new in version
    /// 2 and carrying nothing personal, in version 2's form).
    pub fn encode(&self) -> Vec<u8> {
        plain::encode(self)
    }

    /// The schema version [`RegistryEvent::encode`] writes the event in.
    pub fn plain_schema_version(&self) -> u32 {
        match self {
            RegistryEvent::CustomerErased(_) => SEALED_SCHEMA_VERSION,
            _ => PLAIN_SCHEMA_VERSION,
        }
    }

    /// The event's JSON bytes with its personal fields sealed (schema version 2) by `seal`,
    /// which is given the plaintext and the associated data ([`sealing_context`]), and is not
    /// called for an event that carries nothing personal.
    ///
    /// # Errors
    /// What `seal` fails with.
    pub fn encode_sealed<E>(
        &self,
        seal: impl FnOnce(&[u8], &[u8]) -> Result<SealedPersonal, E>,
    ) -> Result<Vec<u8>, E> {
        sealed::encode(self, seal)
    }

    /// Reads an event from the bytes of a Kafka record, holding no keys: a sealed event that
    /// carries personal fields is [`EventDecodeError::Sealed`].
    ///
    /// # Errors
    /// [`EventDecodeError`] when the bytes are not an event of a type and version this build reads.
    pub fn decode(bytes: &[u8]) -> Result<RegistryEvent, EventDecodeError> {
        Self::decode_with(bytes, &NoKeys)
    }

    /// Reads an event from the bytes of a Kafka record, `opener` opening sealed personal fields.
    ///
    /// # Errors
    /// [`EventDecodeError`] when the bytes are not an event of a type and version this build
    /// reads, or its personal fields do not open.
    pub fn decode_with(
        bytes: &[u8],
        opener: &dyn Opener,
    ) -> Result<RegistryEvent, EventDecodeError> {
        // The common case of a plain log in one pass: a version 1 CustomerCreated. (Not tried
        // on what reads as a version 2 event, as the registry writes them: it would fail, a
        // whole parse wasted on every sealed event.)
        let sealed = memchr::memmem::find(bytes, SEALED_MARK).is_some();
        if let Some(Ok(envelope)) =
            (!sealed).then(|| serde_json::from_slice::<Envelope<Customer>>(bytes))
        {
            if envelope.event_type == CUSTOMER_CREATED
                && envelope.schema_version == PLAIN_SCHEMA_VERSION
            {
                return Ok(envelope::created(envelope));
            }
        }
        // Anything else is told apart by its type and version first, its payload read only
        // when they are ones this build reads (then to say what in it is malformed).
        let envelope: Envelope<Box<RawValue>> = serde_json::from_slice(bytes)?;
        let erased = envelope.event_type == CUSTOMER_ERASED;
        // CustomerErased is new in version 2: a version 1 reader never met one.
        let known = if erased {
            envelope.schema_version >= SEALED_SCHEMA_VERSION
        } else {
            [CUSTOMER_CREATED, CUSTOMER_UPDATED, CUSTOMER_DELETED]
                .contains(&envelope.event_type.as_str())
        };
        if !known {
            return Err(EventDecodeError::UnknownType(envelope.event_type));
        }
        match envelope.schema_version {
            SEALED_SCHEMA_VERSION if erased => Ok(erased::decode(envelope)?),
            SEALED_SCHEMA_VERSION => {
                sealed::decode(envelope, opener).map_err(|error| match error {
                    SealedDecodeError::Malformed(error) => EventDecodeError::Malformed(error),
                    SealedDecodeError::Shut(error) => EventDecodeError::Sealed(error),
                })
            }
            version if version > SCHEMA_VERSION => Err(EventDecodeError::UnsupportedVersion {
                event_type: envelope.event_type,
                version,
            }),
            _ => Ok(plain::decode(envelope)?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CustomerDetails, TextField};

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
        json["schemaVersion"] = 3.into();
        let newer = RegistryEvent::decode(json.to_string().as_bytes()).unwrap_err();
        assert!(matches!(
            newer,
            EventDecodeError::UnsupportedVersion { version: 3, .. }
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

    /// A stand-in for a data key (the domain seals nothing itself; `crypto` tests the AEAD):
    /// each byte XORed with the key, the associated data appended and checked on opening.
    struct OneKey(u8);

    impl OneKey {
        fn mint() -> Self {
            Self(uuid::Uuid::now_v7().as_bytes()[15] | 1)
        }

        fn seal(&self, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
            let mut sealed: Vec<u8> = plaintext.iter().map(|byte| byte ^ self.0).collect();
            sealed.extend(context.iter().map(|byte| byte ^ self.0));
            sealed
        }
    }

    impl Opener for OneKey {
        fn open(
            &self,
            _: CustomerId,
            personal: &SealedPersonal,
            context: &[u8],
        ) -> Result<zeroize::Zeroizing<Vec<u8>>, OpenError> {
            let opened: Vec<u8> = personal.sealed.iter().map(|byte| byte ^ self.0).collect();
            match opened.strip_suffix(context) {
                Some(plaintext) => Ok(zeroize::Zeroizing::new(plaintext.to_vec())),
                None => Err(OpenError::Inauthentic),
            }
        }
    }

    fn sealed(event: &RegistryEvent, key: &OneKey) -> Vec<u8> {
        event
            .encode_sealed(|plaintext, context| {
                Ok::<_, ()>(SealedPersonal {
                    key_id: "0123456789abcdef".into(),
                    sealed: key.seal(plaintext, context),
                })
            })
            .unwrap()
    }

    #[test]
    fn a_sealed_event_shows_nothing_personal_and_opens_to_the_same_event() {
        let key = OneKey::mint();
        let delete = RegistryEvent::CustomerDeleted(CustomerDeleted {
            event_id: Uuid::now_v7(),
            occurred_at: created().occurred_at(),
            audit: AuditTrail::default(),
            customer_id: created().customer_id(),
            account_id: AccountId::parse(9).unwrap(),
            version: 3,
        });
        for event in [created(), updated(), delete] {
            let bytes = sealed(&event, &key);
            let text = String::from_utf8(bytes.clone()).unwrap();
            for personal in ["Émile", "Zoë", "firstName", "lastName", "city"] {
                assert!(!text.contains(personal), "{personal} in {text}");
            }
            let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(json["schemaVersion"], 2);
            assert_eq!(RegistryEvent::decode_with(&bytes, &key).unwrap(), event);
        }
        // Without the key, or under another, nothing personal opens.
        let bytes = sealed(&created(), &key);
        assert!(matches!(
            RegistryEvent::decode(&bytes),
            Err(EventDecodeError::Sealed(OpenError::NoKeys))
        ));
        let other = OneKey(key.0 ^ 2);
        assert!(matches!(
            RegistryEvent::decode_with(&bytes, &other),
            Err(EventDecodeError::Sealed(OpenError::Inauthentic))
        ));
    }

    /// The opener of a reader that has read the customer's erased marker.
    struct Erased;

    impl Opener for Erased {
        fn open(
            &self,
            _: CustomerId,
            _: &SealedPersonal,
            _: &[u8],
        ) -> Result<zeroize::Zeroizing<Vec<u8>>, OpenError> {
            Err(OpenError::Erased)
        }
    }

    #[test]
    fn an_erased_customers_events_open_to_nothing_personal_and_keep_their_versions() {
        let key = OneKey::mint();
        let first = created();
        let (create, update) = (sealed(&first, &key), sealed(&updated(), &key));
        assert!(matches!(
            RegistryEvent::decode_with(&create, &Erased),
            Err(EventDecodeError::Sealed(OpenError::Erased))
        ));
        let RegistryEvent::CustomerCreated(shredded) =
            RegistryEvent::decode_with(&create, &ErasedAsEmpty(&Erased)).unwrap()
        else {
            panic!("a create stays a create")
        };
        let RegistryEvent::CustomerCreated(original) = first else {
            unreachable!()
        };
        assert_eq!(shredded.customer.id, original.customer.id);
        assert_eq!(
            shredded.customer.details,
            CustomerDetails::for_account(original.customer.details.account_id)
        );
        let RegistryEvent::CustomerUpdated(moved) =
            RegistryEvent::decode_with(&update, &ErasedAsEmpty(&Erased)).unwrap()
        else {
            panic!("an update stays an update")
        };
        assert_eq!((moved.version, moved.changes.len()), (2, 0));
        // Any other failure to open is still one.
        assert!(RegistryEvent::decode_with(&create, &ErasedAsEmpty(&NoKeys)).is_err());
    }

    #[test]
    fn an_erasure_is_a_version_2_event_with_ids_derived_from_the_customer() {
        let customer = created().customer_id();
        let account = AccountId::parse(9).unwrap();
        let at = created().occurred_at();
        let event = RegistryEvent::CustomerErased(CustomerErased::new(customer, account, at));
        let bytes = event.encode();
        assert_eq!(event.plain_schema_version(), 2);
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["schemaVersion"], 2);
        assert_eq!(json["eventType"], "CustomerErased");
        assert_eq!(
            json["data"]["erasureRequestId"],
            erasure_id(customer).to_string()
        );
        assert_eq!(RegistryEvent::decode(&bytes).unwrap(), event);
        let again = CustomerErased::new(customer, account, at + chrono::Duration::seconds(1));
        assert_eq!(
            again.event_id,
            event.event_id(),
            "one erasure, one event id"
        );
        let mut v1 = json.clone();
        v1["schemaVersion"] = 1.into();
        assert!(matches!(
            RegistryEvent::decode(v1.to_string().as_bytes()),
            Err(EventDecodeError::UnknownType(_))
        ));
    }

    #[test]
    fn a_sealed_part_moved_to_another_event_is_refused_and_unknown_members_are_ignored() {
        let key = OneKey::mint();
        let first: serde_json::Value = serde_json::from_slice(&sealed(&updated(), &key)).unwrap();
        let mut second: serde_json::Value =
            serde_json::from_slice(&sealed(&updated(), &key)).unwrap();
        second["data"]["personal"] = first["data"]["personal"].clone();
        assert!(matches!(
            RegistryEvent::decode_with(second.to_string().as_bytes(), &key),
            Err(EventDecodeError::Sealed(OpenError::Inauthentic))
        ));
        // What a sealed part holds beyond the personal fields this build knows is ignored (a
        // later minor version's field), and it can never override a readable member.
        let event = created();
        let bytes = event
            .encode_sealed(|_, context| {
                Ok::<_, ()>(SealedPersonal {
                    key_id: "0123456789abcdef".into(),
                    sealed: key.seal(
                        br#"{"id":"01936a4e-8b1c-7def-8a00-000000000001","firstName":"\u00c9mile","nickname":"E"}"#,
                        context,
                    ),
                })
            })
            .unwrap();
        assert_eq!(RegistryEvent::decode_with(&bytes, &key).unwrap(), event);
    }

    /// A sealed create whose personal part is `plaintext`, sealed under `key` for its event.
    fn sealed_with(plaintext: &[u8], key: &OneKey) -> Vec<u8> {
        created()
            .encode_sealed(|_, context| {
                Ok::<_, ()>(SealedPersonal {
                    key_id: "0123456789abcdef".into(),
                    sealed: key.seal(plaintext, context),
                })
            })
            .unwrap()
    }

    #[test]
    fn an_authentic_sealed_part_is_read_as_sealed_and_a_value_of_another_type_is_not_echoed() {
        let key = OneKey::mint();
        // Nulls are absent fields, a member named twice counts with its last value, and values
        // are taken as the registry sealed them (it checked them first).
        let bytes = sealed_with(
            br#"{"city":null,"lastName":"First","lastName":"Second","email":"a@b.dk"}"#,
            &key,
        );
        let RegistryEvent::CustomerCreated(read) =
            RegistryEvent::decode_with(&bytes, &key).unwrap()
        else {
            panic!("a create stays a create")
        };
        let details = &read.customer.details;
        assert_eq!(details.text(TextField::LastName), Some("Second"));
        assert_eq!(details.text(TextField::Email), Some("a@b.dk"));
        assert_eq!(details.text(TextField::City), None);
        let bytes = sealed_with(br#"{"phone":5551234}"#, &key);
        let error = RegistryEvent::decode_with(&bytes, &key)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("personal.phone must be a string or null"),
            "{error}"
        );
        assert!(!error.contains("5551234"), "{error}");
        let bytes = sealed_with(br#"{"phone":"5"} trailing"#, &key);
        assert!(RegistryEvent::decode_with(&bytes, &key).is_err());
    }

    #[test]
    fn a_published_sealed_event_opens_in_place_or_says_why_not() {
        let key = OneKey::mint();
        let bytes = sealed(&created(), &key);
        let mut opened: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        open_published(&mut opened, &key);
        assert_eq!(opened["data"]["firstName"], "Émile");
        assert!(opened["data"].get("personal").is_none());
        let mut shut: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        open_published(&mut shut, &NoKeys);
        assert!(shut["data"]["personal"]["sealed"].is_string());
        assert!(shut["data"]["personalUnreadable"].is_string());
    }
}
