//! How `find` picks its index, so a query costs what it returns and inspects, never the
//! registry's size.
//!
//! - **No text filter**: walk `by_account` (with `accountId`) or `by_created` (without), which
//!   already hold customers in answer order (`createdAt`, then `id`); skip `offset`, read `limit`,
//!   stop. The total comes from the `counts` tree, maintained with every apply.
//! - **Text filters**: each filter names a range of `text_index`, scoped to the account when
//!   `accountId` is given (merchants query within their account, so their ranges hold only their
//!   customers). The ranges are read in lock-step, one key from each in turn:
//!   - when one runs out within 250 keys, it is the narrowest, found at a cost of at most
//!     (filters × its size) keys, and its size bounds the work left. With one filter, its keys are
//!     the matches: sorted, counted, and only the page's customers loaded. With several, its
//!     customers are loaded and checked against every filter;
//!   - when all are larger, each filter's range is read in answer order — a whole-value filter's
//!     range (`state`, `countryCode`) is in order already; a prefix range is one ordered run per
//!     distinct value under the prefix (found with one seek each), merged — and the ordered
//!     streams are intersected key by key, so only the page's customers are ever loaded. The walk
//!     stops once the page is full and the total is not counted.
//!
//! Pages are stable under `offset`: the answer order is fixed per customer, customers are only
//! ever added, and a new customer sorts after the existing ones (its `createdAt` is later) unless
//! the clock of the replica that created it ran behind.

use super::keys::{self, ORDER_KEY_LEN};
use super::query::CustomerQuery;
use super::search::matches_whole_value;
use super::{ReadModel, ReadModelError, MAX_LIMIT};
use crate::domain::{AccountId, Customer, TextField};
use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// One page of a `find`, and how many customers match in all when that is cheap to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The customers of the page, in answer order.
    pub customers: Vec<Customer>,
    /// Every customer the query matches, over all pages: known without text filters (from the
    /// counts) and when the narrowest range was inspected whole.
    pub total: Option<usize>,
}

/// Ranges of at most this many keys are inspected whole (and their matches counted); past it, a
/// find reads in answer order and stops at the end of the page. Finding out that a range is
/// larger costs this many keys per filter: at 1,000 it was half of what a find in a large account
/// cost at 1M customers, at 250 throughput rose 1.3–1.6× (docs/performance.md).
const INSPECT_WHOLE: usize = 250;

/// The work [`ReadModel::find_inline`] may do, in index keys read (a customer loaded counts 4, a
/// seek 2): about a millisecond on this project's reference machine, short enough to run on an
/// async worker without stalling the requests that share it.
pub const INLINE_WORK: usize = 4_000;
/// A customer loaded, in keys read: a tree descent and a decode.
const LOAD_COST: usize = 4;
/// A seek to a run's start, in keys read.
const SEEK_COST: usize = 2;

/// The work a find has left to spend.
struct Work {
    left: Cell<usize>,
}

impl Work {
    fn limited_to(units: usize) -> Self {
        Self {
            left: Cell::new(units),
        }
    }

    fn spend(&self, units: usize) -> Result<(), ReadModelError> {
        let left = self.left.get();
        if left < units {
            return Err(ReadModelError::OverBudget);
        }
        self.left.set(left - units);
        Ok(())
    }

    /// The order key that ends an index key just read.
    fn order_key_in(&self, index_key: &[u8]) -> Result<[u8; ORDER_KEY_LEN], ReadModelError> {
        self.spend(1)?;
        keys::order_key_of(index_key)
            .ok_or_else(|| ReadModelError::Corrupt("index key too short".into()))
    }
}

/// Order keys in answer order.
type OrderedKeys<'w> = Box<dyn Iterator<Item = Result<[u8; ORDER_KEY_LEN], ReadModelError>> + 'w>;

/// The order keys every stream holds, in answer order: each stream is advanced, never sought,
/// until it reaches the largest key seen, so the cost is the keys read up to the last match.
struct Intersection<'w> {
    streams: Vec<OrderedKeys<'w>>,
}

impl Iterator for Intersection<'_> {
    type Item = Result<[u8; ORDER_KEY_LEN], ReadModelError>;

    fn next(&mut self) -> Option<Self::Item> {
        let count = self.streams.len();
        let mut target = match self.streams.first_mut()?.next()? {
            Ok(key) => key,
            Err(error) => return Some(Err(error)),
        };
        // How many streams, ending with the one at `at`, stand at `target`.
        let mut agreeing = 1;
        let mut at = 0;
        while agreeing < count {
            at = (at + 1) % count;
            let reached = loop {
                match self.streams[at].next()? {
                    Ok(key) if key < target => continue,
                    Ok(key) => break key,
                    Err(error) => return Some(Err(error)),
                }
            };
            if reached == target {
                agreeing += 1;
            } else {
                target = reached;
                agreeing = 1;
            }
        }
        Some(Ok(target))
    }
}

/// Ordered runs of index keys merged into one ordered stream of order keys.
struct MergedRuns<'w> {
    runs: Vec<sled::Iter>,
    heads: BinaryHeap<Reverse<([u8; ORDER_KEY_LEN], usize)>>,
    work: &'w Work,
}

impl<'w> MergedRuns<'w> {
    fn new(mut runs: Vec<sled::Iter>, work: &'w Work) -> Result<Self, ReadModelError> {
        let mut heads = BinaryHeap::with_capacity(runs.len());
        for (index, run) in runs.iter_mut().enumerate() {
            if let Some(entry) = run.next() {
                heads.push(Reverse((work.order_key_in(&entry?.0)?, index)));
            }
        }
        Ok(Self { runs, heads, work })
    }
}

impl Iterator for MergedRuns<'_> {
    type Item = Result<[u8; ORDER_KEY_LEN], ReadModelError>;

    fn next(&mut self) -> Option<Self::Item> {
        let Reverse((order_key, index)) = self.heads.pop()?;
        match self.runs[index].next() {
            Some(Ok((key, _))) => match self.work.order_key_in(&key) {
                Ok(next) => self.heads.push(Reverse((next, index))),
                Err(error) => return Some(Err(error)),
            },
            Some(Err(error)) => return Some(Err(error.into())),
            None => {}
        }
        Some(Ok(order_key))
    }
}

impl ReadModel {
    /// The page of customers that `query` selects, in `createdAt`, `id` order.
    ///
    /// # Errors
    /// [`ReadModelError`] when sled fails or an index points at a missing customer.
    pub fn find(&self, query: &CustomerQuery) -> Result<Page, ReadModelError> {
        self.find_inspecting(query, INSPECT_WHOLE, &Work::limited_to(usize::MAX))
    }

    /// [`ReadModel::find`] if it takes at most [`INLINE_WORK`]; `None` when it would take more
    /// (then run `find` where a long walk stalls nothing).
    ///
    /// # Errors
    /// [`ReadModelError`] when sled fails or an index points at a missing customer.
    pub fn find_inline(&self, query: &CustomerQuery) -> Result<Option<Page>, ReadModelError> {
        match self.find_inspecting(query, INSPECT_WHOLE, &Work::limited_to(INLINE_WORK)) {
            Ok(page) => Ok(Some(page)),
            Err(ReadModelError::OverBudget) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// [`ReadModel::find`], inspecting ranges whole up to `inspect_whole` keys.
    fn find_inspecting(
        &self,
        query: &CustomerQuery,
        inspect_whole: usize,
        work: &Work,
    ) -> Result<Page, ReadModelError> {
        if query.text_filters.is_empty() {
            self.walk_in_order(query, work)
        } else {
            self.narrowest_range(query, inspect_whole, work)
        }
    }

    fn walk_in_order(&self, query: &CustomerQuery, work: &Work) -> Result<Page, ReadModelError> {
        let (walk, total) = match query.account_id {
            Some(account_id) => (
                self.by_account
                    .scan_prefix(keys::account_prefix(account_id)),
                self.count(&keys::account_prefix(account_id))?,
            ),
            None => (self.by_created.iter(), self.count(keys::COUNT_ALL)?),
        };
        if query.offset >= total {
            // Nothing to walk to: answered without touching the index, however large `offset` is.
            return Ok(Page {
                customers: Vec::new(),
                total: Some(total),
            });
        }
        work.spend(query.offset)?;
        let mut customers = Vec::with_capacity(query.limit.min(total));
        for entry in walk.skip(query.offset).take(query.limit) {
            let (key, _) = entry?;
            customers.push(self.load(&key, work)?);
        }
        Ok(Page {
            customers,
            total: Some(total),
        })
    }

    fn narrowest_range(
        &self,
        query: &CustomerQuery,
        inspect_whole: usize,
        work: &Work,
    ) -> Result<Page, ReadModelError> {
        let mut ranges: Vec<sled::Iter> = query
            .text_filters
            .iter()
            .map(|(field, needle)| {
                let prefix = keys::text_range(
                    *field,
                    query.account_id,
                    needle,
                    matches_whole_value(*field),
                );
                self.text_index.scan_prefix(prefix)
            })
            .collect();
        let mut seen: Vec<Vec<[u8; ORDER_KEY_LEN]>> = vec![Vec::new(); ranges.len()];
        let narrowest = 'race: loop {
            if seen
                .iter()
                .all(|keys_seen| keys_seen.len() >= inspect_whole)
            {
                break 'race None;
            }
            for (range, keys_seen) in ranges.iter_mut().zip(seen.iter_mut()) {
                match range.next() {
                    None => break 'race Some(std::mem::take(keys_seen)),
                    Some(entry) => keys_seen.push(work.order_key_in(&entry?.0)?),
                }
            }
        };
        let Some(mut candidates) = narrowest else {
            return self.read_in_order(query, work);
        };

        if query.text_filters.len() == 1 {
            // The only filter's keys are exactly its matches: the page alone is loaded.
            candidates.sort_unstable();
            let customers = candidates
                .iter()
                .skip(query.offset)
                .take(query.limit)
                .map(|order_key| self.load(order_key, work))
                .collect::<Result<_, _>>()?;
            return Ok(Page {
                customers,
                total: Some(candidates.len()),
            });
        }
        let mut matches = Vec::new();
        for order_key in candidates {
            let customer = self.load(&order_key, work)?;
            if query.matches(&customer) {
                matches.push((order_key, customer));
            }
        }
        matches.sort_unstable_by_key(|(order_key, _)| *order_key);
        let total = Some(matches.len());
        let customers = matches
            .into_iter()
            .skip(query.offset)
            .take(query.limit)
            .map(|(_, customer)| customer)
            .collect();
        Ok(Page { customers, total })
    }

    /// Every range is large: read each filter's range in answer order, intersect them, and stop
    /// once the page is full.
    fn read_in_order(&self, query: &CustomerQuery, work: &Work) -> Result<Page, ReadModelError> {
        let streams = query
            .text_filters
            .iter()
            .map(|(field, needle)| self.matches_in_order(*field, query.account_id, needle, work))
            .collect::<Result<Vec<_>, _>>()?;
        let mut matches = Intersection { streams };
        let mut customers = Vec::with_capacity(query.limit.min(MAX_LIMIT));
        let mut to_skip = query.offset;
        while customers.len() < query.limit {
            let Some(order_key) = matches.next() else {
                break;
            };
            let order_key = order_key?;
            if to_skip > 0 {
                to_skip -= 1;
            } else {
                customers.push(self.load(&order_key, work)?);
            }
        }
        Ok(Page {
            customers,
            total: None,
        })
    }

    /// The order keys of the customers whose `field` matches `needle`, in answer order.
    fn matches_in_order<'w>(
        &self,
        field: TextField,
        account_id: Option<AccountId>,
        needle: &str,
        work: &'w Work,
    ) -> Result<OrderedKeys<'w>, ReadModelError> {
        if matches_whole_value(field) {
            let range = keys::text_range(field, account_id, needle, true);
            Ok(Box::new(
                self.text_index
                    .scan_prefix(range)
                    .map(move |entry| work.order_key_in(&entry?.0)),
            ))
        } else {
            let range = keys::text_range(field, account_id, needle, false);
            Ok(Box::new(self.merged_runs(&range, work)?))
        }
    }

    /// The keys under `prefix`, in answer order: one seek finds each distinct value's run (its
    /// keys end `0 ++ order key`, so they are in order), and the runs are merged.
    fn merged_runs<'w>(
        &self,
        prefix: &[u8],
        work: &'w Work,
    ) -> Result<MergedRuns<'w>, ReadModelError> {
        let mut runs = Vec::new();
        let mut cursor = prefix.to_vec();
        while let Some(entry) = self.text_index.range(cursor.clone()..).next() {
            work.spend(SEEK_COST)?;
            let (key, _) = entry?;
            if !key.starts_with(prefix) || key.len() <= ORDER_KEY_LEN {
                break;
            }
            // The run of this value: everything up to and including the 0 before the order key.
            let run = key[..key.len() - ORDER_KEY_LEN].to_vec();
            runs.push(self.text_index.scan_prefix(&run));
            cursor = run;
            *cursor.last_mut().expect("a run ends with its 0 separator") = 1;
        }
        MergedRuns::new(runs, work)
    }

    /// [`ReadModel::customer_at`], paid for from `work`.
    fn load(&self, index_key: &[u8], work: &Work) -> Result<Customer, ReadModelError> {
        work.spend(LOAD_COST)?;
        self.customer_at(index_key)
    }

    /// The customer whose id ends `index_key`.
    pub(super) fn customer_at(&self, index_key: &[u8]) -> Result<Customer, ReadModelError> {
        let id = keys::customer_id_of(index_key)
            .ok_or_else(|| ReadModelError::Corrupt("index key too short".into()))?;
        self.get(id)?.ok_or_else(|| {
            ReadModelError::Corrupt(format!("an index names customer {id}, which is missing"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AccountId, CustomerCreated, CustomerDetails, CustomerId, TextField};
    use chrono::DateTime;
    use proptest::prelude::*;

    /// Small pools, so filters hit, miss, tie and fold into each other often.
    const FIRST_NAMES: &[&str] = &[
        "José",
        "Jose",
        "JOSÉ",
        "Jo",
        "Joséphine",
        "Ann",
        "Anne",
        "Ὀδυσσεύς",
    ];
    const LAST_NAMES: &[&str] = &["Müller", "Muller", "Mull", "Hamilton", "Hamel", "hamilton"];
    const CITIES: &[&str] = &["New York", "Newark", "Paris", "Saint-Étienne", "Århus"];
    const STATES: &[&str] = &["NY", "ny", "CA", "75", "N"];
    const COUNTRIES: &[&str] = &["US", "FR", "DK"];
    const PHONES: &[&str] = &[
        "212-555-0101",
        "(212) 555-0199",
        "+33 1 23 45 67 89",
        "2125",
    ];
    const EMAILS: &[&str] = &["ann@example.com", "Ann.B@example.com", "jo@müller.de"];
    const ZIPS: &[&str] = &["10001", "10001-1234", "75007", "SW1A 1AA"];

    const NEEDLES: &[(&str, &[&str])] = &[
        (
            "firstName",
            &["jo", "JOSE", "josé", "a", "ann", "ὀδ", "οδυ", "x"],
        ),
        ("lastName", &["mu", "MÜL", "mull", "ham", "hamilton", "h"]),
        ("city", &["new", "new y", "SAINT-E", "ar", "å"]),
        ("state", &["ny", "NY", "CA", "75", "N"]),
        ("countryCode", &["us", "FR", "DK"]),
        ("phone", &["212", "(212) 555-01", "33", "2"]),
        ("email", &["ann", "ANN.", "jo@m"]),
        ("zipCode", &["1000", "10001-", "sw1a", "7"]),
        ("accountId", &["1", "2", "3"]),
    ];

    fn maybe(pool: &'static [&'static str]) -> impl Strategy<Value = Option<&'static str>> {
        proptest::option::of(proptest::sample::select(pool))
    }

    fn customers() -> impl Strategy<Value = Vec<Customer>> {
        let one = (
            (1i64..=3, 0i64..4, any::<[u8; 16]>()),
            (
                maybe(FIRST_NAMES),
                maybe(LAST_NAMES),
                maybe(CITIES),
                maybe(STATES),
            ),
            (maybe(COUNTRIES), maybe(PHONES), maybe(EMAILS), maybe(ZIPS)),
        )
            .prop_map(
                |(
                    (account, millis, id),
                    (first, last, city, state),
                    (country, phone, email, zip),
                )| {
                    let mut details =
                        CustomerDetails::for_account(AccountId::parse(account).unwrap());
                    let fields = [
                        (TextField::FirstName, first),
                        (TextField::LastName, last),
                        (TextField::City, city),
                        (TextField::State, state),
                        (TextField::CountryCode, country),
                        (TextField::Phone, phone),
                        (TextField::Email, email),
                        (TextField::ZipCode, zip),
                    ];
                    for (field, value) in fields {
                        if let Some(value) = value {
                            details.set_text(field, value).unwrap();
                        }
                    }
                    Customer {
                        id: CustomerId::from_bytes(id),
                        details,
                        // Few distinct times, so ties are common and the id must break them.
                        created_at: DateTime::from_timestamp_millis(1_700_000_000_000 + millis)
                            .unwrap(),
                    }
                },
            );
        proptest::collection::vec(one, 0..40)
    }

    fn queries() -> impl Strategy<Value = Vec<(String, String)>> {
        let filters = proptest::sample::subsequence(NEEDLES, 0..=3).prop_flat_map(|chosen| {
            chosen
                .into_iter()
                .map(|(name, values)| {
                    proptest::sample::select(values)
                        .prop_map(move |value| (name.to_string(), value.to_string()))
                })
                .collect::<Vec<_>>()
        });
        (filters, 0usize..6, 1usize..6).prop_map(|(mut pairs, offset, limit)| {
            pairs.push(("offset".into(), offset.to_string()));
            pairs.push(("limit".into(), limit.to_string()));
            pairs
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// The indexed find answers exactly what a naive filter over every customer answers, in
        /// the same order, with the same total.
        #[test]
        fn indexed_find_equals_a_naive_filter(
            customers in customers(),
            pairs in queries(),
            budget in 0usize..200,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let model = ReadModel::open(dir.path()).unwrap();
            for (offset, customer) in customers.iter().enumerate() {
                let event = CustomerCreated::new(customer.clone());
                model.apply_customer_created(&event, 0, offset as i64).unwrap();
            }
            let query = CustomerQuery::parse(&pairs).unwrap();

            let mut applied: Vec<&Customer> = Vec::new();
            for customer in &customers {
                if !applied.iter().any(|seen| seen.id == customer.id) {
                    applied.push(customer);
                }
            }
            let mut naive: Vec<&Customer> = applied.into_iter().filter(|c| query.matches(c)).collect();
            naive.sort_by_key(|c| keys::order_key(c));
            let expected: Vec<Customer> = naive
                .iter()
                .skip(query.offset)
                .take(query.limit)
                .map(|c| (*c).clone())
                .collect();

            let page = model.find(&query).unwrap();
            prop_assert_eq!(&page.customers, &expected);
            prop_assert_eq!(page.total, Some(naive.len()));
            // The same query read in order (as when every range is large) answers the same page.
            let in_order = model
                .find_inspecting(&query, 0, &Work::limited_to(usize::MAX))
                .unwrap();
            prop_assert_eq!(&in_order.customers, &expected);
            prop_assert!(in_order.total.is_none() || in_order.total == Some(naive.len()));
            // With a bound on its work, a find answers the same page or says it needs more.
            match model.find_inspecting(&query, INSPECT_WHOLE, &Work::limited_to(budget)) {
                Ok(bounded) => prop_assert_eq!(&bounded, &page),
                Err(ReadModelError::OverBudget) => {}
                Err(other) => prop_assert!(false, "unexpected error {}", other),
            }
            prop_assert_eq!(model.find_inline(&query).unwrap(), Some(page));
        }
    }
}
