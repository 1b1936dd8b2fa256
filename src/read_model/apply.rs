//! The only writes to the read model: applying a batch of records (events, or the rejection of
//! records that are not events this build applies).
//!
//! A batch is written in two steps:
//! 1. the data, key by key: histories first, then customers (so no index key ever names a
//!    customer not yet stored), then the indexes and rejections, on two threads. Every write puts
//!    a value that depends only on the record, so writing it again changes nothing;
//! 2. the progress tree, in one atomic `sled::Tree::apply_batch`: which events are applied, the
//!    counts, and each partition's next offset.
//!
//! A crash during or after step 1 leaves data for records the progress does not yet cover. They
//! are read again on restart, and a customer found stored exactly as its not-yet-recorded event
//! creates it, with the history entry of that very record, is recognised as the record's own
//! interrupted apply: completed (every key written again), not taken for a conflict. Nothing is ever applied twice, and the offsets never pass a
//! record whose changes are missing.
//!
//! Step 1 does not use `apply_batch`: it holds a lock across the whole process that lets no other
//! tree be written meanwhile, and the data needs no atomicity.

use super::keys;
use super::rejected::{rejected_key, RejectedEvent, RejectionKind};
use super::search::search_form;
use super::{decode_customer, ReadModel, ReadModelError};
use crate::domain::{Customer, CustomerCreated, CustomerId, TextField};
use chrono::Utc;
use std::collections::BTreeMap;
use std::collections::{HashMap, HashSet};

/// What one record of the log asks of the read model.
#[derive(Debug, Clone)]
pub enum RecordChange {
    /// Apply this event.
    Created(Box<CustomerCreated>),
    /// Record that the record could not be applied, and why.
    Rejected {
        /// The kind of failure.
        kind: RejectionKind,
        /// The details, in words.
        reason: String,
    },
}

/// A record's change, with where it is in the log.
#[derive(Debug, Clone)]
pub struct LogRecord {
    /// The record's partition.
    pub partition: i32,
    /// The record's offset.
    pub offset: i64,
    /// What it asks.
    pub change: RecordChange,
}

/// What applying a record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The customer is new and now in the read model.
    Applied,
    /// This event was applied before (a producer retry, a replayed range, a racing idempotent
    /// create): nothing changed but the customer's history.
    Duplicate,
    /// Another event already created a customer with this id: this one was kept out and recorded
    /// in `rejected_events`.
    Conflict,
    /// The record was recorded in `rejected_events` (or had been already).
    Rejected,
}

/// Everything one record writes.
struct Prepared<'a> {
    record: &'a LogRecord,
    writes: PreparedWrites<'a>,
}

enum PreparedWrites<'a> {
    Created {
        created: &'a CustomerCreated,
        event_key: [u8; 16],
        id_key: [u8; 16],
        json: Vec<u8>,
        order_key: [u8; keys::ORDER_KEY_LEN],
        account_key: Vec<u8>,
        account_count_key: [u8; 4],
        text_keys: Vec<Vec<u8>>,
        history_key: [u8; 28],
        conflict: Vec<u8>,
    },
    Rejected {
        rejection: Vec<u8>,
    },
}

/// The writes of a batch, tree by tree.
#[derive(Default)]
struct BatchWrites {
    customers: TreeWrites,
    by_created: TreeWrites,
    by_account: TreeWrites,
    text_index: TreeWrites,
    customer_events: TreeWrites,
    rejected_events: TreeWrites,
    progress: sled::Batch,
}

/// One data tree's writes, in key order (the last write of a key wins).
#[derive(Default)]
struct TreeWrites(BTreeMap<Vec<u8>, Vec<u8>>);

impl TreeWrites {
    fn insert(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.0
            .insert(key.as_ref().to_vec(), value.as_ref().to_vec());
    }

    /// The writes split in two at the middle key.
    fn halves(mut self) -> (Self, Self) {
        let middle = self.0.keys().nth(self.0.len() / 2).cloned();
        let high = middle.map_or_else(BTreeMap::new, |key| self.0.split_off(&key));
        (self, Self(high))
    }

    /// Writes every key, one by one (see the module doc for why not `apply_batch`).
    fn write_to(self, tree: &sled::Tree) -> Result<(), sled::Error> {
        for (key, value) in self.0 {
            tree.insert(key, value)?;
        }
        Ok(())
    }
}

impl ReadModel {
    /// Applies `records`, then records them (applied events, counts, each partition's next offset)
    /// in one atomic step; see the module doc for why a crash in between loses and doubles nothing.
    /// Idempotent by event id; counts and offsets are written once per batch.
    ///
    /// # Errors
    /// [`ReadModelError`] when sled fails or a stored customer cannot be read.
    pub fn apply_batch(&self, records: &[LogRecord]) -> Result<Vec<ApplyOutcome>, ReadModelError> {
        let prepared: Vec<Prepared<'_>> = records.iter().map(prepare).collect();
        let mut writes = BatchWrites::default();
        let mut outcomes = Vec::with_capacity(prepared.len());
        // What this batch has applied so far, which the trees do not show yet.
        let mut events_applied: HashSet<[u8; 16]> = HashSet::new();
        let mut customers_applied: HashMap<[u8; 16], &Customer> = HashMap::new();
        let mut added: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        let mut next_offsets: BTreeMap<i32, i64> = BTreeMap::new();
        for Prepared {
            record,
            writes: prepared_writes,
        } in &prepared
        {
            let outcome = match prepared_writes {
                PreparedWrites::Created {
                    created,
                    event_key,
                    id_key,
                    json,
                    order_key,
                    account_key,
                    account_count_key,
                    text_keys,
                    history_key,
                    conflict,
                } => {
                    let event_known = events_applied.contains(event_key)
                        || self.progress.get(keys::applied_key(event_key))?.is_some();
                    let stored = match customers_applied.get(id_key) {
                        Some(customer) => Some((*customer).clone()),
                        None => self
                            .customers
                            .get(id_key)?
                            .map(|bytes| decode_customer(&bytes))
                            .transpose()?,
                    };
                    let new = &created.customer;
                    let outcome = match (event_known, stored) {
                        // The same event again (a retry, a racing replica): same customer, same
                        // details; its createdAt may differ.
                        (true, Some(stored)) if stored.details == new.details => {
                            ApplyOutcome::Duplicate
                        }
                        (true, _) => ApplyOutcome::Conflict,
                        // Stored exactly as this event creates it, and from this very record
                        // (its history entry is written before the customer): its own
                        // interrupted apply. Another record carrying the same customer is not.
                        (false, Some(stored))
                            if stored == *new
                                && self.customer_events.contains_key(history_key)? =>
                        {
                            ApplyOutcome::Applied
                        }
                        (false, Some(_)) => ApplyOutcome::Conflict,
                        (false, None) => ApplyOutcome::Applied,
                    };
                    match outcome {
                        ApplyOutcome::Applied => {
                            writes.customers.insert(id_key, json.as_slice());
                            writes.by_created.insert(order_key, []);
                            writes.by_account.insert(account_key.as_slice(), []);
                            for key in text_keys {
                                writes.text_index.insert(key.as_slice(), []);
                            }
                            writes.customer_events.insert(history_key, []);
                            writes
                                .progress
                                .insert(&keys::applied_key(event_key), id_key);
                            *added.entry(keys::COUNT_ALL.to_vec()).or_default() += 1;
                            *added.entry(account_count_key.to_vec()).or_default() += 1;
                            events_applied.insert(*event_key);
                            customers_applied.insert(*id_key, new);
                        }
                        ApplyOutcome::Duplicate => writes.customer_events.insert(history_key, []),
                        _ => writes.rejected_events.insert(
                            rejected_key(record.partition, record.offset),
                            conflict.as_slice(),
                        ),
                    }
                    outcome
                }
                PreparedWrites::Rejected { rejection } => {
                    let key = rejected_key(record.partition, record.offset);
                    if self.rejected_events.get(key)?.is_none() {
                        writes.rejected_events.insert(key, rejection.as_slice());
                    }
                    ApplyOutcome::Rejected
                }
            };
            outcomes.push(outcome);
            let next = next_offsets.entry(record.partition).or_insert(0);
            *next = (*next).max(record.offset + 1);
        }
        for (count_key, more) in &added {
            let count = self.count(count_key)? as u64;
            writes.progress.insert(
                keys::progress_count_key(count_key),
                &(count + more).to_be_bytes(),
            );
        }
        for (partition, next) in &next_offsets {
            writes
                .progress
                .insert(&keys::offset_key(*partition), &next.to_be_bytes());
        }
        let BatchWrites {
            customers,
            by_created,
            by_account,
            text_index,
            customer_events,
            rejected_events,
            progress,
        } = writes;
        // Histories before customers, so a stored customer's record is always recognisable on
        // replay; customers before any index key that names them, so a find never follows a key
        // to a customer not yet stored.
        customer_events.write_to(&self.customer_events)?;
        customers.write_to(&self.customers)?;
        // The text index holds most of a customer's keys: half of them are written on a thread
        // of its own while this one writes the rest and the other trees.
        let (text_low, text_high) = text_index.halves();
        std::thread::scope(|scope| {
            let text = scope.spawn(|| text_high.write_to(&self.text_index));
            let others = text_low
                .write_to(&self.text_index)
                .and_then(|()| by_created.write_to(&self.by_created))
                .and_then(|()| by_account.write_to(&self.by_account))
                .and_then(|()| rejected_events.write_to(&self.rejected_events));
            let text = text.join().expect("writing the text index does not panic");
            others.and(text)
        })?;
        // Last, and atomically: what the batch applied, and how far the log is covered.
        self.progress.apply_batch(progress)?;
        Ok(outcomes)
    }

    /// Applies `created`, read at `partition`/`offset`: [`ReadModel::apply_batch`] of one. For
    /// tests; the projector and the tools always apply batches.
    ///
    /// # Errors
    /// [`ReadModelError`] when sled fails.
    #[cfg(test)]
    pub(crate) fn apply_customer_created(
        &self,
        created: &CustomerCreated,
        partition: i32,
        offset: i64,
    ) -> Result<ApplyOutcome, ReadModelError> {
        let record = LogRecord {
            partition,
            offset,
            change: RecordChange::Created(Box::new(created.clone())),
        };
        Ok(self.apply_batch(&[record])?[0])
    }

    /// For tests: records that the record at `partition`/`offset` was rejected and moves past it:
    /// [`ReadModel::apply_batch`] of one. Recording the same record again changes nothing.
    ///
    /// # Errors
    /// [`ReadModelError`] when sled fails.
    #[cfg(test)]
    pub(crate) fn reject_record(
        &self,
        partition: i32,
        offset: i64,
        kind: RejectionKind,
        reason: &str,
    ) -> Result<(), ReadModelError> {
        let change = RecordChange::Rejected {
            kind,
            reason: reason.to_owned(),
        };
        self.apply_batch(&[LogRecord {
            partition,
            offset,
            change,
        }])?;
        Ok(())
    }

    /// Where the records that built customer `id` are in the log (partition, offset), in the
    /// order they were applied per partition; empty for an unknown customer.
    ///
    /// # Errors
    /// [`ReadModelError`] when sled fails or an entry is malformed.
    pub fn history_of(&self, id: CustomerId) -> Result<Vec<(i32, i64)>, ReadModelError> {
        self.customer_events
            .scan_prefix(id.as_bytes())
            .map(|entry| {
                let (key, _) = entry?;
                keys::history_position(&key)
                    .ok_or_else(|| ReadModelError::Corrupt("a history key is malformed".into()))
            })
            .collect()
    }

    /// Every rejected record, by partition then offset.
    ///
    /// # Errors
    /// [`ReadModelError`] when sled fails or an entry cannot be read.
    pub fn rejected_events(&self) -> Result<Vec<RejectedEvent>, ReadModelError> {
        self.rejected_events
            .iter()
            .map(|entry| {
                let (_, value) = entry?;
                serde_json::from_slice(&value).map_err(|error| {
                    ReadModelError::Corrupt(format!("a rejected event is unreadable: {error}"))
                })
            })
            .collect()
    }
}

fn prepare(record: &LogRecord) -> Prepared<'_> {
    let rejected_at = Utc::now();
    let writes = match &record.change {
        RecordChange::Created(created) => {
            let customer = &created.customer;
            let conflict = RejectedEvent {
                partition: record.partition,
                offset: record.offset,
                kind: RejectionKind::Conflict,
                reason: format!(
                    "event {} creates customer {}, which exists already from another event or \
                     with other details",
                    created.event_id, customer.id
                ),
                rejected_at,
            };
            PreparedWrites::Created {
                created: created.as_ref(),
                event_key: *created.event_id.as_bytes(),
                id_key: *customer.id.as_bytes(),
                json: serde_json::to_vec(customer).expect("a customer always serialises"),
                order_key: keys::order_key(customer),
                account_key: keys::account_key(customer),
                account_count_key: keys::account_prefix(customer.details.account_id),
                text_keys: text_index_keys(customer),
                history_key: keys::history_key(customer.id, record.partition, record.offset),
                conflict: serde_json::to_vec(&conflict).expect("a rejection always serialises"),
            }
        }
        RecordChange::Rejected { kind, reason } => {
            let rejection = RejectedEvent {
                partition: record.partition,
                offset: record.offset,
                kind: *kind,
                reason: reason.clone(),
                rejected_at,
            };
            PreparedWrites::Rejected {
                rejection: serde_json::to_vec(&rejection).expect("a rejection always serialises"),
            }
        }
    };
    Prepared { record, writes }
}

/// Every `text_index` key of `customer`: each present text field, in both scopes.
fn text_index_keys(customer: &Customer) -> Vec<Vec<u8>> {
    let account_id = customer.details.account_id;
    TextField::ALL
        .into_iter()
        .filter_map(|field| {
            let value = customer.details.text(field)?;
            Some((field, search_form(field, value)))
        })
        .flat_map(|(field, form)| {
            [None, Some(account_id)].map(|scope| keys::text_key(field, scope, &form, customer))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AccountId, CustomerDetails};
    use crate::read_model::CustomerQuery;
    use std::collections::BTreeMap;

    fn created(last_name: &str) -> CustomerCreated {
        let mut details = CustomerDetails::for_account(AccountId::parse(1).unwrap());
        details.set_text(TextField::LastName, last_name).unwrap();
        CustomerCreated::new(Customer::register(details))
    }

    #[test]
    fn an_event_applied_twice_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let model = ReadModel::open(dir.path()).unwrap();
        let event = created("Hamilton");
        assert_eq!(
            model.apply_customer_created(&event, 0, 0).unwrap(),
            ApplyOutcome::Applied
        );
        let mut retried = event.clone();
        retried.customer.created_at += chrono::Duration::milliseconds(5);
        assert_eq!(
            model.apply_customer_created(&retried, 0, 1).unwrap(),
            ApplyOutcome::Duplicate
        );
        assert_eq!(
            model.get(event.customer.id).unwrap(),
            Some(event.customer.clone())
        );
        assert_eq!(
            model.find(&CustomerQuery::default()).unwrap().total,
            Some(1)
        );
        assert!(model.rejected_events().unwrap().is_empty());
        assert_eq!(model.next_offsets().unwrap(), BTreeMap::from([(0, 2)]));
        assert_eq!(
            model.history_of(event.customer.id).unwrap(),
            vec![(0, 0), (0, 1)]
        );
    }

    #[test]
    fn another_event_for_an_existing_customer_is_a_recorded_conflict() {
        let dir = tempfile::tempdir().unwrap();
        let model = ReadModel::open(dir.path()).unwrap();
        let first = created("Hamilton");
        model.apply_customer_created(&first, 0, 0).unwrap();
        let mut rival = created("Other");
        rival.customer.id = first.customer.id;
        assert_eq!(
            model.apply_customer_created(&rival, 1, 7).unwrap(),
            ApplyOutcome::Conflict
        );
        assert_eq!(model.get(first.customer.id).unwrap(), Some(first.customer));
        let rejected = model.rejected_events().unwrap();
        assert_eq!(rejected.len(), 1);
        assert_eq!((rejected[0].partition, rejected[0].offset), (1, 7));
        assert_eq!(rejected[0].kind, RejectionKind::Conflict);
        assert_eq!(
            model.next_offsets().unwrap(),
            BTreeMap::from([(0, 1), (1, 8)])
        );
    }

    #[test]
    fn a_batch_interrupted_before_its_progress_is_completed_not_doubled() {
        let dir = tempfile::tempdir().unwrap();
        let model = ReadModel::open(dir.path()).unwrap();
        let event = created("Interrupted");
        let record = LogRecord {
            partition: 0,
            offset: 0,
            change: RecordChange::Created(Box::new(event.clone())),
        };
        model.apply_batch(std::slice::from_ref(&record)).unwrap();
        // A crash after step 1: the data is there, the progress is not.
        model.progress.clear().unwrap();
        assert_eq!(model.next_offsets().unwrap(), BTreeMap::new());

        assert_eq!(
            model.apply_batch(&[record]).unwrap(),
            vec![ApplyOutcome::Applied]
        );
        assert_eq!(
            model.find(&CustomerQuery::default()).unwrap().total,
            Some(1)
        );
        assert!(
            model.rejected_events().unwrap().is_empty(),
            "not taken for a conflict"
        );
        assert_eq!(model.next_offsets().unwrap(), BTreeMap::from([(0, 1)]));
        assert_eq!(
            model.apply_customer_created(&event, 0, 1).unwrap(),
            ApplyOutcome::Duplicate
        );
    }

    #[test]
    fn another_event_carrying_an_identical_customer_is_not_counted_again() {
        let dir = tempfile::tempdir().unwrap();
        let model = ReadModel::open(dir.path()).unwrap();
        let first = created("Twin");
        model.apply_customer_created(&first, 0, 0).unwrap();
        // Same customer, byte for byte, under another event id at another offset.
        let twin = CustomerCreated::new(first.customer.clone());
        assert_ne!(twin.event_id, first.event_id);
        assert_eq!(
            model.apply_customer_created(&twin, 0, 1).unwrap(),
            ApplyOutcome::Conflict
        );
        assert_eq!(
            model.find(&CustomerQuery::default()).unwrap().total,
            Some(1)
        );
        assert_eq!(model.rejected_events().unwrap()[0].offset, 1);
    }

    #[test]
    fn a_known_event_id_with_other_details_is_a_conflict() {
        let dir = tempfile::tempdir().unwrap();
        let model = ReadModel::open(dir.path()).unwrap();
        let first = created("Hamilton");
        model.apply_customer_created(&first, 0, 0).unwrap();
        let mut altered = first.clone();
        altered
            .customer
            .details
            .set_text(TextField::LastName, "Burr")
            .unwrap();
        assert_eq!(
            model.apply_customer_created(&altered, 0, 1).unwrap(),
            ApplyOutcome::Conflict
        );
        assert_eq!(model.get(first.customer.id).unwrap(), Some(first.customer));
        assert_eq!(model.rejected_events().unwrap()[0].offset, 1);
    }

    #[test]
    fn rejected_records_are_listed_once_and_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let model = ReadModel::open(dir.path()).unwrap();
        model
            .reject_record(2, 5, RejectionKind::Malformed, "not JSON")
            .unwrap();
        model
            .reject_record(2, 5, RejectionKind::Malformed, "not JSON")
            .unwrap();
        model
            .reject_record(0, 9, RejectionKind::UnknownType, "CustomerDeleted")
            .unwrap();
        let rejected = model.rejected_events().unwrap();
        let places: Vec<(i32, i64)> = rejected.iter().map(|r| (r.partition, r.offset)).collect();
        assert_eq!(places, vec![(0, 9), (2, 5)]);
        assert_eq!(
            model.next_offsets().unwrap(),
            BTreeMap::from([(0, 10), (2, 6)])
        );
    }
}
