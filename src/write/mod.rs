//! The write side: a validated command becomes an event appended to the event log
//! ([`crate::log::EventLog`], the only writer of the topic): a create a `CustomerCreated`, an
//! update or delete a `CustomerUpdated` or `CustomerDeleted` naming the version it gives the
//! customer, an erasure a `CustomerErased` after its keys are destroyed. The [`Registrar`] handles the commands, including idempotency keys on creates, and
//! the wait for this replica's projection (read-your-writes).

mod changes;
mod decide;
mod erasure;
mod registrar;

pub use changes::{ChangeError, Changed, Condition, MAX_ATTEMPTS, MAX_BACKOFF_MS};
pub use decide::ChangeKind;
pub use erasure::{Erasure, ErasureError, ErasurePlaces};
pub use registrar::{CreateError, Registered, Registrar, CREATE_DEADLINE};
