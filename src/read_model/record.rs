//! A customer as the read model holds it: the customer, whether it was deleted, and the records
//! of the log that built it.

use crate::domain::Customer;
use uuid::Uuid;

/// Where a record is in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogPlace {
    /// The record's partition.
    pub partition: i32,
    /// The record's offset.
    pub offset: i64,
}

/// One record of a customer's history: where it is, and the event it carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryEntry {
    /// Where the record is in the log.
    pub place: LogPlace,
    /// The event it carried: a record carrying an event already listed is a duplicate of it.
    pub event_id: Uuid,
}

/// One customer of the read model. A deleted customer stays as a tombstone: out of every index
/// and answer, but its history (and the event ids that dedupe retries) kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerRecord {
    /// The customer as the API answers it (as it was when deleted, for a tombstone).
    pub customer: Customer,
    /// Whether a `CustomerDeleted` applied.
    pub deleted: bool,
    /// The records that built it (duplicates included), in the order applied.
    pub history: Vec<HistoryEntry>,
}

impl CustomerRecord {
    /// This record with the record at `place` carrying `event_id` in its history, once:
    /// applying the same record again after a crash adds nothing.
    pub fn with_entry(mut self, place: LogPlace, event_id: Uuid) -> Self {
        // A customer's records sit on one partition and are applied in offset order, so one
        // past the last entry is new (checked in O(1), not over the whole history); anything
        // else is looked for.
        let new = match self.history.last() {
            None => true,
            Some(last) if last.place.partition == place.partition => {
                place.offset > last.place.offset
            }
            Some(_) => !self.history.iter().any(|entry| entry.place == place),
        };
        if new {
            self.history.push(HistoryEntry { place, event_id });
        }
        self
    }

    /// Whether the event `event_id` built this record (it is applied, or was a duplicate).
    pub fn has_event(&self, event_id: Uuid) -> bool {
        self.history.iter().any(|entry| entry.event_id == event_id)
    }

    /// Where the records that built it are, as (partition, offset), in the order applied.
    pub fn places(&self) -> Vec<(i32, i64)> {
        self.history
            .iter()
            .map(|entry| (entry.place.partition, entry.place.offset))
            .collect()
    }

    /// The event that created the customer: the first its history holds.
    pub fn created_by(&self) -> Option<Uuid> {
        self.history.first().map(|entry| entry.event_id)
    }

    /// The customer, unless deleted.
    pub fn live_customer(&self) -> Option<&Customer> {
        (!self.deleted).then_some(&self.customer)
    }
}
