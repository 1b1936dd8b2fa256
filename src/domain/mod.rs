//! The registry's domain: customers, the rules a create must pass, and the events of the public
//! contract in `events/`.

mod customer;
mod events;
mod validation;

pub use customer::{AccountId, Customer, CustomerDetails, CustomerId, TextField};
pub use events::{CustomerCreated, EventDecodeError, RegistryEvent, SCHEMA_VERSION};
pub use validation::{FieldError, FieldValue, ValidationErrors};
