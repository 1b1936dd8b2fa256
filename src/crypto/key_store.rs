//! A replica's copy of the keys topic: every customer's wrapped data keys, or that its keys were
//! erased, fed record by record in the topic's order ([`KeyStore::apply`]). Keys stay wrapped in
//! memory and are unwrapped on each use (one AES-GCM open of 32 bytes), so no data key outlives
//! the call that needed it; an erased customer's keys are dropped the moment its marker is read.

use super::data_key::{CryptoError, DataKey, Keyring, WrappedKey};
use super::key_record::{KeyId, KeyRecord};
use crate::domain::{CustomerId, OpenError, Opener, SealedPersonal};
use parking_lot::RwLock;
use std::collections::HashMap;
use zeroize::Zeroizing;

/// What the keys topic says of one customer so far.
enum Held {
    /// Its keys, oldest first (more than one when replicas raced to create it, or a KEK
    /// rotation re-wrapped none: keys are never re-wrapped in place).
    Keys(Vec<(KeyId, WrappedKey)>),
    /// Its keys were destroyed, and none may be made again.
    Erased,
}

/// Every customer's wrapped data keys, as the keys topic holds them.
pub struct KeyStore {
    keyring: Keyring,
    customers: RwLock<HashMap<CustomerId, Held>>,
}

impl KeyStore {
    /// An empty store whose keys `keyring` wraps and unwraps.
    pub fn new(keyring: Keyring) -> Self {
        Self {
            keyring,
            customers: RwLock::new(HashMap::new()),
        }
    }

    /// Takes in the next record of the keys topic. A key record for an erased customer changes
    /// nothing: the marker is final.
    pub fn apply(&self, record: KeyRecord) {
        let mut customers = self.customers.write();
        match record {
            KeyRecord::DataKey {
                customer,
                key_id,
                wrapped,
                ..
            } => match customers
                .entry(customer)
                .or_insert_with(|| Held::Keys(Vec::with_capacity(1)))
            {
                Held::Keys(keys) if !keys.iter().any(|(held, _)| *held == key_id) => {
                    keys.push((key_id, wrapped));
                }
                Held::Keys(_) | Held::Erased => {}
            },
            KeyRecord::Destroyed { customer, key_id } => {
                if let Some(Held::Keys(keys)) = customers.get_mut(&customer) {
                    keys.retain(|(held, _)| *held != key_id);
                }
            }
            KeyRecord::Erased { customer, .. } => {
                customers.insert(customer, Held::Erased);
            }
        }
    }

    /// `customer`'s newest data key, `None` when it has none yet.
    ///
    /// # Errors
    /// [`OpenError::Erased`] for an erased customer, [`OpenError::UnknownKek`] or
    /// [`OpenError::Unwrap`] when the key does not unwrap with the KEK file.
    pub fn newest(&self, customer: CustomerId) -> Result<Option<(KeyId, DataKey)>, OpenError> {
        let customers = self.customers.read();
        match customers.get(&customer) {
            None => Ok(None),
            Some(Held::Erased) => Err(OpenError::Erased),
            Some(Held::Keys(keys)) => match keys.last() {
                None => Ok(None),
                Some((key_id, wrapped)) => Ok(Some((*key_id, self.unwrap(wrapped, customer)?))),
            },
        }
    }

    /// `key`, wrapped for `customer` under the newest KEK.
    ///
    /// # Errors
    /// A sentence when no nonce can be drawn.
    pub fn wrap(&self, key: &DataKey, customer: CustomerId) -> Result<WrappedKey, String> {
        self.keyring
            .wrap(key, customer)
            .map_err(|error| error.to_string())
    }

    /// The plaintext `personal` sealed for `customer` under `context`.
    ///
    /// # Errors
    /// [`OpenError::KeyUnknown`] when the store holds no such key (yet), [`OpenError::Erased`],
    /// [`OpenError::UnknownKek`], [`OpenError::Unwrap`], [`OpenError::Inauthentic`].
    pub fn open(
        &self,
        customer: CustomerId,
        personal: &SealedPersonal,
        context: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        let unknown = || OpenError::KeyUnknown(personal.key_id.clone());
        let wanted = KeyId::parse(&personal.key_id).ok_or_else(unknown)?;
        let key = {
            let customers = self.customers.read();
            let wrapped = match customers.get(&customer) {
                Some(Held::Erased) => return Err(OpenError::Erased),
                Some(Held::Keys(keys)) => keys
                    .iter()
                    .find(|(key_id, _)| *key_id == wanted)
                    .map(|(_, wrapped)| wrapped),
                None => None,
            };
            let wrapped = wrapped.ok_or_else(unknown)?;
            self.unwrap(wrapped, customer)?
        };
        key.open(&personal.sealed, context)
            .map_err(|_| OpenError::Inauthentic)
    }

    /// Whether `customer`'s keys were erased.
    pub fn is_erased(&self, customer: CustomerId) -> bool {
        matches!(self.customers.read().get(&customer), Some(Held::Erased))
    }

    /// Customers the store knows of (with keys, or erased).
    pub fn customers(&self) -> usize {
        self.customers.read().len()
    }

    fn unwrap(&self, wrapped: &WrappedKey, customer: CustomerId) -> Result<DataKey, OpenError> {
        self.keyring
            .unwrap(wrapped, customer)
            .map_err(|error| match error {
                CryptoError::UnknownKek(kek) => OpenError::UnknownKek(kek),
                CryptoError::Random(_) | CryptoError::Inauthentic => OpenError::Unwrap,
            })
    }
}

impl Opener for KeyStore {
    /// [`KeyStore::open`]: what the store holds now, with no look at the keys topic.
    fn open(
        &self,
        customer: CustomerId,
        personal: &SealedPersonal,
        context: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        KeyStore::open(self, customer, personal, context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::kek_file;
    use crate::domain::sealing_context;
    use chrono::Utc;

    fn store() -> (tempfile::TempDir, KeyStore) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keks.jsonl");
        kek_file::add(&path).unwrap();
        let store = KeyStore::new(Keyring::load(&path).unwrap());
        (dir, store)
    }

    fn minted(store: &KeyStore, customer: CustomerId) -> (KeyId, DataKey) {
        let key = DataKey::mint().unwrap();
        let key_id = KeyId::random().unwrap();
        store.apply(KeyRecord::DataKey {
            customer,
            key_id,
            wrapped: store.wrap(&key, customer).unwrap(),
            minted_at: Utc::now(),
        });
        (key_id, key)
    }

    #[test]
    fn every_key_of_a_customer_opens_what_it_sealed_until_the_customer_is_erased() {
        let (_dir, store) = store();
        let customer = CustomerId::new_v7();
        assert!(store.newest(customer).unwrap().is_none());
        let (first_id, first) = minted(&store, customer);
        let (second_id, _) = minted(&store, customer);
        assert_eq!(store.newest(customer).unwrap().unwrap().0, second_id);
        let context = sealing_context(customer, uuid::Uuid::now_v7());
        let personal = SealedPersonal {
            key_id: first_id.to_string(),
            sealed: first.seal(b"{\"email\":\"a@b.c\"}", &context).unwrap(),
        };
        assert_eq!(
            store
                .open(customer, &personal, &context)
                .unwrap()
                .as_slice(),
            b"{\"email\":\"a@b.c\"}"
        );
        let elsewhere = sealing_context(customer, uuid::Uuid::now_v7());
        assert_eq!(
            store.open(customer, &personal, &elsewhere).unwrap_err(),
            OpenError::Inauthentic
        );
        store.apply(KeyRecord::Erased {
            customer,
            erased_at: Utc::now(),
            request_id: "r".into(),
        });
        assert_eq!(
            store.open(customer, &personal, &context).unwrap_err(),
            OpenError::Erased
        );
        // A key record read after the marker (a late create) changes nothing.
        minted(&store, customer);
        assert!(store.is_erased(customer));
        assert!(matches!(store.newest(customer), Err(OpenError::Erased)));
    }

    #[test]
    fn a_destroyed_key_no_longer_opens() {
        let (_dir, store) = store();
        let customer = CustomerId::new_v7();
        let (key_id, key) = minted(&store, customer);
        store.apply(KeyRecord::Destroyed { customer, key_id });
        let context = sealing_context(customer, uuid::Uuid::now_v7());
        let personal = SealedPersonal {
            key_id: key_id.to_string(),
            sealed: key.seal(b"{}", &context).unwrap(),
        };
        assert!(matches!(
            store.open(customer, &personal, &context),
            Err(OpenError::KeyUnknown(_))
        ));
    }
}
