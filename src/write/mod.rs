//! The write side: a validated create becomes a `CustomerCreated` event appended to Kafka.
//! Nothing else in the process writes to the topic. The [`Registrar`] handles the command,
//! including idempotency keys and the wait for this replica's projection (read-your-writes).

mod event_log;
mod registrar;
mod topic;

pub use event_log::{EventLog, EventLogError, RecordPosition};
pub use registrar::{CreateError, Registered, Registrar};
pub use topic::{ensure_topic, existing_topic, TopicError, TopicLayout};
