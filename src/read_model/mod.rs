//! The read model: a sled database that only the projector writes, holding every customer, the
//! indexes `find` reads, and the next offset of every partition applied.
//!
//! Trees:
//! - `customers`: customer id (16 bytes) → the customer's JSON.
//! - `by_created`: the order key (`keys::order_key`) → nothing; every customer in `createdAt`, `id` order.
//! - `by_account`: account id (4 bytes) ++ order key → nothing; one account's customers in order.
//! - `text_index`: field ++ scope (whole registry, or one account) ++ the value's search form ++ 0
//!   ++ order key → nothing; every text field of every customer, twice (once per scope).
//! - `progress`, written last and atomically for each batch: `e` ++ event id → customer id (what
//!   makes applying idempotent), `c` ++ `all` or an account id → number of customers, and
//!   `o` ++ partition → next offset to apply. See `apply.rs` for why this order is crash-safe.
//! - `customer_events`: customer id ++ partition ++ offset → nothing; where each customer's records
//!   are in the log (their payloads stay in Kafka, read back for a customer's history).
//! - `rejected_events`: partition (4 bytes) ++ offset (8 bytes) → a [`RejectedEvent`] as JSON:
//!   records that could not be applied (unreadable, unknown type, newer version, conflict).
//! - `meta`: `topic` and `cluster` → which log this read model projects; a read model is never
//!   pointed at another log, whose offsets would mean something else. `format` → the layout of
//!   the trees and values ([`FORMAT`]).
//!
//! How `find` uses them is in `planner.rs`.

mod apply;
pub mod keys;
mod planner;
mod query;
mod rejected;
pub mod search;

pub use apply::{ApplyOutcome, LogRecord, RecordChange};
pub use planner::{Page, INLINE_WORK};
pub use query::{CustomerQuery, DEFAULT_LIMIT, MAX_LIMIT};
pub use rejected::{RejectedEvent, RejectionKind};

use crate::domain::{Customer, CustomerId};
use sled::transaction::TransactionError;
use std::collections::BTreeMap;
use std::path::Path;

/// What went wrong in the read model.
#[derive(Debug, thiserror::Error)]
pub enum ReadModelError {
    /// sled failed (I/O, or the directory is locked by another process).
    #[error("read model storage failed: {0}")]
    Storage(#[from] sled::Error),
    /// Stored bytes that this build cannot read back.
    #[error("read model is corrupt: {0}")]
    Corrupt(String),
    /// Another process has the read model open.
    #[error("{0} is in use by another customer-registry process (its lock is held)")]
    Locked(String),
    /// A find given a bound on its work ([`ReadModel::find_inline`]) needed more; never returned
    /// by the finds that have no bound.
    #[error("the find needs more work than it was allowed")]
    OverBudget,
    /// The read model was written by a build whose stored layout this one does not read.
    #[error(
        "the read model was written by an older build (format {found}; this build reads format \
         {FORMAT}): run `customer-registry rebuild` to project it again from the log"
    )]
    OldFormat {
        /// The format found (`1` when unrecorded: builds before formats were recorded).
        found: String,
    },
    /// The data dir holds the projection of another log.
    #[error(
        "the read model projects {setting} {stored:?}, not {wanted:?}: its offsets belong to that \
         log. Use another --data-dir, or delete this one to rebuild it from the new log"
    )]
    OtherLog {
        /// `topic` or `cluster`.
        setting: &'static str,
        /// What the read model was built from.
        stored: String,
        /// What it was asked to follow now.
        wanted: String,
    },
}

impl From<TransactionError<ReadModelError>> for ReadModelError {
    fn from(error: TransactionError<ReadModelError>) -> Self {
        match error {
            TransactionError::Abort(inner) => inner,
            TransactionError::Storage(storage) => ReadModelError::Storage(storage),
        }
    }
}

/// The layout of the stored trees and values. Format 2: customers are stored only as checked
/// (state upper-case) and read back without checking again (`Customer::from_trusted_json`), so a
/// read model of an earlier build must be rebuilt rather than served.
pub const FORMAT: &str = "2";

/// Handle to the read model; cheap to clone, shared by the projector and the HTTP handlers.
#[derive(Clone)]
pub struct ReadModel {
    db: sled::Db,
    customers: sled::Tree,
    by_created: sled::Tree,
    by_account: sled::Tree,
    text_index: sled::Tree,

    customer_events: sled::Tree,
    rejected_events: sled::Tree,
    meta: sled::Tree,
    progress: sled::Tree,
}

impl ReadModel {
    /// Opens (or creates) the read model in `dir`.
    ///
    /// # Errors
    /// [`ReadModelError::Storage`] when the directory cannot be used, e.g. another process holds it.
    pub fn open(dir: &Path) -> Result<Self, ReadModelError> {
        let db = sled::Config::new()
            .path(dir)
            .open()
            .map_err(|error| match error {
                // sled reports a held lock only in its message ("could not acquire lock on ...").
                sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
                    ReadModelError::Locked(dir.display().to_string())
                }
                other => ReadModelError::Storage(other),
            })?;
        let model = Self {
            customers: db.open_tree("customers")?,
            by_created: db.open_tree("by_created")?,
            by_account: db.open_tree("by_account")?,
            text_index: db.open_tree("text_index")?,

            customer_events: db.open_tree("customer_events")?,
            rejected_events: db.open_tree("rejected_events")?,
            meta: db.open_tree("meta")?,
            progress: db.open_tree("progress")?,
            db,
        };
        // A new read model is written in this build's format from its first byte.
        if model.meta.is_empty() && model.progress.is_empty() && model.customers.is_empty() {
            model.meta.insert("format", FORMAT)?;
        }
        Ok(model)
    }

    /// The topic and cluster this read model projects, once it has been bound to a log.
    ///
    /// # Errors
    /// [`ReadModelError::Storage`] when sled fails.
    pub fn bound_log(&self) -> Result<Option<(String, String)>, ReadModelError> {
        let read = |setting: &str| -> Result<Option<String>, ReadModelError> {
            Ok(self
                .meta
                .get(setting)?
                .map(|value| String::from_utf8_lossy(&value).into_owned()))
        };
        Ok(read("topic")?.zip(read("cluster")?))
    }

    /// Every customer's stored bytes, in id order: what an audit digests, even when they no longer
    /// parse.
    pub fn stored_customers(
        &self,
    ) -> impl Iterator<Item = Result<(CustomerId, Vec<u8>), ReadModelError>> + '_ {
        self.customers.iter().map(|entry| {
            let (key, value) = entry?;
            let id = keys::customer_id_of(&key)
                .ok_or_else(|| ReadModelError::Corrupt("a customer key is not 16 bytes".into()))?;
            Ok((id, value.to_vec()))
        })
    }

    /// Ties the read model to the log it projects: records `topic` and `cluster` on first use,
    /// and refuses any other afterwards, or a read model stored in an older format.
    ///
    /// # Errors
    /// [`ReadModelError::OtherLog`] when the read model was built from another topic or cluster,
    /// [`ReadModelError::OldFormat`] when an older build wrote it.
    pub fn bind_to_log(&self, topic: &str, cluster: &str) -> Result<(), ReadModelError> {
        match self.meta.get("format")? {
            Some(format) if format.as_ref() == FORMAT.as_bytes() => {}
            found => {
                return Err(ReadModelError::OldFormat {
                    found: found.map_or_else(
                        || "1".to_owned(),
                        |format| String::from_utf8_lossy(&format).into_owned(),
                    ),
                })
            }
        }
        for (setting, wanted) in [("topic", topic), ("cluster", cluster)] {
            match self.meta.get(setting)? {
                Some(stored) if stored.as_ref() != wanted.as_bytes() => {
                    return Err(ReadModelError::OtherLog {
                        setting,
                        stored: String::from_utf8_lossy(&stored).into_owned(),
                        wanted: wanted.to_owned(),
                    })
                }
                Some(_) => {}
                None => {
                    self.meta.insert(setting, wanted.as_bytes())?;
                }
            }
        }
        Ok(())
    }

    /// The next offset to apply, per partition that has had a record applied or skipped.
    ///
    /// # Errors
    /// [`ReadModelError`] when sled fails or an entry is malformed.
    pub fn next_offsets(&self) -> Result<BTreeMap<i32, i64>, ReadModelError> {
        self.progress
            .scan_prefix(keys::OFFSET_PREFIX)
            .map(|entry| {
                let (key, value) = entry?;
                let partition = key[keys::OFFSET_PREFIX.len()..]
                    .try_into()
                    .map(i32::from_be_bytes)
                    .map_err(|_| ReadModelError::Corrupt("offsets key is not 4 bytes".into()))?;
                let offset = value
                    .as_ref()
                    .try_into()
                    .map(i64::from_be_bytes)
                    .map_err(|_| ReadModelError::Corrupt("offsets value is not 8 bytes".into()))?;
                Ok((partition, offset))
            })
            .collect()
    }

    /// The customer with `id`, if the projection has it.
    ///
    /// # Errors
    /// [`ReadModelError`] when sled fails or the stored customer cannot be read.
    pub fn get(&self, id: CustomerId) -> Result<Option<Customer>, ReadModelError> {
        self.customers
            .get(id.as_bytes())?
            .map(|bytes| decode_customer(&bytes))
            .transpose()
    }

    /// Every customer, in answer order (`createdAt`, then `id`).
    pub fn customers_in_order(
        &self,
    ) -> impl Iterator<Item = Result<Customer, ReadModelError>> + '_ {
        self.by_created
            .iter()
            .map(|entry| self.customer_at(&entry?.0))
    }

    /// The number of customers counted under `key` ([`keys::COUNT_ALL`] or an account id; 0
    /// when absent).
    pub(super) fn count(&self, key: &[u8]) -> Result<usize, ReadModelError> {
        let count = self
            .progress
            .get(keys::progress_count_key(key))?
            .map_or(Ok(0), |bytes| decode_count(&bytes))?;
        usize::try_from(count).map_err(|_| ReadModelError::Corrupt("count exceeds memory".into()))
    }

    /// Writes everything applied so far to disk, blocking the calling thread.
    ///
    /// # Errors
    /// [`ReadModelError::Storage`] when sled cannot flush.
    pub fn flush_blocking(&self) -> Result<(), ReadModelError> {
        self.db.flush()?;
        Ok(())
    }

    /// Writes everything applied so far to disk.
    ///
    /// # Errors
    /// [`ReadModelError::Storage`] when sled cannot flush.
    pub async fn flush(&self) -> Result<(), ReadModelError> {
        self.db.flush_async().await?;
        Ok(())
    }
}

fn decode_count(bytes: &[u8]) -> Result<u64, ReadModelError> {
    bytes
        .try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| ReadModelError::Corrupt("a count is not 8 bytes".into()))
}

pub(super) fn decode_customer(bytes: &[u8]) -> Result<Customer, ReadModelError> {
    Customer::from_trusted_json(bytes)
        .map_err(|error| ReadModelError::Corrupt(format!("stored customer unreadable: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AccountId, CustomerCreated, CustomerDetails, TextField};

    fn customer(account: i64, last_name: &str) -> Customer {
        let mut details = CustomerDetails::for_account(AccountId::parse(account).unwrap());
        details.set_text(TextField::LastName, last_name).unwrap();
        Customer::register(details)
    }

    fn query(pairs: &[(&str, &str)]) -> CustomerQuery {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        CustomerQuery::parse(&pairs).unwrap()
    }

    #[test]
    fn find_walks_the_account_index_in_creation_order_and_pages() {
        let dir = tempfile::tempdir().unwrap();
        let model = ReadModel::open(dir.path()).unwrap();
        let created: Vec<Customer> = (0..6)
            .map(|n| customer(if n % 2 == 0 { 10 } else { 20 }, &format!("Name{n}")))
            .collect();
        for (offset, customer) in created.iter().enumerate() {
            model
                .apply_customer_created(&CustomerCreated::new(customer.clone()), 0, offset as i64)
                .unwrap();
        }
        let account_10: Vec<CustomerId> = model
            .find(&query(&[("accountId", "10")]))
            .unwrap()
            .customers
            .iter()
            .map(|customer| customer.id)
            .collect();
        assert_eq!(
            account_10,
            vec![created[0].id, created[2].id, created[4].id]
        );
        let page = model
            .find(&query(&[("offset", "1"), ("limit", "2")]))
            .unwrap();
        assert_eq!(page.customers, created[1..3].to_vec());
        assert_eq!(page.total, Some(6));
    }

    #[test]
    fn a_read_model_follows_one_log_only() {
        let dir = tempfile::tempdir().unwrap();
        let model = ReadModel::open(dir.path()).unwrap();
        model.bind_to_log("customers.events", "cluster-a").unwrap();
        model.bind_to_log("customers.events", "cluster-a").unwrap();
        let other_topic = model.bind_to_log("other.events", "cluster-a");
        assert!(matches!(
            other_topic,
            Err(ReadModelError::OtherLog {
                setting: "topic",
                ..
            })
        ));
        let other_cluster = model.bind_to_log("customers.events", "cluster-b");
        assert!(matches!(
            other_cluster,
            Err(ReadModelError::OtherLog {
                setting: "cluster",
                ..
            })
        ));
    }

    #[test]
    fn a_read_model_of_an_older_format_is_refused_until_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        {
            let model = ReadModel::open(dir.path()).unwrap();
            model
                .apply_customer_created(&CustomerCreated::new(customer(1, "A")), 0, 0)
                .unwrap();
            model.bind_to_log("customers.events", "cluster-a").unwrap();
            // What a build before formats were recorded left behind.
            model.meta.remove("format").unwrap();
        }
        let model = ReadModel::open(dir.path()).unwrap();
        let refused = model.bind_to_log("customers.events", "cluster-a");
        assert!(
            matches!(&refused, Err(ReadModelError::OldFormat { found }) if found == "1"),
            "{refused:?}"
        );
        assert!(refused
            .unwrap_err()
            .to_string()
            .contains("customer-registry rebuild"));
    }

    #[test]
    fn offsets_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let model = ReadModel::open(dir.path()).unwrap();
            model
                .apply_customer_created(&CustomerCreated::new(customer(1, "A")), 2, 41)
                .unwrap();
            model
                .reject_record(2, 42, RejectionKind::Malformed, "test")
                .unwrap();
        }
        let model = ReadModel::open(dir.path()).unwrap();
        assert_eq!(model.next_offsets().unwrap(), BTreeMap::from([(2, 43)]));
    }
}
