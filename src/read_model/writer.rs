//! The writer: the only way to change the read model, owned by the projector (or by a tool
//! replaying the log). It applies records to the active layer in memory, freezes the layer when
//! it is large or old, and has the flusher write it to the store in the background.
//!
//! Applying is idempotent by event id: a `CustomerCreated` for a customer that exists is a
//! duplicate when it is the event that created it (same event id, same details), and otherwise a
//! conflict, kept out and recorded. After a crash the projector reapplies everything past the
//! committed position onto the committed state, so nothing is applied twice.

use super::directory::{ColumnEntry, Listing};
use super::flusher::Flusher;
use super::record::{CustomerRecord, LogPlace};
use super::rejected::{RejectedEvent, RejectionKind};
use super::terms::Terms;
use super::{ReadModelError, Shared};
use crate::domain::{Customer, CustomerCreated, CustomerId};
use chrono::Utc;
use hashbrown::HashMap;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// When the writer freezes its layer and has it flushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlushPolicy {
    /// Once the layer holds this many changed customers.
    pub changes: usize,
    /// Or once its first change is this old (bounding what a restart replays).
    pub interval: Duration,
    /// A fault-injection hook for the crash tests: the flusher waits this long after writing a
    /// flush's blocks and segments, before committing them. Zero in service.
    pub pause_before_commit: Duration,
    /// Whether this writer replays a log nobody reads until it is done (`rebuild`, `audit`,
    /// `export`): its layers then hash their postings and sort them once, when flushed.
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
    /// How a replay flushes: larger chunks, never by age, postings appended.
    pub fn replay() -> Self {
        Self {
            changes: 100_000,
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
                RecordChange::Created(created) => {
                    let customer = CustomerRecord {
                        customer: created.customer.clone(),
                        last_event_id: created.event_id,
                        history: vec![record.place()],
                    };
                    let terms = Terms::of(&customer.customer);
                    Some((Arc::new(customer), terms))
                }
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
    /// The customer is new and now in the read model.
    Applied,
    /// This event was applied before (a producer retry, a replayed range, a racing idempotent
    /// create): nothing changed but the customer's history.
    Duplicate,
    /// Another event already created a customer with this id: this one was kept out and recorded
    /// in `rejected_events`.
    Conflict,
    /// The record was recorded in `rejected_events`.
    Rejected,
}

/// A change decided before the index lock is taken.
enum Planned {
    /// A new customer, its terms folded already.
    Add(Arc<CustomerRecord>, Terms),
    /// An existing customer's record as the batch leaves it, and whether the batch changed it.
    Rewrite(u32, Arc<CustomerRecord>, bool),
}

impl Planned {
    fn record(&self) -> Arc<CustomerRecord> {
        match self {
            Planned::Add(record, _) | Planned::Rewrite(_, record, _) => Arc::clone(record),
        }
    }

    fn set_record(&mut self, new: Arc<CustomerRecord>) {
        match self {
            Planned::Add(record, _) => *record = new,
            Planned::Rewrite(_, record, changed) => {
                *record = new;
                *changed = true;
            }
        }
    }
}

/// The read model's only writer; not `Clone`, so one owner applies and flushes.
pub struct ReadModelWriter {
    shared: Arc<Shared>,
    flusher: Flusher,
    policy: FlushPolicy,
}

impl ReadModelWriter {
    pub(super) fn new(shared: Arc<Shared>, policy: FlushPolicy) -> Self {
        let flusher = Flusher::start(Arc::clone(&shared), policy.pause_before_commit);
        Self {
            shared,
            flusher,
            policy,
        }
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
        {
            let index = self.shared.index.read();
            for (record, fresh) in records.iter().zip(fresh.iter_mut()) {
                let RecordChange::Created(created) = &record.change else {
                    if let RecordChange::Rejected { kind, reason } = &record.change {
                        self.reject(record, *kind, reason.clone())?;
                    }
                    outcomes.push(ApplyOutcome::Rejected);
                    continue;
                };
                let id = created.customer.id;
                let existing = match planned_for.get(&id) {
                    Some(&at) => Some(planned[at].record()),
                    None => match index.directory.ordinal_of(id) {
                        Some(ordinal) => {
                            let stored = index
                                .record(&self.shared.store, ordinal)?
                                .ok_or_else(|| missing(ordinal))?;
                            planned_for.insert(id, planned.len());
                            planned.push(Planned::Rewrite(ordinal, Arc::clone(&stored), false));
                            Some(stored)
                        }
                        None => None,
                    },
                };
                let outcome = match existing {
                    None => {
                        let (customer, terms) = fresh.take().expect("a create is prepared");
                        planned_for.insert(id, planned.len());
                        planned.push(Planned::Add(customer, terms));
                        ApplyOutcome::Applied
                    }
                    Some(existing) if is_same_event(&existing, created) => {
                        let at = planned_for[&id];
                        planned[at].set_record(Arc::new(
                            existing.as_ref().clone().with_place(record.place()),
                        ));
                        ApplyOutcome::Duplicate
                    }
                    Some(_) => {
                        let reason = format!(
                            "event {} creates customer {id}, which exists already from another \
                             event or with other details",
                            created.event_id
                        );
                        self.reject(record, RejectionKind::Conflict, reason)?;
                        ApplyOutcome::Conflict
                    }
                };
                outcomes.push(outcome);
            }
        }
        let mut index = self.shared.index.write();
        let mut adds: Vec<(Listing, Arc<CustomerRecord>, Terms)> = Vec::new();
        for change in planned {
            match change {
                Planned::Add(record, terms) => {
                    adds.push((Listing::of(&record.customer), record, terms));
                }
                Planned::Rewrite(ordinal, record, true) => index.active.rewrite(ordinal, record),
                Planned::Rewrite(_, _, false) => {}
            }
        }
        adds.sort_by_key(|(listing, _, _)| listing.key);
        for (listing, record, terms) in adds {
            let ordinal = index.directory.add(listing);
            index
                .active
                .add(ordinal, record, &terms, ColumnEntry::Live(listing));
        }
        for record in records.iter() {
            index.active.reach(record.partition, record.offset);
        }
        drop(index);
        self.flush_if_due(false)?;
        Ok(outcomes)
    }

    /// Replaces the fields of customer `customer.id` (its id and `createdAt` stay), as the
    /// event `event_id` at `place` asks: its old terms leave every posting, its new ones join.
    /// Returns whether the customer existed.
    ///
    /// # Errors
    /// [`ReadModelError`] when the store fails or a flush failed.
    pub fn replace(
        &mut self,
        customer: Customer,
        event_id: Uuid,
        place: LogPlace,
    ) -> Result<bool, ReadModelError> {
        self.flusher.check()?;
        let mut index = self.shared.index.write();
        let Some(ordinal) = index.directory.ordinal_of(customer.id) else {
            return Ok(false);
        };
        let old = index
            .record(&self.shared.store, ordinal)?
            .ok_or_else(|| missing(ordinal))?;
        let mut record = old.as_ref().clone().with_place(place);
        record.customer.details = customer.details;
        record.last_event_id = event_id;
        let new_terms = Terms::of(&record.customer);
        index.active.replace(
            ordinal,
            &Terms::of(&old.customer),
            Arc::new(record),
            &new_terms,
        );
        index.active.reach(place.partition, place.offset);
        drop(index);
        self.flush_if_due(false)?;
        Ok(true)
    }

    /// Removes customer `id`, as the record at `place` asks: its ordinal leaves every posting
    /// and its record is gone. Returns whether the customer existed.
    ///
    /// # Errors
    /// [`ReadModelError`] when the store fails or a flush failed.
    pub fn remove(&mut self, id: CustomerId, place: LogPlace) -> Result<bool, ReadModelError> {
        self.flusher.check()?;
        let mut index = self.shared.index.write();
        let Some(ordinal) = index.directory.ordinal_of(id) else {
            return Ok(false);
        };
        let old = index
            .record(&self.shared.store, ordinal)?
            .ok_or_else(|| missing(ordinal))?;
        index.active.remove(ordinal, &Terms::of(&old.customer));
        index.directory.remove(ordinal);
        index.active.reach(place.partition, place.offset);
        drop(index);
        self.flush_if_due(false)?;
        Ok(true)
    }

    /// Freezes the active layer and has it flushed when it is large or old enough (or, with
    /// `now`, whenever it holds anything); waits for a flush under way only when the active
    /// layer has grown past its bound.
    ///
    /// # Errors
    /// [`ReadModelError::Flush`] when a flush failed.
    pub fn flush_if_due(&mut self, now: bool) -> Result<(), ReadModelError> {
        let (changes, since, moved) = {
            let index = self.shared.index.read();
            let moved = index.active.next_offsets() != &index.committed_offsets;
            (index.active.changes(), index.active.since(), moved)
        };
        let due = now
            || changes >= self.policy.changes
            || since.is_some_and(|since| since.elapsed() >= self.policy.interval);
        if !due || (changes == 0 && !moved) {
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
        self.flusher.submit(frozen);
        Ok(())
    }

    /// Flushes everything applied, waits for it, and makes it durable: what a clean shutdown or
    /// the end of a replay does.
    ///
    /// # Errors
    /// [`ReadModelError`] when a flush failed or the store cannot be synced.
    pub fn flush_all(&mut self) -> Result<(), ReadModelError> {
        self.flusher.wait()?;
        self.flush_if_due(true)?;
        self.flusher.wait()?;
        self.shared.store.flush()
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

/// Whether `created` is the event that created `existing` (a duplicate of it in the log: the
/// retry may carry another `createdAt`).
fn is_same_event(existing: &CustomerRecord, created: &CustomerCreated) -> bool {
    existing.last_event_id == created.event_id
        && existing.customer.details == created.customer.details
}

fn missing(ordinal: u32) -> ReadModelError {
    ReadModelError::Corrupt(format!("ordinal {ordinal} is live but has no record"))
}
