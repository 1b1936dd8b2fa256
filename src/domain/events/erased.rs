//! `CustomerErased`: a customer's personal data was erased (its data keys destroyed). New in
//! contract v2 and written only in its form (schema version 2): it carries nothing personal, so
//! it needs no key, and a log written without encryption never holds one (such a registry
//! refuses erasures).

use super::envelope::{Envelope, SEALED_SCHEMA_VERSION};
use super::{AuditTrail, RegistryEvent};
use crate::domain::ids::{AccountId, CustomerId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

/// Namespace of erasure request ids (UUIDv5 of the customer id's text). Part of the public
/// contract: one customer has one erasure, so its id can be recomputed by anyone.
pub const ERASURE_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2a9e_41d7_4b8a_a0e3_5d92_c7b4_18f6);

/// Namespace of `CustomerErased` event ids (UUIDv5 of the erasure request id's text): every
/// replica that writes a customer's erasure event writes the same id, so the log applies one.
pub const ERASED_EVENT_NAMESPACE: Uuid = Uuid::from_u128(0x0d5e_93b1_7c44_4f02_b6a8_e1f7_2c39_5a60);

/// The id of a customer's erasure request: derived from the customer, so repeating the request
/// names the same erasure.
pub fn erasure_id(customer: CustomerId) -> Uuid {
    Uuid::new_v5(&ERASURE_NAMESPACE, customer.to_string().as_bytes())
}

/// The id of customer `customer`'s `CustomerErased` event: derived from its erasure request.
pub fn erased_event_id(customer: CustomerId) -> Uuid {
    let request = erasure_id(customer).to_string();
    Uuid::new_v5(&ERASED_EVENT_NAMESPACE, request.as_bytes())
}

/// A customer's personal data was erased: every replica purges what it holds of it, and its
/// events' personal part no longer opens anywhere. Applies to a customer in any state (live or deleted),
/// once; it gives the customer no new version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerErased {
    /// Derived from the erasure request id.
    pub event_id: Uuid,
    /// When the erasure was requested.
    pub occurred_at: DateTime<Utc>,
    /// Who asked, and in which HTTP request.
    pub audit: AuditTrail,
    /// The customer erased.
    pub customer_id: CustomerId,
    /// Its account.
    pub account_id: AccountId,
    /// The erasure request (`/api/v01/erasures/{id}`).
    pub erasure_id: Uuid,
}

impl CustomerErased {
    /// The erasure of `customer_id` (of `account_id`), requested at `occurred_at`.
    pub fn new(customer_id: CustomerId, account_id: AccountId, occurred_at: DateTime<Utc>) -> Self {
        Self {
            event_id: erased_event_id(customer_id),
            occurred_at,
            audit: AuditTrail::default(),
            customer_id,
            account_id,
            erasure_id: erasure_id(customer_id),
        }
    }

    /// The same event, recording who caused it.
    pub fn caused_by(mut self, audit: AuditTrail) -> Self {
        self.audit = audit;
        self
    }
}

/// `data` of `CustomerErased`. Members added later are ignored.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErasedData {
    id: CustomerId,
    account_id: AccountId,
    erasure_request_id: Uuid,
}

/// `event`'s bytes (always schema version 2).
pub fn encode(event: &RegistryEvent, erased: &CustomerErased) -> Vec<u8> {
    let data = ErasedData {
        id: erased.customer_id,
        account_id: erased.account_id,
        erasure_request_id: erased.erasure_id,
    };
    Envelope::of(event, SEALED_SCHEMA_VERSION, data).to_bytes()
}

/// The `CustomerErased` `envelope` holds.
pub fn decode(envelope: Envelope<Box<RawValue>>) -> Result<RegistryEvent, serde_json::Error> {
    let data: ErasedData = serde_json::from_str(envelope.data.get())?;
    Ok(RegistryEvent::CustomerErased(CustomerErased {
        event_id: envelope.event_id,
        occurred_at: envelope.occurred_at,
        audit: envelope.audit(),
        customer_id: data.id,
        account_id: data.account_id,
        erasure_id: data.erasure_request_id,
    }))
}
