//! The write side's decisions, as pure functions of plain inputs: given a command and the facts
//! the registrar read (the customer's record, records read back from the log), which event to
//! append and what to answer. The registrar does the I/O around them (lock, settle, append, wait,
//! read back, retry); these say what to do, and their tests, in given/when/then form, need no
//! broker.
//!
//! - `create.rs`: a create's ids, the partitions it is decided on, its event, and the verdict
//!   on a customer the log already holds under its id (a key's retry, a reused key, a code
//!   taken);
//! - `change.rs`: how the customer stands against `If-Match`, the event an update or delete
//!   makes, and its fate once projected; a keyed change's ids and headers, and what the
//!   customer's event ids and records read back say of its key;
//! - here: whether a replica that waited for a customer's partition's end may decide on what it
//!   holds ([`behind`]), for creates and changes alike.

mod change;
mod create;

pub use change::{
    change_event, fate, fold, standing, ChangeKind, Fate, KeyUse, Keyed, Retry, Standing,
};
pub use create::{
    code_as_customer_id, code_taken_as_an_id, create_ids, created_event, settle_first, verdict,
    CreateIds, Refusal, Verdict,
};

use crate::log::LogPosition;

/// Whether a replica that waited for the end of a customer's partition is too far behind it to
/// decide a create or change; `reach` is that end, as Kafka reported it when asked, and whether
/// this replica applied the log up to it within the wait, or `None` when the end could not be
/// read. `Some(end)` when it did not get there (503, retry shortly: an event acknowledged for
/// the customer may lie beyond what it holds). `None` to go on: it got there, or the end is not
/// known now, and then it goes on with what it holds rather than refuse every create and change
/// while Kafka's metadata cannot be read.
pub fn behind(reach: Option<(LogPosition, bool)>) -> Option<LogPosition> {
    match reach {
        Some((end, false)) => Some(end),
        Some((_, true)) | None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end() -> LogPosition {
        LogPosition::from_next_offsets([(3, 120)].into())
    }

    #[test]
    fn a_replica_that_did_not_reach_the_partitions_end_within_the_wait_is_behind() {
        assert_eq!(behind(Some((end(), false))), Some(end()));
    }

    #[test]
    fn a_replica_that_reached_the_partitions_end_decides() {
        assert_eq!(behind(Some((end(), true))), None);
    }

    #[test]
    fn a_partition_end_that_cannot_be_read_leaves_the_decision_to_what_is_held() {
        assert_eq!(behind(None), None);
    }
}
