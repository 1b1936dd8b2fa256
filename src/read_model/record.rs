//! A customer as the read model holds it: the customer, whether it was deleted, and the records
//! of the log that built it.

use crate::domain::Customer;
use std::sync::Arc;
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

/// Entries in one sealed chunk of a [`History`].
const HISTORY_CHUNK: usize = 256;

/// A customer's history, in the order applied: sealed chunks of [`HISTORY_CHUNK`] entries, shared
/// by every version of the record that holds them, and an open tail. Each change makes a new
/// record from the last one: copying a whole history each time made a hot customer's updates
/// cost O(n²) over its life; this copies at most the tail and one pointer per chunk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    sealed: Vec<Arc<[HistoryEntry]>>,
    tail: Vec<HistoryEntry>,
}

impl History {
    /// Adds `entry` after the others.
    pub fn push(&mut self, entry: HistoryEntry) {
        self.tail.push(entry);
        if self.tail.len() == HISTORY_CHUNK {
            self.sealed.push(Arc::from(std::mem::take(&mut self.tail)));
        }
    }

    /// The entries, in the order applied.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &HistoryEntry> + '_ {
        self.sealed
            .iter()
            .flat_map(|chunk| chunk.iter())
            .chain(self.tail.iter())
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.sealed.len() * HISTORY_CHUNK + self.tail.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first entry.
    pub fn first(&self) -> Option<&HistoryEntry> {
        self.iter().next()
    }

    /// The last entry.
    pub fn last(&self) -> Option<&HistoryEntry> {
        self.tail
            .last()
            .or_else(|| self.sealed.last().and_then(|chunk| chunk.last()))
    }
}

impl FromIterator<HistoryEntry> for History {
    fn from_iter<T: IntoIterator<Item = HistoryEntry>>(entries: T) -> Self {
        let mut history = History::default();
        for entry in entries {
            history.push(entry);
        }
        history
    }
}

/// One customer of the read model. A deleted customer stays as a tombstone: out of every index
/// and answer, but its history (and the event ids that dedupe retries) kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerRecord {
    /// The customer as the API answers it (as it was when deleted, for a tombstone).
    pub customer: Customer,
    /// Whether a `CustomerDeleted` or a `CustomerErased` applied.
    pub deleted: bool,
    /// Whether a `CustomerErased` applied: the customer keeps its ids, account, code, versions,
    /// times and history, and no personal field.
    pub erased: bool,
    /// The records that built it (duplicates included), in the order applied.
    pub history: History,
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
    /// Looked for from the newest record back: the events asked about are mostly recent ones.
    pub fn has_event(&self, event_id: Uuid) -> bool {
        self.history
            .iter()
            .rev()
            .any(|entry| entry.event_id == event_id)
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

    /// This record with its personal fields purged, as a `CustomerErased` leaves it: out of
    /// every answer, like a deleted one.
    pub fn erased(mut self) -> Self {
        let mut details =
            crate::domain::CustomerDetails::for_account(self.customer.details.account_id);
        details.code = self.customer.details.code.take();
        self.customer.details = details;
        self.deleted = true;
        self.erased = true;
        self
    }

    /// The customer, unless deleted.
    pub fn live_customer(&self) -> Option<&Customer> {
        (!self.deleted).then_some(&self.customer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(offset: i64) -> HistoryEntry {
        HistoryEntry {
            place: LogPlace {
                partition: 3,
                offset,
            },
            event_id: Uuid::from_u64_pair(0, offset as u64),
        }
    }

    #[test]
    fn a_history_keeps_its_order_across_chunks_and_its_clones_share_them() {
        let history: History = (0..600).map(entry).collect();
        assert_eq!(history.len(), 600);
        assert_eq!(history.first(), Some(&entry(0)));
        assert_eq!(history.last(), Some(&entry(599)));
        let offsets: Vec<i64> = history.iter().map(|entry| entry.place.offset).collect();
        assert_eq!(offsets, (0..600).collect::<Vec<_>>());
        assert_eq!(history.iter().next_back(), Some(&entry(599)));

        // What a change does: a new version of the record, from a clone, one entry longer.
        let mut next = history.clone();
        next.push(entry(600));
        assert_eq!(next.len(), 601);
        assert_eq!(history.len(), 600, "the old version is untouched");
        for (old, new) in history.sealed.iter().zip(&next.sealed) {
            assert!(
                Arc::ptr_eq(old, new),
                "sealed chunks are shared, not copied"
            );
        }
        let sealed_at_the_boundary: History = (0..HISTORY_CHUNK as i64).map(entry).collect();
        assert_eq!(sealed_at_the_boundary.last(), Some(&entry(255)));
        assert!(History::default().last().is_none() && History::default().is_empty());
    }

    #[test]
    fn has_event_finds_old_and_recent_events() {
        let record = CustomerRecord {
            customer: crate::domain::Customer::register(
                crate::domain::CustomerDetails::for_account(
                    crate::domain::AccountId::parse(1).unwrap(),
                ),
            ),
            deleted: false,
            erased: false,
            history: (0..700).map(entry).collect(),
        };
        assert!(record.has_event(Uuid::from_u64_pair(0, 0)));
        assert!(record.has_event(Uuid::from_u64_pair(0, 699)));
        assert!(!record.has_event(Uuid::from_u64_pair(0, 700)));
        assert_eq!(record.created_by(), Some(Uuid::from_u64_pair(0, 0)));
    }
}
