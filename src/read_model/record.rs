//! A customer as the read model holds it: the customer, the event that last changed it, and where
//! the records that built it are in the log.

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

/// One customer of the read model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerRecord {
    /// The customer as the API answers it.
    pub customer: Customer,
    /// The event that last changed it: a record carrying the same event again is a duplicate.
    pub last_event_id: Uuid,
    /// Where each record that built it (duplicates included) is in the log, in the order applied.
    pub history: Vec<LogPlace>,
}

impl CustomerRecord {
    /// This record with `place` in its history, once: applying the same record again after a
    /// crash adds nothing.
    pub fn with_place(mut self, place: LogPlace) -> Self {
        if !self.history.contains(&place) {
            self.history.push(place);
        }
        self
    }
}
