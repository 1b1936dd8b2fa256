//! The write side's decisions, as pure functions of plain inputs: given a command and the facts
//! the registrar read (the customer's record, records read back from the log), which event to
//! append and what to answer. The registrar does the I/O around them (lock, settle, append, wait,
//! read back, retry); these say what to do, and their tests, in given/when/then form, need no
//! broker.
//!
//! - `change.rs`: the event an update or delete makes, and its fate once projected.

mod change;

pub use change::{change_event, fate, Fate};
