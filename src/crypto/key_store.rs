//! A replica's copy of the keys topic: every customer's wrapped data keys, or that its keys were
//! erased, fed record by record in the topic's order ([`KeyStore::apply`]). Keys stay wrapped in
//! memory and are unwrapped on each use (one AES-GCM open of 32 bytes), so no data key outlives
//! the call that needed it; an erased customer's keys are dropped the moment its marker is read.

use super::data_key::{CryptoError, DataKey, Keyring, WrappedKey, SEAL_OVERHEAD};
use super::key_record::{KeyId, KeyRecord};
use crate::domain::{CustomerId, OpenError, Opener, SealedPersonal};
use chrono::{DateTime, Utc};
use hashbrown::hash_map::Entry;
use hashbrown::HashMap;
use parking_lot::RwLock;
use zeroize::Zeroizing;

/// Where a record of the keys topic was read: `(partition, offset)`.
pub type KeyPlace = (i32, i64);

/// Bytes of a wrapped data key: nonce, the 32-byte key, tag.
const WRAPPED_BYTES: usize = 32 + SEAL_OVERHEAD;

/// One data key of a customer's, wrapped, as held: the KEK's id interned and the sealed key
/// inline, so that holding it allocates nothing of its own (a replica holds a key for every
/// customer; see docs/performance.md).
struct HeldKey {
    id: KeyId,
    /// Offset of its record, read at partition `partition`; negative until the follower reads
    /// back a key this process wrote.
    offset: i64,
    partition: i32,
    /// Its KEK: an index into the store's interned KEK ids.
    kek: u16,
    sealed: [u8; WRAPPED_BYTES],
}

impl HeldKey {
    fn place(&self) -> Option<KeyPlace> {
        (self.offset >= 0).then_some((self.partition, self.offset))
    }

    fn set_place(&mut self, place: Option<KeyPlace>) {
        if let Some((partition, offset)) = place {
            (self.partition, self.offset) = (partition, offset);
        }
    }
}

/// What the keys topic says of one customer so far.
enum Held {
    /// Its one key (almost every customer's).
    Key(HeldKey),
    /// Its keys, oldest first, when it has more than one (replicas raced to create it, or a
    /// KEK rotation re-wrapped none: keys are never re-wrapped in place).
    Keys(Vec<HeldKey>),
    /// Its keys were erased, and none may be made again.
    Erased(ErasedKeys),
}

impl Held {
    /// Its keys, oldest first; none once erased.
    fn keys(&self) -> &[HeldKey] {
        match self {
            Held::Key(key) => std::slice::from_ref(key),
            Held::Keys(keys) => keys,
            Held::Erased(_) => &[],
        }
    }
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
    held: RwLock<HeldKeys>,
}

/// What a [`KeyStore`] holds, under one lock.
#[derive(Default)]
struct HeldKeys {
    /// Boxed: a key takes about 90 bytes, and a map sized to the next power of two of its
    /// entries would hold that much again in empty slots. Hashed with hashbrown's default
    /// (foldhash, seeded per process): SipHash was a third of taking in a key at start-up, and
    /// a seeded hash still keeps ids chosen to collide (codes are the client's) from piling up.
    customers: HashMap<CustomerId, Box<Held>>,
    /// The ids of the KEKs its keys name, each once.
    kek_ids: Vec<String>,
    /// The customer each erasure request (by its id) erased.
    erasures: HashMap<String, CustomerId>,
}

impl HeldKeys {
    /// Takes in `record`, read at `place`; see [`KeyStore::apply`].
    fn apply(&mut self, record: KeyRecord, place: Option<KeyPlace>) -> Option<(CustomerId, KeyId)> {
        match record {
            KeyRecord::DataKey {
                customer,
                key_id,
                wrapped,
                ..
            } => self.add_key(customer, key_id, &wrapped, place),
            KeyRecord::Destroyed { customer, key_id } => {
                self.destroy(customer, key_id);
                None
            }
            KeyRecord::Erased {
                customer,
                erased_at,
                request_id,
            } => {
                self.erase(customer, erased_at, request_id);
                None
            }
        }
    }

    /// Takes in `customer`'s key `key_id`; see [`KeyStore::apply`]. One look-up of the
    /// customer: at start-up this runs once for every key on the topic.
    fn add_key(
        &mut self,
        customer: CustomerId,
        key_id: KeyId,
        wrapped: &WrappedKey,
        place: Option<KeyPlace>,
    ) -> Option<(CustomerId, KeyId)> {
        let slot = match self.customers.entry(customer) {
            Entry::Occupied(held) => held.into_mut(),
            Entry::Vacant(vacant) => {
                let key = held_key(&mut self.kek_ids, key_id, wrapped, place)?;
                vacant.insert(Box::new(Held::Key(key)));
                return None;
            }
        };
        if let Held::Erased(erased) = slot.as_mut() {
            erased.places.extend(place);
            if !erased.undestroyed.contains(&key_id) {
                erased.undestroyed.push(key_id);
            }
            return Some((customer, key_id));
        }
        let key = held_key(&mut self.kek_ids, key_id, wrapped, place)?;
        let held = std::mem::replace(slot.as_mut(), Held::Keys(Vec::new()));
        **slot = match held {
            Held::Key(first) if first.id == key_id => Held::Key(held_at(first, place)),
            Held::Key(first) => Held::Keys(vec![first, key]),
            Held::Keys(mut keys) => {
                match keys.iter_mut().find(|held| held.id == key_id) {
                    Some(known) if known.place().is_none() => known.set_place(place),
                    Some(_) => {}
                    None => keys.push(key),
                }
                Held::Keys(keys)
            }
            erased @ Held::Erased(_) => erased,
        };
        None
    }

    /// Forgets `customer`'s key `key_id` (its tombstone was read).
    fn destroy(&mut self, customer: CustomerId, key_id: KeyId) {
        let Some(held) = self.customers.remove(&customer).map(|held| *held) else {
            return;
        };
        let left = match held {
            Held::Key(key) if key.id == key_id => None,
            Held::Keys(mut keys) => {
                keys.retain(|held| held.id != key_id);
                match keys.len() {
                    0 => None,
                    1 => keys.pop().map(Held::Key),
                    _ => Some(Held::Keys(keys)),
                }
            }
            Held::Erased(mut erased) => {
                erased.undestroyed.retain(|held| *held != key_id);
                Some(Held::Erased(erased))
            }
            other => Some(other),
        };
        if let Some(left) = left {
            self.customers.insert(customer, Box::new(left));
        }
    }

    /// Takes in `customer`'s erased marker: its keys go, what is left of them on the topic is
    /// remembered.
    fn erase(&mut self, customer: CustomerId, erased_at: DateTime<Utc>, request_id: String) {
        let erased = match self.customers.remove(&customer).map(|held| *held) {
            Some(Held::Erased(earlier)) => earlier,
            held => {
                let keys = held.as_ref().map_or(&[][..], Held::keys);
                ErasedKeys {
                    request_id,
                    erased_at,
                    undestroyed: keys.iter().map(|held| held.id).collect(),
                    places: keys.iter().filter_map(HeldKey::place).collect(),
                }
            }
        };
        self.erasures.insert(erased.request_id.clone(), customer);
        self.customers
            .insert(customer, Box::new(Held::Erased(erased)));
    }
}

/// `wrapped`, as held at `place`, its KEK interned in `kek_ids`; `None` (with a warning) when
/// it is not a wrapped key this build reads.
fn held_key(
    kek_ids: &mut Vec<String>,
    key_id: KeyId,
    wrapped: &WrappedKey,
    place: Option<KeyPlace>,
) -> Option<HeldKey> {
    let (Ok(sealed), Some(kek)) = (
        <[u8; WRAPPED_BYTES]>::try_from(wrapped.sealed.as_slice()),
        interned(kek_ids, &wrapped.kek_id),
    ) else {
        tracing::warn!(%key_id, "a data key record holds no wrapped key this build reads; skipped");
        return None;
    };
    let mut key = HeldKey {
        id: key_id,
        offset: -1,
        partition: 0,
        kek,
        sealed,
    };
    key.set_place(place);
    Some(key)
}

/// The index of `kek_id` among `kek_ids`, interned now if new (`None` past 65,536 KEKs).
fn interned(kek_ids: &mut Vec<String>, kek_id: &str) -> Option<u16> {
    let index = match kek_ids.iter().position(|known| known == kek_id) {
        Some(index) => index,
        None => {
            kek_ids.push(kek_id.to_owned());
            kek_ids.len() - 1
        }
    };
    u16::try_from(index).ok()
}

/// `key`, placed at `place` unless it was placed already.
fn held_at(mut key: HeldKey, place: Option<KeyPlace>) -> HeldKey {
    if key.place().is_none() {
        key.set_place(place);
    }
    key
}

impl KeyStore {
    /// An empty store whose keys `keyring` wraps and unwraps.
    pub fn new(keyring: Keyring) -> Self {
        Self {
            keyring,
            held: RwLock::new(HeldKeys::default()),
        }
    }

    /// Takes in the next record of the keys topic, read at `place` (`None`: written by this
    /// process, not read back yet). A key record for an erased customer is not held: the marker
    /// is final, and the key it names (minted by a replica that had not read the marker yet) is
    /// returned, for the caller to destroy.
    pub fn apply(&self, record: KeyRecord, place: Option<KeyPlace>) -> Option<(CustomerId, KeyId)> {
        self.held.write().apply(record, place)
    }

    /// [`KeyStore::apply`] for each of `records`, read at their places, in their order, under
    /// one lock: the keys to destroy, in the order met.
    pub fn apply_all(
        &self,
        records: impl IntoIterator<Item = (KeyRecord, KeyPlace)>,
    ) -> Vec<(CustomerId, KeyId)> {
        let mut held = self.held.write();
        records
            .into_iter()
            .filter_map(|(record, place)| held.apply(record, Some(place)))
            .collect()
    }

    /// What is known of `customer`'s erasure, if its keys were erased.
    pub fn erasure_of(&self, customer: CustomerId) -> Option<ErasedKeys> {
        match self.held.read().customers.get(&customer).map(Box::as_ref) {
            Some(Held::Erased(erased)) => Some(ErasedKeys::clone(erased)),
            _ => None,
        }
    }

    /// The customer the erasure request `request_id` erased, if its marker was read.
    pub fn erased_by(&self, request_id: &str) -> Option<CustomerId> {
        self.held.read().erasures.get(request_id).copied()
    }

    /// Every erased customer, and what is known of its erasure.
    pub fn erasures(&self) -> Vec<(CustomerId, ErasedKeys)> {
        let held = self.held.read();
        let mut erased: Vec<(CustomerId, ErasedKeys)> = held
            .erasures
            .values()
            .filter_map(
                |customer| match held.customers.get(customer).map(Box::as_ref) {
                    Some(Held::Erased(erased)) => Some((*customer, ErasedKeys::clone(erased))),
                    _ => None,
                },
            )
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
        let held = self.held.read();
        match held.customers.get(&customer).map(Box::as_ref) {
            None => Ok(None),
            Some(Held::Erased(_)) => Err(OpenError::Erased),
            Some(keys) => match keys.keys().last() {
                None => Ok(None),
                Some(key) => Ok(Some((key.id, self.unwrap(&held, key, customer)?))),
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
            let held = self.held.read();
            let key = match held.customers.get(&customer).map(Box::as_ref) {
                Some(Held::Erased(_)) => return Err(OpenError::Erased),
                Some(keys) => keys.keys().iter().find(|key| key.id == wanted),
                None => None,
            };
            self.unwrap(&held, key.ok_or_else(unknown)?, customer)?
        };
        key.open(&personal.sealed, context)
            .map_err(|_| OpenError::Inauthentic)
    }

    /// Whether `customer`'s keys were erased.
    pub fn is_erased(&self, customer: CustomerId) -> bool {
        matches!(
            self.held.read().customers.get(&customer).map(Box::as_ref),
            Some(Held::Erased(_))
        )
    }

    /// Customers the store knows of (with keys, or erased).
    pub fn customers(&self) -> usize {
        self.held.read().customers.len()
    }

    fn unwrap(
        &self,
        held: &HeldKeys,
        key: &HeldKey,
        customer: CustomerId,
    ) -> Result<DataKey, OpenError> {
        self.keyring
            .unwrap(&held.kek_ids[usize::from(key.kek)], &key.sealed, customer)
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
    fn records_applied_together_end_as_applied_one_by_one_and_hand_back_late_keys_in_order() {
        let (_dir, store) = store();
        let (kept, erased) = (CustomerId::new_v7(), CustomerId::new_v7());
        let key_of = |customer| KeyRecord::DataKey {
            customer,
            key_id: KeyId::random().unwrap(),
            wrapped: store.wrap(&DataKey::mint().unwrap(), customer).unwrap(),
            minted_at: Utc::now(),
        };
        let (first, late, later) = (key_of(erased), key_of(erased), key_of(erased));
        let key_id = |record: &KeyRecord| match record {
            KeyRecord::DataKey { key_id, .. } => *key_id,
            _ => unreachable!("data key records only"),
        };
        let (late_id, later_id) = (key_id(&late), key_id(&later));
        let marker = KeyRecord::Erased {
            customer: erased,
            erased_at: Utc::now(),
            request_id: "r".into(),
        };
        let records = [first, key_of(kept), marker, late, later];
        let places = (0..).map(|offset| (0, offset));
        let handed_back = store.apply_all(records.into_iter().zip(places));
        assert_eq!(handed_back, vec![(erased, late_id), (erased, later_id)]);
        assert!(store.is_erased(erased));
        assert!(store.newest(kept).unwrap().is_some());
        let erasure = store.erasure_of(erased).unwrap();
        assert_eq!(
            erasure.undestroyed.len(),
            3,
            "the first key and both late ones"
        );
        assert_eq!(erasure.places, vec![(0, 0), (0, 3), (0, 4)]);
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

    #[test]
    fn a_customer_with_two_keys_keeps_the_other_when_one_is_destroyed() {
        let (_dir, store) = store();
        let customer = CustomerId::new_v7();
        let (first_id, _) = minted(&store, customer);
        let (second_id, second) = minted(&store, customer);
        store.apply(
            KeyRecord::Destroyed {
                customer,
                key_id: first_id,
            },
            Some((3, 4)),
        );
        let (newest_id, newest) = store.newest(customer).unwrap().unwrap();
        assert_eq!(newest_id, second_id);
        let context = sealing_context(customer, uuid::Uuid::now_v7());
        let sealed = second.seal(b"{}", &context).unwrap();
        assert_eq!(newest.open(&sealed, &context).unwrap().as_slice(), b"{}");
        store.apply(
            KeyRecord::Destroyed {
                customer,
                key_id: second_id,
            },
            Some((3, 5)),
        );
        assert!(store.newest(customer).unwrap().is_none());
        assert_eq!(store.customers(), 0);
    }

    #[test]
    fn a_wrapped_key_of_another_size_is_not_held() {
        let (_dir, store) = store();
        let customer = CustomerId::new_v7();
        let record = KeyRecord::DataKey {
            customer,
            key_id: KeyId::random().unwrap(),
            wrapped: WrappedKey {
                kek_id: "kek-1".into(),
                sealed: vec![0; 61],
            },
            minted_at: Utc::now(),
        };
        assert_eq!(store.apply(record, Some((0, 1))), None);
        assert!(store.newest(customer).unwrap().is_none());
    }

    #[test]
    fn a_held_key_fits_a_96_byte_allocation() {
        // What docs/performance.md's memory per customer is made of: a 24-byte map slot (id
        // and box) and this allocation.
        assert!(std::mem::size_of::<Held>() <= 96);
    }
}
