//! How `find` picks its index, so a query costs what it returns and inspects, never the
//! registry's size.
//!
//! - **No text filter**: walk `by_account` (with `accountId`) or `by_created` (without), which
//!   already hold customers in answer order (`createdAt`, then `id`); skip `offset`, read `limit`,
//!   stop. The total comes from the `counts` tree, maintained with every apply.
//! - **Text filters**: each filter names a range of `text_index`, scoped to the account when
//!   `accountId` is given (merchants query within their account, so their ranges hold only their
//!   customers). The ranges are read in lock-step, one key from each in turn, until one runs out:
//!   that one is the narrowest, found at a cost of at most (filters × its size). Its customers are
//!   loaded, checked against every filter, sorted into answer order and paged; the number that
//!   matched is the total.
//!
//! Pages are stable under `offset`: the answer order is fixed per customer, customers are only
//! ever added, and a new customer sorts after the existing ones (its `createdAt` is later) unless
//! the clock of the replica that created it ran behind.

use super::keys::{self, ORDER_KEY_LEN};
use super::query::CustomerQuery;
use super::search::matches_whole_value;
use super::{ReadModel, ReadModelError};
use crate::domain::Customer;

/// One page of a `find`, and how many customers match in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The customers of the page, in answer order.
    pub customers: Vec<Customer>,
    /// Every customer the query matches, over all pages.
    pub total: usize,
}

impl ReadModel {
    /// The page of customers that `query` selects, in `createdAt`, `id` order.
    ///
    /// # Errors
    /// [`ReadModelError`] when sled fails or an index points at a missing customer.
    pub fn find(&self, query: &CustomerQuery) -> Result<Page, ReadModelError> {
        if query.text_filters.is_empty() {
            self.walk_in_order(query)
        } else {
            self.narrowest_range(query)
        }
    }

    fn walk_in_order(&self, query: &CustomerQuery) -> Result<Page, ReadModelError> {
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
                total,
            });
        }
        let mut customers = Vec::with_capacity(query.limit.min(total));
        for entry in walk.skip(query.offset).take(query.limit) {
            let (key, _) = entry?;
            customers.push(self.customer_at(&key)?);
        }
        Ok(Page { customers, total })
    }

    fn narrowest_range(&self, query: &CustomerQuery) -> Result<Page, ReadModelError> {
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
        let candidates = 'race: loop {
            for (range, keys_seen) in ranges.iter_mut().zip(seen.iter_mut()) {
                match range.next() {
                    None => break 'race std::mem::take(keys_seen),
                    Some(entry) => keys_seen.push(order_key_in(&entry?.0)?),
                }
            }
        };

        let mut matches = Vec::new();
        for order_key in candidates {
            let customer = self.customer_at(&order_key)?;
            if query.matches(&customer) {
                matches.push((order_key, customer));
            }
        }
        matches.sort_unstable_by_key(|(order_key, _)| *order_key);
        let total = matches.len();
        let customers = matches
            .into_iter()
            .skip(query.offset)
            .take(query.limit)
            .map(|(_, customer)| customer)
            .collect();
        Ok(Page { customers, total })
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

fn order_key_in(index_key: &[u8]) -> Result<[u8; ORDER_KEY_LEN], ReadModelError> {
    keys::order_key_of(index_key)
        .ok_or_else(|| ReadModelError::Corrupt("index key too short".into()))
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
        fn indexed_find_equals_a_naive_filter(customers in customers(), pairs in queries()) {
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
            prop_assert_eq!(page.customers, expected);
            prop_assert_eq!(page.total, naive.len());
        }
    }
}
