//! The write side: a validated create becomes a `CustomerCreated` event appended to Kafka.
//! Nothing else in the process writes to the topic.

mod event_log;
mod topic;

pub use event_log::{EventLog, EventLogError, LogPosition};
pub use topic::{ensure_topic, TopicError, TopicLayout};

use crate::domain::{Customer, CustomerCreated, CustomerDetails, RegistryEvent};

/// Registers a customer: assigns its id and creation time, and appends the `CustomerCreated`
/// event. Returns the customer once Kafka has confirmed the write, with where it landed.
///
/// # Errors
/// [`EventLogError`] when Kafka did not confirm the write.
pub async fn create_customer(
    event_log: &EventLog,
    details: CustomerDetails,
) -> Result<(Customer, LogPosition), EventLogError> {
    let customer = Customer::register(details);
    let event = RegistryEvent::CustomerCreated(CustomerCreated::new(customer.clone()));
    let position = event_log.append(&event).await?;
    Ok((customer, position))
}
