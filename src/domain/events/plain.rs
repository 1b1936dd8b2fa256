//! Schema version 1: every field in plain text. What `serve --no-encryption` writes, and what
//! logs written before contract v2 hold; always read.

use super::envelope::{change_event, created, ChangeData, Changes, Envelope};
use super::RegistryEvent;
use crate::domain::customer::Customer;
use crate::domain::customer_json::AsCreated;
use serde_json::value::RawValue;

/// The schema version of events in plain text.
pub const PLAIN_SCHEMA_VERSION: u32 = 1;

/// `event` in version 1's form (`CustomerErased`, which version 1 does not have, in version 2's:
/// it carries nothing personal).
pub fn encode(event: &RegistryEvent) -> Vec<u8> {
    match event {
        RegistryEvent::CustomerCreated(created) => {
            Envelope::of(event, PLAIN_SCHEMA_VERSION, AsCreated(&created.customer)).to_bytes()
        }
        RegistryEvent::CustomerUpdated(updated) => Envelope::of(
            event,
            PLAIN_SCHEMA_VERSION,
            ChangeData {
                id: updated.customer_id,
                account_id: updated.account_id,
                version: updated.version,
                changes: Some(Changes(updated.changes.clone())),
            },
        )
        .to_bytes(),
        RegistryEvent::CustomerDeleted(deleted) => {
            Envelope::of(event, PLAIN_SCHEMA_VERSION, ChangeData::of_delete(deleted)).to_bytes()
        }
        RegistryEvent::CustomerErased(erased) => super::erased::encode(event, erased),
    }
}

/// The version 1 event `envelope` holds, its type already known to be one of the three.
pub fn decode(envelope: Envelope<Box<RawValue>>) -> Result<RegistryEvent, serde_json::Error> {
    if envelope.event_type == super::envelope::CUSTOMER_CREATED {
        let customer = serde_json::from_str::<Customer>(envelope.data.get())?;
        return Ok(created(envelope.with_data(customer)));
    }
    let change: ChangeData = serde_json::from_str(envelope.data.get())?;
    let changes = change.changes.map(|Changes(changes)| changes);
    change_event(
        &envelope,
        (change.id, change.account_id, change.version),
        changes,
        "changes",
    )
}
