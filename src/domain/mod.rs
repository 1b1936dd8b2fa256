//! The registry's domain: customers, the rules a create or an update must pass, and the events of the public
//! contract in `events/`.

mod code;
mod country_codes;
mod customer;
mod customer_json;
mod events;
mod fields;
mod idempotency;
mod ids;
mod patch;
mod text_field;
mod trusted;
mod validation;

pub use code::{CodeShown, CustomerCode, CODE_NAMESPACE};
pub use country_codes::ASSIGNED_ALPHA_2;
pub use customer::{now_millis, Customer, CustomerDetails};
pub(crate) use customer_json::rfc3339_millis;
pub use events::{
    erased_event_id, erasure_id, open_published, sealing_context, AuditTrail, CustomerCreated,
    CustomerDeleted, CustomerErased, CustomerUpdated, ErasedAsEmpty, EventDecodeError, NoKeys,
    OpenError, Opener, RegistryEvent, SealedPersonal, ERASED_EVENT_NAMESPACE, ERASURE_NAMESPACE,
    PLAIN_SCHEMA_VERSION, SCHEMA_VERSION, SEALED_SCHEMA_VERSION,
};
pub use fields::{
    is_bidi_control, is_blank, is_noncharacter, City, CountryCode, Email, OrganizationName,
    PersonName, Phone, RuleViolation, State, Street, ZipCode,
};
pub use idempotency::{IdempotencyKey, CUSTOMER_ID_NAMESPACE, EVENT_ID_NAMESPACE};
pub use ids::{AccountId, CustomerId};
pub use patch::{CustomerPatch, FieldChange};
pub use text_field::TextField;
pub use validation::{
    shown, FieldError, FieldValue, ValidationErrors, NAME_SHOWN, SERVER_ASSIGNED,
};
