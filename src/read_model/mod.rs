//! The read model: every customer, the index `find` reads, and how far the log has been applied.
//! Only the projector writes it (through the one [`ReadModelWriter`]); HTTP handlers and tools
//! read it through cloneable [`ReadModel`] handles.
//!
//! Its shape follows the data:
//! - [`terms`] and [`fold`]: what a customer is indexed under (a field's tag and a value's search
//!   form);
//! - `directory`: each customer's dense ordinal, its order key, and the answer order (memory);
//! - `memtable`: changes applied since the last flush (memory), layered over
//! - `store`: records, order keys and index segments (posting lists) in sled, committed with the
//!   log position they reach;
//! - `writer` and `flusher`: applying records, and writing layers to the store in the background;
//! - `index` and `planner`: reading all of the above as one state, and answering `find`;
//! - `snapshot`: the committed state in one checksummed file, and a read model restored from one.
//!
//! A customer costs about one sled key in sixteen (records by block, postings by term and block),
//! so the store's cost per customer, not per key, bounds writes, disk and memory. Layout and
//! figures: docs/performance.md.

mod directory;
mod flusher;
pub mod fold;
mod index;
mod memtable;
mod planner;
mod postings;
mod query;
mod record;
mod rejected;
mod snapshot;
mod store;
pub mod terms;
#[cfg(test)]
mod tests;
mod writer;

pub use planner::{Page, Work, INLINE_WORK, MAX_WORK};
pub use query::{no_parameters, parse_page, CustomerQuery, DEFAULT_LIMIT, MAX_LIMIT};
pub use record::{CustomerRecord, History, HistoryEntry, LogPlace};
pub use rejected::{RejectedEvent, RejectionKind};
pub use snapshot::{
    restore_snapshot, verify_snapshot, SnapshotError, SnapshotHeader, SnapshotSummary,
    MAX_HOLD as SNAPSHOT_MAX_HOLD,
};
pub use store::{StorageError, FORMAT, READABLE_FORMATS, UNPACKED_FORMAT};
pub use writer::{
    ApplyOutcome, FlushPolicy, LogRecord, PreparedBatch, ReadModelWriter, RecordChange,
    MAX_ORDINALS,
};

use crate::domain::{Customer, CustomerId};
use directory::Directory;
use index::Index;
use memtable::Memtable;
use parking_lot::RwLock;
use postings::LayerPostings;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use store::Store;

/// What went wrong in the read model.
#[derive(Debug, thiserror::Error)]
pub enum ReadModelError {
    /// The store failed: I/O, or the directory is locked by another process.
    #[error("read model storage failed: {0}")]
    Storage(StorageError),
    /// Stored bytes that this build cannot read back.
    #[error("read model is corrupt: {0}")]
    Corrupt(String),
    /// Another process has the read model open.
    #[error("{0} is in use by another customer-registry process (its lock is held)")]
    Locked(String),
    /// A find needed more work than it was allowed ([`Work`]).
    #[error("the find needs more work than it is allowed")]
    OverBudget,
    /// Every ordinal is taken: the read model numbers no more customers.
    #[error(
        "the read model numbers {0} customers (deleted ones included), as many as it can; \
         split the registry by account over several topics"
    )]
    Full(u32),
    /// Writing changes to the store failed; the read model takes no more.
    #[error("flushing the read model failed: {0}")]
    Flush(String),
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
        /// `topic`, `cluster` or `first record`.
        setting: &'static str,
        /// What the read model was built from.
        stored: String,
        /// What it was asked to follow now.
        wanted: String,
    },
}

/// What the reader handles and the writer share.
struct Shared {
    store: Store,
    index: RwLock<Index>,
}

/// Opens (or creates) the read model in `dir`: a reader handle, and its one writer, which
/// flushes by the default [`FlushPolicy`].
///
/// # Errors
/// [`ReadModelError::Locked`] when another process holds it, [`ReadModelError::Storage`] or
/// [`ReadModelError::Corrupt`] when it cannot be read.
pub fn open(dir: &Path) -> Result<(ReadModel, ReadModelWriter), ReadModelError> {
    open_with(dir, FlushPolicy::default())
}

/// [`open`], with a writer that flushes by `policy`.
///
/// # Errors
/// As [`open`].
pub fn open_with(
    dir: &Path,
    policy: FlushPolicy,
) -> Result<(ReadModel, ReadModelWriter), ReadModelError> {
    let store = if policy.replay {
        Store::open_for_replay(dir)?
    } else {
        Store::open(dir)?
    };
    let committed = store.committed()?;
    let mut column = Vec::with_capacity(committed.column.len());
    for (ordinal, entry) in committed.column.iter().enumerate() {
        column.push(entry.ok_or_else(|| {
            ReadModelError::Corrupt(format!(
                "ordinal {ordinal} was committed but has no column entry"
            ))
        })?);
    }
    let index = Index {
        directory: Directory::build(&column),
        active: Memtable::new(
            committed.next_ordinal,
            committed.next_offsets.clone(),
            if policy.replay {
                LayerPostings::hashed()
            } else {
                LayerPostings::ordered()
            },
        ),
        frozen: None,
        segments: Arc::new(committed.segments),
        committed_offsets: committed.next_offsets,
    };
    let shared = Arc::new(Shared {
        store,
        index: RwLock::new(index),
    });
    Ok((
        ReadModel {
            shared: Arc::clone(&shared),
        },
        ReadModelWriter::new(shared, policy),
    ))
}

/// A handle for reading the read model; cheap to clone, shared by the HTTP handlers and tools.
#[derive(Clone)]
pub struct ReadModel {
    shared: Arc<Shared>,
}

impl ReadModel {
    /// The topic and cluster this read model projects, once it has been bound to a log.
    ///
    /// # Errors
    /// [`ReadModelError::Storage`] when sled fails.
    pub fn bound_log(&self) -> Result<Option<(String, String)>, ReadModelError> {
        let store = &self.shared.store;
        Ok(store.setting("topic")?.zip(store.setting("cluster")?))
    }

    /// Ties the read model to the log it projects: records `topic` and `cluster` on first use,
    /// and refuses any other afterwards, or a read model stored in another format.
    ///
    /// # Errors
    /// [`ReadModelError::OtherLog`] when the read model was built from another topic or cluster,
    /// [`ReadModelError::OldFormat`] when another build wrote it.
    pub fn bind_to_log(&self, topic: &str, cluster: &str) -> Result<(), ReadModelError> {
        let store = &self.shared.store;
        let found = store.format()?;
        if !READABLE_FORMATS.contains(&found.as_str()) {
            return Err(ReadModelError::OldFormat { found });
        }
        if found == "4" {
            // From now on, builds that read only format 4 must not open it.
            store.record_setting("format", UNPACKED_FORMAT)?;
        }
        for (setting, wanted) in [("topic", topic), ("cluster", cluster)] {
            match store.setting(setting)? {
                Some(stored) if stored != wanted => {
                    return Err(ReadModelError::OtherLog {
                        setting,
                        stored,
                        wanted: wanted.to_owned(),
                    })
                }
                Some(_) => {}
                None => store.record_setting(setting, wanted)?,
            }
        }
        Ok(())
    }

    /// The record of the log this read model noted as its topic's origin (see
    /// [`crate::log::first_origin`]), if it noted one: the first its projector received.
    ///
    /// # Errors
    /// [`ReadModelError`] when sled fails.
    pub fn origin(&self) -> Result<Option<String>, ReadModelError> {
        self.shared.store.setting("origin")
    }

    /// Notes `origin` as the topic's origin: a topic found without that record later is another.
    ///
    /// # Errors
    /// [`ReadModelError`] when sled fails.
    pub fn note_origin(&self, origin: &str) -> Result<(), ReadModelError> {
        self.shared.store.record_setting("origin", origin)
    }

    /// The next offset to apply, per partition, as committed to disk: where a restart resumes.
    ///
    /// # Errors
    /// [`ReadModelError`] when sled fails or an entry is malformed.
    pub fn next_offsets(&self) -> Result<BTreeMap<i32, i64>, ReadModelError> {
        self.shared.store.next_offsets()
    }

    /// The next offset to apply, per partition, as applied (in memory): what reads reflect.
    pub fn applied_offsets(&self) -> BTreeMap<i32, i64> {
        self.shared.index.read().applied_offsets().clone()
    }

    /// The customer with `id`, if the projection has it and it was not deleted.
    ///
    /// # Errors
    /// [`ReadModelError`] when sled fails or the stored customer cannot be read.
    pub fn get(&self, id: CustomerId) -> Result<Option<Customer>, ReadModelError> {
        Ok(self
            .record(id)?
            .and_then(|record| record.live_customer().cloned()))
    }

    /// The record of customer `id` (a deleted customer's tombstone included): the customer, and
    /// the records that built it.
    ///
    /// # Errors
    /// [`ReadModelError`] when sled fails or the stored record cannot be read.
    pub fn record(&self, id: CustomerId) -> Result<Option<Arc<CustomerRecord>>, ReadModelError> {
        let to_load = {
            let index = self.shared.index.read();
            match index.directory.ordinal_of(id) {
                Some(ordinal) => index.records_to_load(&[ordinal]),
                None => return Ok(None),
            }
        };
        Ok(to_load.load(&self.shared.store)?.pop())
    }

    /// Where the records that built customer `id` are in the log (partition, offset), in the
    /// order they were applied, a deleted customer's included; empty for an unknown customer.
    ///
    /// # Errors
    /// [`ReadModelError`] when sled fails or the stored record cannot be read.
    pub fn history_of(&self, id: CustomerId) -> Result<Vec<(i32, i64)>, ReadModelError> {
        Ok(self
            .record(id)?
            .map_or_else(Vec::new, |record| record.places()))
    }

    /// The page of customers `query` selects, within `work`.
    ///
    /// # Errors
    /// [`ReadModelError::OverBudget`] when it would need more work; [`ReadModelError`] when sled
    /// fails or a record cannot be read.
    pub fn find(&self, query: &CustomerQuery, work: &Work) -> Result<Page, ReadModelError> {
        planner::find(&self.shared.index, &self.shared.store, query, work)?
            .load(&self.shared.store, query)
    }

    /// Every customer, in answer order (`createdAt`, then `id`), `batch` at a time.
    pub fn customers_in_order(
        &self,
        batch: usize,
    ) -> impl Iterator<Item = Result<Customer, ReadModelError>> + '_ {
        let mut skip = 0;
        let mut pending = std::collections::VecDeque::new();
        std::iter::from_fn(move || {
            if pending.is_empty() {
                let to_load = {
                    let index = self.shared.index.read();
                    let ordinals: Vec<u32> = index
                        .directory
                        .answer_order()
                        .iter_from(skip)
                        .take(batch.max(1))
                        .collect();
                    skip += ordinals.len();
                    index.records_to_load(&ordinals)
                };
                // A customer deleted after the ordinals were taken is left out, as the order
                // would have left it out a moment later.
                match to_load.load_where(&self.shared.store, |record| !record.deleted) {
                    Ok(records) => pending.extend(records.into_iter().map(Ok)),
                    Err(error) => pending.push_back(Err(error)),
                }
            }
            pending
                .pop_front()
                .map(|record: Result<Arc<CustomerRecord>, _>| record.map(|r| r.customer.clone()))
        })
    }

    /// Every live customer in id order, as its JSON (fields in contract order): what an audit
    /// compares. A record that can no longer be read yields why instead, which differs from any
    /// customer's JSON.
    pub fn stored_customers(
        &self,
    ) -> impl Iterator<Item = Result<(CustomerId, Vec<u8>), ReadModelError>> + '_ {
        let mut ordinals: Vec<(CustomerId, u32)> = {
            let index = self.shared.index.read();
            index
                .directory
                .live()
                .iter()
                .map(|ordinal| {
                    let id = CustomerId::from_bytes(index.directory.key(ordinal).id);
                    (id, ordinal)
                })
                .collect()
        };
        ordinals.sort_unstable();
        ordinals.into_iter().map(move |(id, ordinal)| {
            let to_load = self.shared.index.read().records_to_load(&[ordinal]);
            let bytes = match to_load
                .load(&self.shared.store)
                .map(|mut found| found.pop())
            {
                Ok(Some(record)) => {
                    serde_json::to_vec(&record.customer).expect("a customer always serialises")
                }
                Ok(None) => b"missing: the directory names a customer with no record".to_vec(),
                Err(ReadModelError::Corrupt(why)) => format!("unreadable: {why}").into_bytes(),
                Err(error) => return Err(error),
            };
            Ok((id, bytes))
        })
    }

    /// How many customers the read model holds.
    pub fn len(&self) -> usize {
        self.shared.index.read().directory.live().len() as usize
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the read model takes on disk.
    ///
    /// # Errors
    /// [`ReadModelError::Storage`] when its directory cannot be read.
    pub fn size_on_disk(&self) -> Result<u64, ReadModelError> {
        self.shared.store.size_on_disk()
    }

    /// Every rejected record, by partition then offset.
    ///
    /// # Errors
    /// [`ReadModelError`] when sled fails or an entry cannot be read.
    pub fn rejected_events(&self) -> Result<Vec<RejectedEvent>, ReadModelError> {
        self.shared.store.rejected_events()
    }

    /// A page of [`ReadModel::rejected_events`], and how many there are in all.
    ///
    /// # Errors
    /// [`ReadModelError`] when the store fails.
    pub fn rejected_events_page(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<RejectedEvent>, usize), ReadModelError> {
        self.shared.store.rejected_events_page(offset, limit)
    }
}
