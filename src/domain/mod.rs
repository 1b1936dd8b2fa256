//! The registry's domain: customers, the rules a create must pass, and the events of the public
//! contract in `events/`.

mod country_codes;
mod customer;
mod events;
mod fields;
mod idempotency;
mod text_field;
mod trusted;
mod validation;

pub use customer::{AccountId, Customer, CustomerDetails, CustomerId};
pub use events::{AuditTrail, CustomerCreated, EventDecodeError, RegistryEvent, SCHEMA_VERSION};
pub use fields::{
    is_blank, City, CountryCode, Email, OrganizationName, PersonName, Phone, RuleViolation, State,
    Street, ZipCode,
};
pub use idempotency::{IdempotencyKey, CUSTOMER_ID_NAMESPACE, EVENT_ID_NAMESPACE};
pub use text_field::TextField;
pub use validation::{shown, FieldError, FieldValue, ValidationErrors, NAME_SHOWN};
