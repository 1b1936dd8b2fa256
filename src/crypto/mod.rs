//! Encryption of personal data (crypto-shredding): each customer's data key seals its personal
//! fields in every event (contract v2); the key-encryption keys (KEKs) wrap the data keys. A KEK
//! never enters Kafka: it lives in a file of the operator's (`kek_file`), which `customer-registry
//! kek add` appends to. The wrapped data keys live in the keys topic beside the event log
//! (`key_record`), which every replica reads into its own store (`key_store`, `keys`).

pub mod data_key;
pub mod kek_file;
pub mod key_record;
pub mod key_store;
pub mod keys;

use crate::domain::{
    CustomerId, NoKeys, Opener, RegistryEvent, SealedPersonal, SEALED_SCHEMA_VERSION,
};
use crate::log::{EventLogSettings, Payload, TopicLayout};
use data_key::Keyring;
pub use keys::{Keys, KeysError};
use std::path::Path;
use std::sync::Arc;

/// Whether events are written sealed, and the keys that seal and open them.
#[derive(Clone)]
pub enum Encryption {
    /// Events are written in plain text (schema version 1), and sealed ones are not opened:
    /// `serve --no-encryption`, for experiments.
    Off,
    /// Events are written sealed (schema version 2) under keys of the keys topic.
    On(Arc<Keys>),
}

impl Encryption {
    /// The keys of `kek_file` for the log `settings` names (whose layout is `layout`): the keys
    /// topic made sure of (created when `create` and missing), read to its end and followed.
    /// Without `create`, a missing keys topic means a log never sealed: no keys, [`Encryption::Off`].
    ///
    /// # Errors
    /// A sentence naming what failed: the KEK file, the keys topic, or reading it.
    pub async fn load(
        kek_file: &Path,
        settings: &EventLogSettings,
        layout: &TopicLayout,
        create: bool,
    ) -> Result<Self, String> {
        let keyring = Keyring::load(kek_file).map_err(|error| error.to_string())?;
        let checked = if create {
            crate::log::ensure_keys_topic(settings, layout).await
        } else {
            crate::log::existing_keys_topic(settings, layout).await
        };
        match checked {
            Ok(()) => {}
            // A log that was never sealed has no keys topic: nothing in it needs a key.
            Err(crate::log::TopicError::Missing(topic)) if !create => {
                tracing::info!(%topic, "no keys topic: the log holds no sealed events");
                return Ok(Encryption::Off);
            }
            Err(error) => return Err(error.to_string()),
        }
        let settings = settings.clone();
        let partitioning = layout.partitioning;
        let keys =
            tokio::task::spawn_blocking(move || Keys::start(&settings, partitioning, keyring))
                .await
                .map_err(|error| error.to_string())?
                .map_err(|error| error.to_string())?;
        Ok(Encryption::On(keys))
    }

    /// `event`'s record value: sealed under its customer's key (made first when it has none)
    /// when encryption is on, in plain text when off.
    ///
    /// # Errors
    /// [`KeysError`] when the key cannot be had or the customer was erased.
    pub async fn encode(&self, event: &RegistryEvent) -> Result<Payload, KeysError> {
        let Encryption::On(keys) = self else {
            return Ok(Payload {
                bytes: event.encode(),
                schema_version: event.plain_schema_version(),
            });
        };
        let key = match event {
            RegistryEvent::CustomerDeleted(_) | RegistryEvent::CustomerErased(_) => None,
            _ => Some(keys.key_for(event.customer_id()).await?),
        };
        let bytes = event.encode_sealed(|plaintext, context| {
            let (key_id, key) = key.expect("only events with personal fields are sealed");
            let sealed = key
                .seal(plaintext, context)
                .map_err(|error| KeysError::Crypto(error.to_string()))?;
            Ok::<_, KeysError>(SealedPersonal {
                key_id: key_id.to_string(),
                sealed,
            })
        })?;
        Ok(Payload {
            bytes,
            schema_version: SEALED_SCHEMA_VERSION,
        })
    }

    /// The id of a customer created without a key or a code: one whose data key was minted
    /// ahead when encryption is on and one is ready, else a new one.
    pub fn fresh_customer_id(&self) -> CustomerId {
        match self {
            Encryption::On(keys) => keys.fresh_customer().unwrap_or_else(CustomerId::new_v7),
            Encryption::Off => CustomerId::new_v7(),
        }
    }

    /// What opens sealed events: the keys, or nothing when encryption is off.
    pub fn opener(&self) -> Arc<dyn Opener + Send + Sync> {
        match self {
            Encryption::Off => Arc::new(NoKeys),
            Encryption::On(keys) => Arc::clone(keys) as Arc<dyn Opener + Send + Sync>,
        }
    }

    /// Stops following the keys topic.
    pub fn stop(&self) {
        if let Encryption::On(keys) = self {
            keys.stop();
        }
    }
}
