//! The erasure command (crypto-shredding): a customer's personal data is forgotten by destroying
//! its data keys, while its events stay in the log, in order, their personal part unreadable.
//!
//! An erasure, in order: the customer's erased marker on the keys topic (acknowledged: from then
//! on no replica mints it a key), a tombstone for each of its keys (compaction then removes them
//! from the brokers' disks), and a `CustomerErased` event on the log, on which every replica
//! purges the customer from its read model. Each step can be repeated: the request id and the
//! event id derive from the customer, so a repeated request, a retry after a crash
//! ([`Registrar::complete_erasures`]) or two replicas finishing one erasure write one marker and
//! one applied event.
//!
//! Where each step is, is the erasure's status ([`Erasure`]): the marker and tombstones from this
//! replica's copy of the keys topic, the event and the purge from its read model.

use super::registrar::Registrar;
use crate::crypto::{Encryption, Keys, KeysError};
use crate::domain::{
    erased_event_id, erasure_id, now_millis, AccountId, AuditTrail, CustomerErased, CustomerId,
    RegistryEvent, PLAIN_SCHEMA_VERSION,
};
use crate::log::{EventLogError, LogPosition};
use crate::read_model::{CustomerRecord, ReadModelError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::Arc;
use uuid::Uuid;

/// Why an erasure could not be requested or reported.
#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    /// The registry writes events in plain text: there is no key to destroy.
    #[error(
        "this registry runs with --no-encryption: its events carry personal data in plain text, \
         so destroying a key cannot erase it. Erasure needs a registry started with --kek-file \
         on a log migrated with `customer-registry migrate --encrypt`"
    )]
    NotEncrypted,
    /// The log holds some of the customer's personal data in plain text (events written before
    /// encryption was on): destroying its key would leave them readable.
    #[error(
        "customer {0}'s personal data is in plain text in the log (events written without \
         encryption), which destroying a key cannot erase: copy the log with `customer-registry \
         migrate --encrypt` and serve the copy, then erase"
    )]
    PlainText(CustomerId),
    /// The customer's records could not be read back (to see how they were written).
    #[error("the customer's records could not be read back: {0}")]
    Unreadable(String),
    /// No such customer here (or no such erasure).
    #[error("no customer with id {0}")]
    NotFound(CustomerId),
    /// The keys topic did not take the marker or a tombstone.
    #[error(transparent)]
    Keys(KeysError),
    /// The log did not take the event.
    #[error(transparent)]
    EventLog(#[from] EventLogError),
    /// The read model could not be consulted.
    #[error(transparent)]
    ReadModel(#[from] ReadModelError),
}

impl From<KeysError> for ErasureError {
    fn from(error: KeysError) -> Self {
        match error {
            KeysError::Write(error) => ErasureError::EventLog(error),
            other => ErasureError::Keys(other),
        }
    }
}

/// An erasure request and where each of its steps is, as this replica knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Erasure {
    /// The request's id (derived from the customer: one erasure per customer).
    pub request_id: Uuid,
    /// The customer erased.
    pub customer_id: CustomerId,
    /// Its account (`None` while this replica holds no record of the customer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<AccountId>,
    /// When the erasure was requested (its marker's time).
    #[serde(with = "crate::domain::rfc3339_millis")]
    pub requested_at: DateTime<Utc>,
    /// Whether every step is done.
    pub done: bool,
    /// Each step.
    pub places: ErasurePlaces,
}

/// The places an erasure must reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErasurePlaces {
    /// The `CustomerErased` event is in the log (this replica has read it).
    pub event_written: bool,
    /// The erased marker is on the keys topic and every key of the customer's has a tombstone:
    /// no replica opens its events any more.
    pub key_destroyed: bool,
    /// Compaction removed every key record of the customer's from the keys topic's storage;
    /// `null` when the brokers could not be asked.
    pub key_removed_from_storage: Option<bool>,
    /// This replica's read model holds no personal field or index entry of the customer, on disk
    /// as in memory.
    pub read_model_purged: bool,
}

impl Registrar {
    /// Erases customer `id`'s personal data (see the module's comment), or, when it was erased
    /// already, answers that erasure. Waits (bounded) for this replica to purge it.
    ///
    /// # Errors
    /// [`ErasureError::NotEncrypted`] without encryption, [`ErasureError::NotFound`] for a
    /// customer this replica does not hold, and the failures of the keys topic, the log and the
    /// read model.
    pub async fn erase(&self, id: CustomerId, audit: AuditTrail) -> Result<Erasure, ErasureError> {
        let keys = self.keys()?;
        let record = self
            .read_model
            .record(id)?
            .ok_or(ErasureError::NotFound(id))?;
        if !record.erased {
            self.refuse_plain_text(id).await?;
            let requested_at = keys
                .erasure_of(id)
                .map_or_else(now_millis, |erased| erased.erased_at);
            let request_id = erasure_id(id).to_string();
            keys.erase(id, &request_id, requested_at).await?;
            let account = record.customer.details.account_id;
            let event = CustomerErased::new(id, account, requested_at).caused_by(audit);
            self.append_erased(event).await?;
        }
        self.erasure_of(id)?.ok_or(ErasureError::NotFound(id))
    }

    /// Refuses the erasure of a customer some of whose personal data the log holds in plain text
    /// (schema version 1): its records, read back.
    async fn refuse_plain_text(&self, id: CustomerId) -> Result<(), ErasureError> {
        let records = self
            .records_of(id, usize::MAX)
            .await
            .map_err(|error| ErasureError::Unreadable(error.to_string()))?;
        let plain = records.iter().any(|record| {
            record.event["schemaVersion"] == PLAIN_SCHEMA_VERSION
                && record.event["eventType"] != "CustomerDeleted"
        });
        if plain {
            return Err(ErasureError::PlainText(id));
        }
        Ok(())
    }

    /// Appends `event` and waits (bounded) for this replica to apply it.
    async fn append_erased(&self, event: CustomerErased) -> Result<(), ErasureError> {
        let record = self
            .append(&RegistryEvent::CustomerErased(event), Vec::new())
            .await?;
        let wanted = LogPosition::default().including(record);
        self.progress
            .wait_until_reached(&wanted, self.projection_wait)
            .await;
        Ok(())
    }

    /// The erasure request `request_id`, once this replica has read its marker.
    ///
    /// # Errors
    /// [`ErasureError::NotEncrypted`] without encryption, [`ErasureError::ReadModel`].
    pub fn erasure(&self, request_id: Uuid) -> Result<Option<Erasure>, ErasureError> {
        match self.keys()?.erased_by(&request_id.to_string()) {
            Some(customer) => self.erasure_of(customer),
            None => Ok(None),
        }
    }

    /// Customer `id`'s erasure, if its marker was read here; `keyRemovedFromStorage` is
    /// `false` until [`Registrar::probe_storage`] says otherwise.
    fn erasure_of(&self, id: CustomerId) -> Result<Option<Erasure>, ErasureError> {
        let keys = self.keys()?;
        let Some(erased) = keys.erasure_of(id) else {
            return Ok(None);
        };
        let record = self.read_model.record(id)?;
        let applied = record
            .as_deref()
            .and_then(|record| erased_at_offset(record, id));
        let purged = match applied {
            Some((partition, offset)) => self
                .read_model
                .next_offsets()?
                .get(&partition)
                .is_some_and(|next| *next > offset),
            None => false,
        };
        let key_destroyed = erased.undestroyed.is_empty();
        let places = ErasurePlaces {
            event_written: applied.is_some(),
            key_destroyed,
            key_removed_from_storage: Some(false),
            read_model_purged: purged,
        };
        Ok(Some(
            Erasure {
                request_id: erasure_id(id),
                customer_id: id,
                account_id: record.map(|record| record.customer.details.account_id),
                requested_at: erased.erased_at,
                done: false,
                places,
            }
            .settled(),
        ))
    }

    /// `erasure` with its keys' storage looked at: whether the keys topic still holds any of the
    /// customer's key records (blocking: one fetch per key record).
    pub fn probe_storage(&self, mut erasure: Erasure) -> Erasure {
        let Ok(keys) = self.keys() else {
            return erasure;
        };
        let places = keys
            .erasure_of(erasure.customer_id)
            .map(|erased| erased.places)
            .unwrap_or_default();
        erasure.places.key_removed_from_storage = match keys.records_still_held(&places) {
            Ok(held) => Some(held == 0 && erasure.places.key_destroyed),
            Err(error) => {
                tracing::warn!(%error, "the keys topic could not be probed for an erasure");
                None
            }
        };
        erasure.settled()
    }

    /// Finishes every erasure this replica knows whose steps stopped short (a replica killed
    /// between the marker and the event): destroys the keys left and appends the event (its id
    /// is the erasure's, so the log applies it once however many replicas do this). Run once the
    /// replica has caught up with the log, and now and then after.
    ///
    /// # Errors
    /// The first failure of the keys topic or the log; the rest wait for the next run.
    pub async fn complete_erasures(&self) -> Result<usize, ErasureError> {
        let Ok(keys) = self.keys() else {
            return Ok(0);
        };
        let mut completed = 0;
        for (customer, erased) in keys.erasures() {
            if !erased.undestroyed.is_empty() {
                keys.destroy_undestroyed(customer).await?;
            } else if self.erasures_seen_done.lock().contains(&customer) {
                continue;
            }
            let Some(record) = self.read_model.record(customer)? else {
                continue;
            };
            if record.erased {
                // Done here for good: not looked up again on the next sweep.
                self.erasures_seen_done.lock().insert(customer);
                continue;
            }
            let account = record.customer.details.account_id;
            let event = CustomerErased::new(customer, account, erased.erased_at);
            self.append_erased(event).await?;
            completed += 1;
        }
        Ok(completed)
    }

    fn keys(&self) -> Result<&Arc<Keys>, ErasureError> {
        match &self.encryption {
            Encryption::On(keys) => Ok(keys),
            Encryption::Off => Err(ErasureError::NotEncrypted),
        }
    }
}

impl Erasure {
    /// The same erasure, `done` when every place is reached.
    fn settled(mut self) -> Self {
        let places = &self.places;
        self.done = places.event_written
            && places.key_destroyed
            && places.key_removed_from_storage == Some(true)
            && places.read_model_purged;
        self
    }
}

/// Where `record` (of customer `id`) took in its `CustomerErased`, if it did.
fn erased_at_offset(record: &CustomerRecord, id: CustomerId) -> Option<(i32, i64)> {
    if !record.erased {
        return None;
    }
    let event_id = erased_event_id(id);
    record
        .history
        .iter()
        .rev()
        .find(|entry| entry.event_id == event_id)
        .map(|entry| (entry.place.partition, entry.place.offset))
}
