//! The directory: which ordinal each customer holds, its order key, and every live customer in
//! answer order. Kept in memory (about 35 bytes per customer), loaded from the store's column at
//! open and changed by the writer as it applies records.
//!
//! Ordinals are dense and assigned in the order customers are applied, which is close to, but not
//! exactly, the answer order (`createdAt`, then `id`): partitions interleave differently on every
//! replica, and a rebuild reads them in yet another order. So the answer order is kept apart from
//! the ordinals, as [`AnswerOrder`]: every live ordinal sorted by its order key, and a page is read
//! from it, never from ordinal order.

use crate::domain::{AccountId, Customer, CustomerId};
use hashbrown::{HashMap, HashTable};
use roaring::RoaringBitmap;
use std::hash::BuildHasher;

/// What a page is sorted by: `createdAt` (milliseconds), then the id's bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OrderKey {
    /// `createdAt`, in milliseconds since the epoch.
    pub created_millis: i64,
    /// The customer's id.
    pub id: [u8; 16],
}

impl OrderKey {
    /// The order key of `customer`.
    pub fn of(customer: &Customer) -> Self {
        Self {
            created_millis: customer.created_at.timestamp_millis(),
            id: *customer.id.as_bytes(),
        }
    }

    /// 24 bytes that sort as the key does: the time with its sign bit flipped, then the id.
    pub fn to_bytes(self) -> [u8; 24] {
        let mut bytes = [0u8; 24];
        bytes[..8].copy_from_slice(&((self.created_millis as u64) ^ (1 << 63)).to_be_bytes());
        bytes[8..].copy_from_slice(&self.id);
        bytes
    }

    /// The key [`OrderKey::to_bytes`] wrote.
    pub fn from_bytes(bytes: [u8; 24]) -> Self {
        let time: [u8; 8] = bytes[..8].try_into().expect("8 bytes");
        Self {
            created_millis: (u64::from_be_bytes(time) ^ (1 << 63)) as i64,
            id: bytes[8..].try_into().expect("16 bytes"),
        }
    }
}

/// What the directory knows of a customer: where it sorts, and its account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listing {
    /// Its order key.
    pub key: OrderKey,
    /// Its account.
    pub account: AccountId,
}

impl Listing {
    /// The listing of `customer`.
    pub fn of(customer: &Customer) -> Self {
        Self {
            key: OrderKey::of(customer),
            account: customer.details.account_id,
        }
    }
}

/// What the column says about an ordinal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnEntry {
    /// A customer with this listing holds the ordinal.
    Live(Listing),
    /// The customer with this listing was deleted: found by id (its history), in no answer.
    /// Ordinals are never reused.
    Deleted(Listing),
}

/// Most ordinals in one run of [`AnswerOrder`]; a run is split in two past it.
const RUN_LIMIT: usize = 4096;

/// Every live ordinal, sorted by order key, in runs of at most [`RUN_LIMIT`]: inserting near the
/// end (where new customers sort) moves only the last run's tail.
#[derive(Debug, Default, Clone)]
pub struct AnswerOrder {
    runs: Vec<Vec<u32>>,
    len: usize,
}

impl AnswerOrder {
    /// Ordinals held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The last ordinal in answer order: the newest customer's.
    pub fn last(&self) -> Option<u32> {
        self.runs.iter().rev().find_map(|run| run.last().copied())
    }

    /// The ordinals in answer order, starting at the `skip`th.
    pub fn iter_from(&self, skip: usize) -> impl Iterator<Item = u32> + '_ {
        let mut skip = skip;
        let mut first_run = self.runs.len();
        for (at, run) in self.runs.iter().enumerate() {
            if skip < run.len() {
                first_run = at;
                break;
            }
            skip -= run.len();
        }
        self.runs[first_run..]
            .iter()
            .enumerate()
            .flat_map(move |(at, run)| run[if at == 0 { skip } else { 0 }..].iter().copied())
    }

    fn build(mut ordinals: Vec<u32>, key_of: impl Fn(u32) -> OrderKey) -> Self {
        // Mostly in order already (ordinals follow application order): the sort is near linear.
        ordinals.sort_by_key(|ordinal| key_of(*ordinal));
        let len = ordinals.len();
        let runs = ordinals
            .chunks(RUN_LIMIT / 2)
            .map(<[u32]>::to_vec)
            .collect();
        Self { runs, len }
    }

    fn insert(&mut self, ordinal: u32, key: OrderKey, key_of: impl Fn(u32) -> OrderKey) {
        // The first run whose last key is not below `key`; new customers land in the last run.
        let run_at = self
            .runs
            .partition_point(|run| run.last().is_some_and(|last| key_of(*last) < key))
            .min(self.runs.len().saturating_sub(1));
        if self.runs.is_empty() {
            self.runs.push(Vec::new());
        }
        let run = &mut self.runs[run_at];
        let at = run.partition_point(|other| key_of(*other) < key);
        run.insert(at, ordinal);
        if run.len() > RUN_LIMIT {
            let upper = run.split_off(run.len() / 2);
            self.runs.insert(run_at + 1, upper);
        }
        self.len += 1;
    }

    fn remove(&mut self, ordinal: u32, key: OrderKey, key_of: impl Fn(u32) -> OrderKey) {
        let run_at = self
            .runs
            .partition_point(|run| run.last().is_some_and(|last| key_of(*last) < key));
        let Some(run) = self.runs.get_mut(run_at) else {
            return;
        };
        let at = run.partition_point(|other| key_of(*other) < key);
        if run.get(at) == Some(&ordinal) {
            run.remove(at);
            self.len -= 1;
            if run.is_empty() {
                self.runs.remove(run_at);
            }
        }
    }
}

/// The in-memory directory of customers; see the module doc.
#[derive(Debug, Default, Clone)]
pub struct Directory {
    /// The order key of every ordinal ever assigned (removed ones keep theirs).
    keys: Vec<OrderKey>,
    /// The account of every ordinal ever assigned.
    accounts: Vec<u32>,
    /// How many live customers each account has.
    account_sizes: HashMap<u32, u32>,
    live: RoaringBitmap,
    /// Every ordinal, deleted ones included, found by its customer id (hashed through `keys`).
    ids: HashTable<u32>,
    hasher: hashbrown::DefaultHashBuilder,
    order: AnswerOrder,
}

impl Directory {
    /// A directory of the ordinals `0..column.len()`, each as its column entry says.
    pub fn build(column: &[ColumnEntry]) -> Self {
        let mut directory = Self::default();
        for (ordinal, entry) in column.iter().enumerate() {
            let listing = match entry {
                ColumnEntry::Live(listing) => {
                    directory.live.insert(ordinal as u32);
                    *directory
                        .account_sizes
                        .entry(listing.account.get())
                        .or_default() += 1;
                    listing
                }
                ColumnEntry::Deleted(listing) => listing,
            };
            directory.keys.push(listing.key);
            directory.accounts.push(listing.account.get());
        }
        let Self {
            keys,
            live,
            ids,
            hasher,
            order,
            ..
        } = &mut directory;
        ids.reserve(keys.len(), |ordinal| {
            hasher.hash_one(keys[*ordinal as usize].id)
        });
        for ordinal in 0..keys.len() as u32 {
            let hash = hasher.hash_one(keys[ordinal as usize].id);
            ids.insert_unique(hash, ordinal, |other| {
                hasher.hash_one(keys[*other as usize].id)
            });
        }
        *order = AnswerOrder::build(live.iter().collect(), |ordinal| keys[ordinal as usize]);
        directory
    }

    /// The next ordinal to assign.
    pub fn next_ordinal(&self) -> u32 {
        self.keys.len() as u32
    }

    /// The ordinal customer `id` holds, deleted or not.
    pub fn ordinal_of(&self, id: CustomerId) -> Option<u32> {
        let id = *id.as_bytes();
        self.ids
            .find(self.hasher.hash_one(id), |ordinal| {
                self.keys[*ordinal as usize].id == id
            })
            .copied()
    }

    /// The order key of `ordinal`.
    pub fn key(&self, ordinal: u32) -> OrderKey {
        self.keys[ordinal as usize]
    }

    /// Whether `ordinal`'s customer belongs to one of `accounts` (sorted).
    pub fn is_in(&self, ordinal: u32, accounts: &[AccountId]) -> bool {
        let account = self.accounts[ordinal as usize];
        accounts
            .binary_search_by_key(&account, |listed| listed.get())
            .is_ok()
    }

    /// How many live customers `account` has.
    pub fn account_size(&self, account: AccountId) -> usize {
        self.account_sizes.get(&account.get()).copied().unwrap_or(0) as usize
    }

    /// Every account with a live customer, in no particular order.
    pub fn accounts(&self) -> impl Iterator<Item = AccountId> + '_ {
        self.account_sizes
            .iter()
            .filter(|(_, size)| **size > 0)
            .map(|(account, _)| {
                AccountId::parse(i64::from(*account)).expect("stored from an AccountId")
            })
    }

    /// Every live ordinal.
    pub fn live(&self) -> &RoaringBitmap {
        &self.live
    }

    /// Every live ordinal, in answer order.
    pub fn answer_order(&self) -> &AnswerOrder {
        &self.order
    }

    /// Assigns the next ordinal to a new customer.
    pub fn add(&mut self, listing: Listing) -> u32 {
        let ordinal = self.next_ordinal();
        let key = listing.key;
        self.keys.push(key);
        self.accounts.push(listing.account.get());
        *self.account_sizes.entry(listing.account.get()).or_default() += 1;
        self.live.insert(ordinal);
        let Self {
            keys, ids, hasher, ..
        } = self;
        ids.insert_unique(hasher.hash_one(key.id), ordinal, |other| {
            hasher.hash_one(keys[*other as usize].id)
        });
        let keys = &self.keys;
        self.order
            .insert(ordinal, key, |other| keys[other as usize]);
        ordinal
    }

    /// Takes the live customer at `ordinal` out of every answer; it is still found by id.
    pub fn delete(&mut self, ordinal: u32) {
        if !self.live.remove(ordinal) {
            return;
        }
        if let Some(size) = self.account_sizes.get_mut(&self.accounts[ordinal as usize]) {
            *size -= 1;
        }
        let key = self.keys[ordinal as usize];
        let keys = &self.keys;
        self.order
            .remove(ordinal, key, |other| keys[other as usize]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(millis: i64, id: u8) -> OrderKey {
        OrderKey {
            created_millis: millis,
            id: [id; 16],
        }
    }

    fn listing(millis: i64, id: u8) -> Listing {
        Listing {
            key: key(millis, id),
            account: AccountId::parse(1 + i64::from(id % 3)).unwrap(),
        }
    }

    #[test]
    fn order_keys_sort_by_time_then_id_even_before_the_epoch() {
        let keys = [key(-1, 9), key(0, 1), key(0, 2), key(1_795_624_843_120, 0)];
        for pair in keys.windows(2) {
            assert!(pair[0] < pair[1]);
            assert!(pair[0].to_bytes() < pair[1].to_bytes());
        }
        for key in keys {
            assert_eq!(OrderKey::from_bytes(key.to_bytes()), key);
        }
    }

    #[test]
    fn the_answer_order_holds_live_ordinals_by_key_whatever_order_they_came_in() {
        let mut directory = Directory::default();
        // Applied out of order, as partitions interleave; enough to split runs.
        let times: Vec<i64> = (0..10_000).map(|n| (n * 7_919) % 10_007).collect();
        for (n, time) in times.iter().enumerate() {
            directory.add(listing(*time, (n % 251) as u8));
        }
        for ordinal in (0..10_000).step_by(3) {
            directory.delete(ordinal);
        }
        let walked: Vec<u32> = directory.answer_order().iter_from(0).collect();
        let mut expected: Vec<u32> = directory.live().iter().collect();
        expected.sort_by_key(|ordinal| directory.key(*ordinal));
        assert_eq!(walked, expected);
        assert_eq!(
            directory.answer_order().iter_from(5_000).next(),
            Some(expected[5_000])
        );
        assert_eq!(
            directory.answer_order().iter_from(expected.len()).next(),
            None
        );

        let column: Vec<ColumnEntry> = (0..10_000)
            .map(|ordinal| {
                let listing = Listing {
                    key: directory.key(ordinal),
                    account: AccountId::parse(i64::from(directory.accounts[ordinal as usize]))
                        .unwrap(),
                };
                if directory.live().contains(ordinal) {
                    ColumnEntry::Live(listing)
                } else {
                    ColumnEntry::Deleted(listing)
                }
            })
            .collect();
        let rebuilt = Directory::build(&column);
        assert_eq!(rebuilt.ordinal_of(CustomerId::from_bytes([0; 16])), Some(0));
        assert_eq!(rebuilt.account_sizes, directory.account_sizes);
        assert_eq!(
            rebuilt.answer_order().iter_from(0).collect::<Vec<_>>(),
            expected
        );
    }

    #[test]
    fn ids_find_deleted_ordinals_too_but_answers_hold_live_ones_only() {
        let mut directory = Directory::default();
        let first = directory.add(listing(5, 1));
        let second = directory.add(listing(5, 2));
        let id = |n: u8| CustomerId::from_bytes([n; 16]);
        assert_eq!(directory.ordinal_of(id(1)), Some(first));
        assert_eq!(directory.ordinal_of(id(2)), Some(second));
        assert_eq!(directory.account_size(AccountId::parse(2).unwrap()), 1);
        assert!(directory.is_in(first, &[AccountId::parse(2).unwrap()]));
        directory.delete(first);
        assert_eq!(directory.account_size(AccountId::parse(2).unwrap()), 0);
        assert_eq!(directory.ordinal_of(id(1)), Some(first));
        assert_eq!(
            directory.answer_order().iter_from(0).collect::<Vec<_>>(),
            vec![second]
        );
        assert_eq!(directory.ordinal_of(id(3)), None);
        assert_eq!(directory.live().len(), 1);
    }
}
