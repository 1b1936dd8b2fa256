//! A replica's copy of the keys topic: every customer's wrapped data keys, or that its keys were
//! erased, fed record by record in the topic's order ([`KeyStore::apply`]). Keys stay wrapped in
//! memory and are unwrapped on each use (one AES-GCM open of 32 bytes), so no data key outlives
//! the call that needed it; an erased customer's keys are dropped the moment its marker is read.

use super::data_key::{CryptoError, DataKey, Keyring, WrappedKey};
use super::key_record::{KeyId, KeyRecord};
use crate::domain::{CustomerId, OpenError, Opener, SealedPersonal};
use chrono::{DateTime, Utc};
use parking_lot::RwLock;
use std::collections::HashMap;
use zeroize::Zeroizing;

/// Where a record of the keys topic was read: `(partition, offset)`.
pub type KeyPlace = (i32, i64);

/// One data key of a customer's, wrapped, and where its record was read (`None` until the
/// follower reads back a key this process wrote).
struct HeldKey {
    id: KeyId,
    wrapped: WrappedKey,
    place: Option<KeyPlace>,
}

/// What the keys topic says of one customer so far.
enum Held {
    /// Its keys, oldest first (more than one when replicas raced to create it, or a KEK
    /// rotation re-wrapped none: keys are never re-wrapped in place).
    Keys(Vec<HeldKey>),
    /// Its keys were erased, and none may be made again.
    Erased(ErasedKeys),
}

/// An erased customer's marker, and what is left of its keys on the topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasedKeys {
    /// The erasure request the marker names.
    pub request_id: String,
    /// When the marker says the keys were erased.
    pub erased_at: DateTime<Utc>,
    /// Its key records not yet followed by a tombstone: none once its keys are destroyed.
    pub undestroyed: Vec<KeyId>,
    /// Where each of its key records was read: compaction removes them from the topic's storage.
    pub places: Vec<KeyPlace>,
}

/// Every customer's wrapped data keys, as the keys topic holds them.
pub struct KeyStore {
    keyring: Keyring,
    customers: RwLock<HashMap<CustomerId, Held>>,
    /// The customer each erasure request (by its id) erased.
    erasures: RwLock<HashMap<String, CustomerId>>,
}

impl KeyStore {
    /// An empty store whose keys `keyring` wraps and unwraps.
    pub fn new(keyring: Keyring) -> Self {
        Self {
            keyring,
            customers: RwLock::new(HashMap::new()),
            erasures: RwLock::new(HashMap::new()),
        }
    }

    /// Takes in the next record of the keys topic, read at `place` (`None`: written by this
    /// process, not read back yet). A key record for an erased customer is not held: the marker
    /// is final, and the key it names (minted by a replica that had not read the marker yet) is
    /// returned, for the caller to destroy.
    pub fn apply(&self, record: KeyRecord, place: Option<KeyPlace>) -> Option<(CustomerId, KeyId)> {
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
                Held::Keys(keys) => match keys.iter_mut().find(|held| held.id == key_id) {
                    Some(held) => held.place = held.place.or(place),
                    None => keys.push(HeldKey {
                        id: key_id,
                        wrapped,
                        place,
                    }),
                },
                Held::Erased(erased) => {
                    erased.places.extend(place);
                    if !erased.undestroyed.contains(&key_id) {
                        erased.undestroyed.push(key_id);
                    }
                    return Some((customer, key_id));
                }
            },
            KeyRecord::Destroyed { customer, key_id } => match customers.get_mut(&customer) {
                Some(Held::Keys(keys)) => keys.retain(|held| held.id != key_id),
                Some(Held::Erased(erased)) => erased.undestroyed.retain(|held| *held != key_id),
                None => {}
            },
            KeyRecord::Erased {
                customer,
                erased_at,
                request_id,
            } => {
                let erased = match customers.remove(&customer) {
                    Some(Held::Erased(earlier)) => earlier,
                    held => {
                        let keys = match held {
                            Some(Held::Keys(keys)) => keys,
                            _ => Vec::new(),
                        };
                        ErasedKeys {
                            request_id,
                            erased_at,
                            undestroyed: keys.iter().map(|held| held.id).collect(),
                            places: keys.iter().filter_map(|held| held.place).collect(),
                        }
                    }
                };
                self.erasures
                    .write()
                    .insert(erased.request_id.clone(), customer);
                customers.insert(customer, Held::Erased(erased));
            }
        }
        None
    }

    /// What is known of `customer`'s erasure, if its keys were erased.
    pub fn erasure_of(&self, customer: CustomerId) -> Option<ErasedKeys> {
        match self.customers.read().get(&customer) {
            Some(Held::Erased(erased)) => Some(erased.clone()),
            _ => None,
        }
    }

    /// The customer the erasure request `request_id` erased, if its marker was read.
    pub fn erased_by(&self, request_id: &str) -> Option<CustomerId> {
        self.erasures.read().get(request_id).copied()
    }

    /// Every erased customer, and what is known of its erasure.
    pub fn erasures(&self) -> Vec<(CustomerId, ErasedKeys)> {
        let customers = self.customers.read();
        let mut erased: Vec<(CustomerId, ErasedKeys)> = self
            .erasures
            .read()
            .values()
            .filter_map(|customer| match customers.get(customer) {
                Some(Held::Erased(erased)) => Some((*customer, erased.clone())),
                _ => None,
            })
            .collect();
        erased.sort_by_key(|(customer, erasure)| (erasure.erased_at, *customer));
        erased
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
            Some(Held::Erased(_)) => Err(OpenError::Erased),
            Some(Held::Keys(keys)) => match keys.last() {
                None => Ok(None),
                Some(held) => Ok(Some((held.id, self.unwrap(&held.wrapped, customer)?))),
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
                Some(Held::Erased(_)) => return Err(OpenError::Erased),
                Some(Held::Keys(keys)) => keys
                    .iter()
                    .find(|held| held.id == wanted)
                    .map(|held| &held.wrapped),
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
        matches!(self.customers.read().get(&customer), Some(Held::Erased(_)))
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
        store.apply(
            KeyRecord::DataKey {
                customer,
                key_id,
                wrapped: store.wrap(&key, customer).unwrap(),
                minted_at: Utc::now(),
            },
            None,
        );
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
        store.apply(
            KeyRecord::Erased {
                customer,
                erased_at: Utc::now(),
                request_id: "r".into(),
            },
            Some((0, 9)),
        );
        assert_eq!(store.erased_by("r"), Some(customer));
        let erased = store.erasure_of(customer).unwrap();
        assert_eq!(erased.undestroyed, vec![first_id, second_id]);
        assert_eq!(
            store.open(customer, &personal, &context).unwrap_err(),
            OpenError::Erased
        );
        // A key record read after the marker (a late create) is not held, and is handed back
        // to be destroyed.
        let late = KeyId::random().unwrap();
        let wrapped = store.wrap(&DataKey::mint().unwrap(), customer).unwrap();
        let record = KeyRecord::DataKey {
            customer,
            key_id: late,
            wrapped,
            minted_at: Utc::now(),
        };
        assert_eq!(store.apply(record, Some((0, 12))), Some((customer, late)));
        assert!(store.is_erased(customer));
        assert!(matches!(store.newest(customer), Err(OpenError::Erased)));
        for key_id in [first_id, second_id, late] {
            store.apply(KeyRecord::Destroyed { customer, key_id }, Some((0, 13)));
        }
        let erased = store.erasure_of(customer).unwrap();
        assert!(erased.undestroyed.is_empty());
        assert_eq!(erased.places, vec![(0, 12)], "places of the keys read back");
        assert_eq!(store.erasures().len(), 1);
    }

    #[test]
    fn a_destroyed_key_no_longer_opens() {
        let (_dir, store) = store();
        let customer = CustomerId::new_v7();
        let (key_id, key) = minted(&store, customer);
        store.apply(KeyRecord::Destroyed { customer, key_id }, None);
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
