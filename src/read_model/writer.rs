//! The writer: the only way to change the read model, owned by the projector (or by a tool
//! replaying the log). It applies records to the active layer in memory, freezes the layer when
//! it is large or old, and has the flusher write it to the store in the background.
//!
//! Applying is idempotent by event id: an event already in a customer's history is a duplicate.
//! Otherwise a `CustomerCreated` for a customer that exists is a conflict, and an update or delete
//! applies only to a live customer at the version just before its own: anything else is kept
//! out and recorded. After a crash the projector reapplies everything past the committed
//! position onto the committed state, so nothing is applied twice.

use super::directory::{ColumnEntry, Listing};
use super::flusher::{Flush, FlushWay, Flusher};
use super::record::{CustomerRecord, History, HistoryEntry, LogPlace};
use super::rejected::{RejectedEvent, RejectionKind};
use super::store::codec::CHUNK_ORDINALS;
use super::terms::Terms;
use super::{ReadModelError, Shared};
use crate::domain::{AccountId, CustomerErased, CustomerId, RegistryEvent};
use chrono::Utc;
use hashbrown::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// When the writer freezes its layer and has it flushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushPolicy {
    /// Once the layer holds this many changed customers.
    pub changes: usize,
    /// Or once its first change (or first record that changed nothing) is this old: bounding
    /// what a restart replays, a flood of rejected records included.
    pub interval: Duration,
    /// A fault-injection hook for the crash tests: the flusher waits this long after writing a
    /// flush's blocks and segments, before committing them. Zero in service.
    pub pause_before_commit: Duration,
    /// Whether this writer replays a log nobody reads until it is done (`rebuild`, `audit`,
    /// `export`): its layers then hash their postings and sort them once, when flushed, its
    /// flushes write every block at once (see [`super::flusher`]), and its store keeps a smaller
    /// cache.
    pub replay: bool,
}

impl Default for FlushPolicy {
    fn default() -> Self {
        Self {
            changes: 50_000,
            interval: Duration::from_secs(10),
            pause_before_commit: Duration::ZERO,
            replay: false,
        }
    }
}

impl FlushPolicy {
    /// How a replay flushes: never by age, postings appended, layers of 25,000 changes (up to
    /// three in memory while one flushes). At 1M customers, layers of 100,000 peaked at 776
    /// against 665 MiB, for a speed within the machine's noise (docs/performance.md, issue 22).
    pub fn replay() -> Self {
        Self {
            changes: 25_000,
            interval: Duration::MAX,
            replay: true,
            ..Self::default()
        }
    }
}

/// While a flush is under way the active layer keeps growing; past this many times the flush
/// threshold the writer waits for the flush (bounding memory).
const MAX_BACKLOG: usize = 2;

/// What one record of the log asks of the read model.
#[derive(Debug, Clone)]
pub enum RecordChange {
    /// Apply this event.
    Event(Box<RegistryEvent>),
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

impl LogRecord {
    fn place(&self) -> LogPlace {
        LogPlace {
            partition: self.partition,
            offset: self.offset,
        }
    }
}

/// Records, with what applying them needs that depends on nothing in the read model: each new
/// customer's record and terms (folding is most of the work). Prepared on any thread, so a replay
/// prepares the next batch while the writer applies one.
pub struct PreparedBatch {
    records: Vec<LogRecord>,
    /// For each record creating a customer: the customer's record as stored, and its terms.
    fresh: Vec<Option<(Arc<CustomerRecord>, Terms)>>,
}

impl PreparedBatch {
    /// Prepares `records`.
    pub fn new(records: Vec<LogRecord>) -> Self {
        let fresh = records
            .iter()
            .map(|record| match &record.change {
                RecordChange::Event(event) => match event.as_ref() {
                    RegistryEvent::CustomerCreated(created) => {
                        let customer = CustomerRecord {
                            customer: created.customer.clone(),
                            deleted: false,
                            erased: false,
                            history: History::from_iter([HistoryEntry {
                                place: record.place(),
                                event_id: created.event_id,
                            }]),
                        };
                        let terms = Terms::of(&customer.customer);
                        Some((Arc::new(customer), terms))
                    }
                    _ => None,
                },
                RecordChange::Rejected { .. } => None,
            })
            .collect();
        Self { records, fresh }
    }

    /// The records, in log order.
    pub fn records(&self) -> &[LogRecord] {
        &self.records
    }
}

/// What applying a record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The event changed the read model.
    Applied,
    /// This event was applied before (a producer retry, a replayed range, a racing idempotent
    /// request): nothing changed but the customer's history.
    Duplicate,
    /// A create for a customer id another event created: kept out, recorded in
    /// `rejected_events`.
    Conflict,
    /// An update or delete whose version is not the customer's next one (another change took
    /// it first): kept out, recorded.
    Stale,
    /// An update or delete of a customer that does not exist, or no longer: kept out, recorded.
    Absent,
    /// A record that holds no event this build applies: recorded.
    Rejected,
}

/// What the read model decides about one event, given the customer as it stands.
enum Decision {
    /// The customer as the event leaves it.
    Apply(Arc<CustomerRecord>),
    /// The event built the customer already.
    Duplicate,
    /// The event is kept out, with its outcome, kind and reason.
    Refuse(ApplyOutcome, RejectionKind, String),
}

/// The one rule of projection: what `event`, at `place`, does to `current` (the customer with the
/// event's id as it stands, if any). `fresh` is the prepared record of a create.
fn decide(
    event: &RegistryEvent,
    place: LogPlace,
    current: Option<&CustomerRecord>,
    fresh: &mut Option<(Arc<CustomerRecord>, Terms)>,
) -> Decision {
    let id = event.customer_id();
    let event_id = event.event_id();
    let Some(current) = current else {
        return match event {
            RegistryEvent::CustomerCreated(_) => {
                let (record, _) = fresh.as_ref().expect("a create is prepared");
                Decision::Apply(Arc::clone(record))
            }
            _ => Decision::Refuse(
                ApplyOutcome::Absent,
                RejectionKind::CustomerAbsent,
                format!("event {event_id} changes customer {id}, which the log never created"),
            ),
        };
    };
    if let RegistryEvent::CustomerErased(erased) = event {
        return erasure(erased, place, current);
    }
    let version = event.version();
    let account_id = match event {
        RegistryEvent::CustomerCreated(_) if current.created_by() == Some(event_id) => {
            return Decision::Duplicate;
        }
        RegistryEvent::CustomerCreated(_) => {
            return Decision::Refuse(
                ApplyOutcome::Conflict,
                RejectionKind::Conflict,
                format!("event {event_id} creates customer {id}, which another event created"),
            )
        }
        RegistryEvent::CustomerUpdated(updated) => updated.account_id,
        RegistryEvent::CustomerDeleted(deleted) => deleted.account_id,
        RegistryEvent::CustomerErased(_) => unreachable!("decided above"),
    };
    match refusal(event_id, id, version, account_id, current) {
        // An event that applied made a version the customer is at or past, so one that would
        // make the next version never applied: only a refused one is looked for among the
        // events that built the customer (a hot customer's every update would otherwise scan
        // its whole history).
        Some(_) if current.has_event(event_id) => Decision::Duplicate,
        Some(refused) => refused,
        None => {
            let mut next = current.clone().with_entry(place, event_id);
            match event {
                RegistryEvent::CustomerUpdated(updated) => {
                    next.customer = updated.applied_to(&current.customer);
                }
                RegistryEvent::CustomerDeleted(deleted) => {
                    next.customer = deleted.applied_to(&current.customer);
                    next.deleted = true;
                }
                RegistryEvent::CustomerCreated(_) | RegistryEvent::CustomerErased(_) => {
                    unreachable!("decided above")
                }
            }
            Decision::Apply(Arc::new(next))
        }
    }
}

/// What an erasure does to `current`: purges its personal fields (a live customer leaves every
/// index, as a deleted one does), whatever its state or version; once.
fn erasure(erased: &CustomerErased, place: LogPlace, current: &CustomerRecord) -> Decision {
    if current.erased {
        return Decision::Duplicate;
    }
    if erased.account_id != current.customer.details.account_id {
        return Decision::Refuse(
            ApplyOutcome::Conflict,
            RejectionKind::Conflict,
            format!(
                "event {} erases customer {} of account {}, which belongs to account {}",
                erased.event_id,
                erased.customer_id,
                erased.account_id,
                current.customer.details.account_id
            ),
        );
    }
    let next = current.clone().with_entry(place, erased.event_id).erased();
    Decision::Apply(Arc::new(next))
}

/// Why a change (update or delete) of `current` that makes `version` for `account_id` is kept
/// out, if it is.
fn refusal(
    event_id: uuid::Uuid,
    id: CustomerId,
    version: u64,
    account_id: AccountId,
    current: &CustomerRecord,
) -> Option<Decision> {
    if current.erased {
        return Some(Decision::Refuse(
            ApplyOutcome::Absent,
            RejectionKind::CustomerAbsent,
            format!("event {event_id} changes customer {id}, whose personal data was erased"),
        ));
    }
    if current.deleted {
        return Some(Decision::Refuse(
            ApplyOutcome::Absent,
            RejectionKind::CustomerAbsent,
            format!(
                "event {event_id} changes customer {id}, deleted at version {}",
                current.customer.version
            ),
        ));
    }
    if account_id != current.customer.details.account_id {
        return Some(Decision::Refuse(
            ApplyOutcome::Conflict,
            RejectionKind::Conflict,
            format!(
                "event {event_id} names account {account_id} for customer {id}, which belongs \
                 to account {}",
                current.customer.details.account_id
            ),
        ));
    }
    if version != current.customer.version + 1 {
        return Some(Decision::Refuse(
            ApplyOutcome::Stale,
            RejectionKind::VersionConflict,
            format!(
                "event {event_id} makes customer {id} version {version}, but it is at version {} \
                 (only version {} may follow)",
                current.customer.version,
                current.customer.version + 1
            ),
        ));
    }
    None
}

/// A customer the batch touches: as it stood before the batch, and as the batch leaves it.
struct Planned {
    /// Its ordinal and record before the batch; `None` for a customer the batch creates.
    before: Option<(u32, Arc<CustomerRecord>)>,
    /// As the batch leaves it.
    record: Arc<CustomerRecord>,
    /// The terms prepared with its create, while the batch has not changed it since.
    fresh_terms: Option<Terms>,
}

/// A planned change as the index takes it, its terms folded before the index lock is taken.
enum IndexChange {
    /// A new customer (a tombstone when the batch deleted it too).
    Add(Listing, Arc<CustomerRecord>, Terms),
    /// The same fields and terms: only the history changed.
    Rewrite(u32, Arc<CustomerRecord>),
    /// Fields changed: the old terms leave, the new ones join.
    Replace(u32, Terms, Arc<CustomerRecord>, Terms),
    /// Deleted: the old terms leave, the tombstone stays.
    Delete(u32, Terms, Arc<CustomerRecord>),
}

impl Planned {
    /// How the index takes this customer's change, if it changed.
    fn into_change(self) -> Option<IndexChange> {
        let Some((ordinal, before)) = self.before else {
            let terms = match (self.record.deleted, self.fresh_terms) {
                (true, _) => Terms::default(),
                (false, Some(terms)) => terms,
                (false, None) => Terms::of(&self.record.customer),
            };
            let listing = Listing::of(&self.record.customer);
            return Some(IndexChange::Add(listing, self.record, terms));
        };
        if Arc::ptr_eq(&before, &self.record) {
            return None;
        }
        let fields_same = before.deleted == self.record.deleted
            && before.customer.details == self.record.customer.details;
        if before.deleted || fields_same {
            return Some(IndexChange::Rewrite(ordinal, self.record));
        }
        let old_terms = Terms::of(&before.customer);
        if self.record.deleted {
            return Some(IndexChange::Delete(ordinal, old_terms, self.record));
        }
        let new_terms = Terms::of(&self.record.customer);
        Some(IndexChange::Replace(
            ordinal,
            old_terms,
            self.record,
            new_terms,
        ))
    }
}

/// How many ordinals (customers ever created, deleted ones included) one read model numbers:
/// u32's range less the last posting chunk, so that no chunk's end overflows.
pub const MAX_ORDINALS: u32 = u32::MAX - CHUNK_ORDINALS;

/// The read model's only writer; not `Clone`, so one owner applies and flushes.
pub struct ReadModelWriter {
    shared: Arc<Shared>,
    flusher: Flusher,
    policy: FlushPolicy,
    /// [`MAX_ORDINALS`], lowered by tests.
    ordinal_limit: u32,
}

impl ReadModelWriter {
    pub(super) fn new(shared: Arc<Shared>, policy: FlushPolicy) -> Self {
        let way = FlushWay {
            blocks_at_once: policy.replay,
            pause_before_commit: policy.pause_before_commit,
        };
        let flusher = Flusher::start(Arc::clone(&shared), way);
        Self {
            shared,
            flusher,
            policy,
            ordinal_limit: MAX_ORDINALS,
        }
    }

    /// Lowers the number of ordinals this writer assigns, so a test can reach the bound.
    #[cfg(test)]
    pub(super) fn limit_ordinals(&mut self, limit: u32) {
        self.ordinal_limit = limit;
    }

    /// Applies `records`: [`ReadModelWriter::apply_prepared`] of them.
    ///
    /// # Errors
    /// As [`ReadModelWriter::apply_prepared`].
    pub fn apply_batch(
        &mut self,
        records: &[LogRecord],
    ) -> Result<Vec<ApplyOutcome>, ReadModelError> {
        self.apply_prepared(&mut PreparedBatch::new(records.to_vec()))
    }

    /// The record of each customer `records` carry events of that the read model holds, with its
    /// ordinal: taken from the layers under the index's lock, read from the store after it (a
    /// sled read under the lock would make the flusher's publish, and every reader queued behind
    /// it, wait). Only this writer changes records, so none changes in between.
    ///
    /// # Errors
    /// [`ReadModelError`] when the store fails or a stored record cannot be read.
    fn records_held(
        &self,
        records: &[LogRecord],
    ) -> Result<HashMap<CustomerId, (u32, Arc<CustomerRecord>)>, ReadModelError> {
        let (ids, to_load) = {
            let index = self.shared.index.read();
            let mut ids = Vec::new();
            let mut seen = HashSet::new();
            let mut ordinals = Vec::new();
            for record in records {
                let RecordChange::Event(event) = &record.change else {
                    continue;
                };
                let id = event.customer_id();
                if let Some(ordinal) = index.directory.ordinal_of(id) {
                    if seen.insert(id) {
                        ids.push(id);
                        ordinals.push(ordinal);
                    }
                }
            }
            (ids, index.records_to_load(&ordinals))
        };
        let loaded = to_load.load_numbered(&self.shared.store)?;
        Ok(ids.into_iter().zip(loaded).collect())
    }

    /// Applies `batch` in memory (readers see it at once) and flushes when due. Records of a
    /// batch that create customers get their ordinals in answer order.
    ///
    /// # Errors
    /// [`ReadModelError`] when the store fails, a stored record cannot be read, or a flush
    /// failed.
    pub fn apply_prepared(
        &mut self,
        batch: &mut PreparedBatch,
    ) -> Result<Vec<ApplyOutcome>, ReadModelError> {
        self.flusher.check()?;
        let PreparedBatch { records, fresh } = batch;
        let mut outcomes = Vec::with_capacity(records.len());
        let mut planned: Vec<Planned> = Vec::new();
        // Customers this batch changes, by id: which plan holds their record.
        let mut planned_for: HashMap<CustomerId, usize> = HashMap::new();
        let mut held = self.records_held(records)?;
        for (record, fresh) in records.iter().zip(fresh.iter_mut()) {
            let event = match &record.change {
                RecordChange::Event(event) => event.as_ref(),
                RecordChange::Rejected { kind, reason } => {
                    self.reject(record, *kind, reason.clone())?;
                    outcomes.push(ApplyOutcome::Rejected);
                    continue;
                }
            };
            let id = event.customer_id();
            let at = match planned_for.get(&id) {
                Some(&at) => Some(at),
                None => match held.remove(&id) {
                    Some((ordinal, stored)) => {
                        planned_for.insert(id, planned.len());
                        planned.push(Planned {
                            before: Some((ordinal, Arc::clone(&stored))),
                            record: stored,
                            fresh_terms: None,
                        });
                        Some(planned.len() - 1)
                    }
                    None => None,
                },
            };
            let current = at.map(|at| Arc::clone(&planned[at].record));
            let outcome = match decide(event, record.place(), current.as_deref(), fresh) {
                Decision::Apply(next) => {
                    match at {
                        Some(at) => {
                            planned[at].record = next;
                            planned[at].fresh_terms = None;
                        }
                        None => {
                            let (_, terms) = fresh.take().expect("a create is prepared");
                            planned_for.insert(id, planned.len());
                            planned.push(Planned {
                                before: None,
                                record: next,
                                fresh_terms: Some(terms),
                            });
                        }
                    }
                    ApplyOutcome::Applied
                }
                Decision::Duplicate => {
                    let at = at.expect("a duplicate has a customer");
                    let with_place = planned[at]
                        .record
                        .as_ref()
                        .clone()
                        .with_entry(record.place(), event.event_id());
                    planned[at].record = Arc::new(with_place);
                    ApplyOutcome::Duplicate
                }
                Decision::Refuse(outcome, kind, reason) => {
                    self.reject(record, kind, reason)?;
                    outcome
                }
            };
            outcomes.push(outcome);
        }
        // Folding terms takes time: done before the index is locked for writing.
        let mut changes: Vec<IndexChange> = planned
            .into_iter()
            .filter_map(Planned::into_change)
            .collect();
        changes.sort_by_key(|change| match change {
            IndexChange::Add(listing, _, _) => Some(listing.key),
            _ => None,
        });
        let adds = changes
            .iter()
            .filter(|change| matches!(change, IndexChange::Add(..)))
            .count();
        let mut index = self.shared.index.write();
        // Past the last ordinal a new customer would wrap onto ordinal 0: stop before, changing
        // nothing (the projector stops; the log keeps every event).
        let next = u64::from(index.directory.next_ordinal());
        if next + adds as u64 > u64::from(self.ordinal_limit) {
            return Err(ReadModelError::Full(self.ordinal_limit));
        }
        for change in changes {
            match change {
                IndexChange::Add(listing, record, terms) => {
                    let ordinal = index.directory.add(listing);
                    if record.deleted {
                        index.directory.delete(ordinal);
                        let entry = ColumnEntry::Deleted(listing);
                        index.active.add(ordinal, record, &terms, entry);
                    } else {
                        let entry = ColumnEntry::Live(listing);
                        index.active.add(ordinal, record, &terms, entry);
                    }
                }
                IndexChange::Rewrite(ordinal, record) => index.active.rewrite(ordinal, record),
                IndexChange::Replace(ordinal, old_terms, record, new_terms) => {
                    index
                        .active
                        .replace(ordinal, &old_terms, record, &new_terms);
                }
                IndexChange::Delete(ordinal, old_terms, record) => {
                    let listing = Listing::of(&record.customer);
                    index.active.delete(ordinal, &old_terms, record, listing);
                    index.directory.delete(ordinal);
                }
            }
        }
        for record in records.iter() {
            index.active.reach(record.partition, record.offset);
        }
        drop(index);
        self.flush_if_due(false)?;
        Ok(outcomes)
    }

    /// Freezes the active layer and has it flushed when it is large or old enough (or, with
    /// `now`, whenever it holds anything); waits for a flush under way only when the active
    /// layer has grown past its bound.
    ///
    /// # Errors
    /// [`ReadModelError::Flush`] when a flush failed, this one or an earlier one: a failed
    /// layer stays uncommitted, and a later layer committed past it would skip its records.
    pub fn flush_if_due(&mut self, now: bool) -> Result<(), ReadModelError> {
        self.flush_when(now, false)
    }

    /// Flushes everything applied, waits for it, and makes it durable: what a clean shutdown or
    /// the end of a replay does. A replay's last flush runs even with nothing left to write: it
    /// does the merging its earlier flushes left (see [`super::flusher`]).
    ///
    /// # Errors
    /// [`ReadModelError`] when a flush failed or the store cannot be synced.
    pub fn flush_all(&mut self) -> Result<(), ReadModelError> {
        self.flusher.wait()?;
        self.flush_when(true, true)?;
        self.flusher.wait()?;
        self.shared.store.flush()
    }

    /// [`ReadModelWriter::flush_if_due`]; `last`: the flush that ends a replay or a serve.
    fn flush_when(&mut self, now: bool, last: bool) -> Result<(), ReadModelError> {
        self.flusher.check()?;
        let (changes, since, moved) = {
            let index = self.shared.index.read();
            let moved = index.active.next_offsets() != &index.committed_offsets;
            (index.active.changes(), index.active.since(), moved)
        };
        let due = now
            || changes >= self.policy.changes
            || since.is_some_and(|since| since.elapsed() >= self.policy.interval);
        let merges_left = last && self.policy.replay;
        if !due || (changes == 0 && !moved && !merges_left) {
            return Ok(());
        }
        if self.flusher.busy() {
            if changes < MAX_BACKLOG * self.policy.changes && !now {
                return Ok(());
            }
            self.flusher.wait()?;
        }
        let mut index = self.shared.index.write();
        let fresh = index.active.successor();
        let frozen = Arc::new(std::mem::replace(&mut index.active, fresh));
        index.frozen = Some(Arc::clone(&frozen));
        drop(index);
        self.flusher.submit(Flush {
            frozen,
            merge: !self.policy.replay || last,
        });
        Ok(())
    }

    fn reject(
        &self,
        record: &LogRecord,
        kind: RejectionKind,
        reason: String,
    ) -> Result<(), ReadModelError> {
        self.shared.store.put_rejected(&RejectedEvent {
            partition: record.partition,
            offset: record.offset,
            kind,
            reason,
            rejected_at: Utc::now(),
        })
    }
}
