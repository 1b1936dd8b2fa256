//! The write side: a validated create becomes a `CustomerCreated` event appended to the event log
//! ([`crate::log::EventLog`], the only writer of the topic). The [`Registrar`] handles the command,
//! including idempotency keys and the wait for this replica's projection (read-your-writes).

mod registrar;

pub use registrar::{CreateError, Registered, Registrar};
