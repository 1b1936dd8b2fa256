//! The customer record: its identifiers and the fields of the seed's `Customer` object.

use chrono::{DateTime, Utc};

use super::code::{CodeShown, CustomerCode};
use super::fields::{
    City, CountryCode, Email, OrganizationName, PersonName, Phone, RuleViolation, State, Street,
    ZipCode,
};
use super::ids::{AccountId, CustomerId};
use super::text_field::TextField;

/// What a client supplies about a customer: everything but the server-assigned `id` and `createdAt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerDetails {
    /// The owning merchant account.
    pub account_id: AccountId,
    /// The merchant's own reference, fixed at create; `None` when it is the customer's id.
    pub code: Option<CustomerCode>,
    /// Given name.
    pub first_name: Option<PersonName>,
    /// Family name.
    pub last_name: Option<PersonName>,
    /// Company name.
    pub organization_name: Option<OrganizationName>,
    /// Email address.
    pub email: Option<Email>,
    /// Phone number, as given.
    pub phone: Option<Phone>,
    /// Street of the mailing address.
    pub street: Option<Street>,
    /// City of the mailing address.
    pub city: Option<City>,
    /// State code of the mailing address.
    pub state: Option<State>,
    /// ZIP or postal code of the mailing address.
    pub zip_code: Option<ZipCode>,
    /// Country code of the mailing address, upper-case.
    pub country_code: Option<CountryCode>,
}

impl CustomerDetails {
    /// Details with only the account set.
    pub fn for_account(account_id: AccountId) -> Self {
        Self {
            account_id,
            code: None,
            first_name: None,
            last_name: None,
            organization_name: None,
            email: None,
            phone: None,
            street: None,
            city: None,
            state: None,
            zip_code: None,
            country_code: None,
        }
    }

    /// The value of a text field, when present.
    pub fn text(&self, field: TextField) -> Option<&str> {
        match field {
            TextField::FirstName => self.first_name.as_ref().map(PersonName::as_str),
            TextField::LastName => self.last_name.as_ref().map(PersonName::as_str),
            TextField::OrganizationName => self
                .organization_name
                .as_ref()
                .map(OrganizationName::as_str),
            TextField::Email => self.email.as_ref().map(Email::as_str),
            TextField::Phone => self.phone.as_ref().map(Phone::as_str),
            TextField::Street => self.street.as_ref().map(Street::as_str),
            TextField::City => self.city.as_ref().map(City::as_str),
            TextField::State => self.state.as_ref().map(State::as_str),
            TextField::ZipCode => self.zip_code.as_ref().map(ZipCode::as_str),
            TextField::CountryCode => self.country_code.as_ref().map(CountryCode::as_str),
        }
    }

    /// Parses `raw` by `field`'s rule and sets the field.
    ///
    /// # Errors
    /// The rule `raw` broke; the field is left as it was.
    pub fn set_text(&mut self, field: TextField, raw: &str) -> Result<(), RuleViolation> {
        match field {
            TextField::FirstName => self.first_name = Some(PersonName::parse(raw)?),
            TextField::LastName => self.last_name = Some(PersonName::parse(raw)?),
            TextField::OrganizationName => {
                self.organization_name = Some(OrganizationName::parse(raw)?)
            }
            TextField::Email => self.email = Some(Email::parse(raw)?),
            TextField::Phone => self.phone = Some(Phone::parse(raw)?),
            TextField::Street => self.street = Some(Street::parse(raw)?),
            TextField::City => self.city = Some(City::parse(raw)?),
            TextField::State => self.state = Some(State::parse(raw)?),
            TextField::ZipCode => self.zip_code = Some(ZipCode::parse(raw)?),
            TextField::CountryCode => self.country_code = Some(CountryCode::parse(raw)?),
        }
        Ok(())
    }

    /// Leaves `field` absent.
    pub fn clear_text(&mut self, field: TextField) {
        match field {
            TextField::FirstName => self.first_name = None,
            TextField::LastName => self.last_name = None,
            TextField::OrganizationName => self.organization_name = None,
            TextField::Email => self.email = None,
            TextField::Phone => self.phone = None,
            TextField::Street => self.street = None,
            TextField::City => self.city = None,
            TextField::State => self.state = None,
            TextField::ZipCode => self.zip_code = None,
            TextField::CountryCode => self.country_code = None,
        }
    }
}

/// A registered customer, as the API answers it. Its JSON is flat: `id`, `code`, `accountId`,
/// each present text field in the seed's order, `createdAt`, `updatedAt`, `version`.
/// (`CustomerCreated` carries it without the last two: see [`super::customer_json::AsCreated`].)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    /// Server-assigned id.
    pub id: CustomerId,
    /// The client-supplied fields.
    pub details: CustomerDetails,
    /// Server-assigned creation time, UTC, millisecond precision.
    pub created_at: DateTime<Utc>,
    /// When the last event changed it: `createdAt` until its first update.
    pub updated_at: DateTime<Utc>,
    /// 1 after the create, one more per update or delete: the `ETag` and `If-Match` value.
    pub version: u64,
}

impl Customer {
    /// The customer's code: the one its create gave, else its id.
    pub fn code(&self) -> CodeShown<'_> {
        match &self.details.code {
            Some(code) => CodeShown::Given(code),
            None => CodeShown::Id(self.id),
        }
    }

    /// Whether the customer's code is `code` (exactly: codes are case-sensitive).
    pub fn has_code(&self, code: &CustomerCode) -> bool {
        match &self.details.code {
            Some(own) => own == code,
            None => self.id.is_written_as(code.as_str()),
        }
    }
}

impl Customer {
    /// Registers `details` now: assigns a fresh id and the creation time.
    pub fn register(details: CustomerDetails) -> Self {
        Self::register_as(CustomerId::new_v7(), details)
    }

    /// Registers `details` now under a given id (one derived from a code or an idempotency key).
    pub fn register_as(id: CustomerId, details: CustomerDetails) -> Self {
        Self::register_at(id, details, now_millis())
    }

    /// Registers `details` under `id` at `now`: version 1, created and last changed then.
    pub fn register_at(id: CustomerId, details: CustomerDetails, now: DateTime<Utc>) -> Self {
        Self {
            id,
            details,
            created_at: now,
            updated_at: now,
            version: 1,
        }
    }
}

/// The current time truncated to milliseconds, so what is stored equals what is shown.
pub fn now_millis() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_id_accepts_the_positive_32_bit_range_only() {
        assert_eq!(AccountId::parse(1).map(AccountId::get), Ok(1));
        assert_eq!(
            AccountId::parse(2_147_483_647).map(AccountId::get),
            Ok(2_147_483_647)
        );
        assert_eq!(AccountId::parse(0), Err(0));
        assert_eq!(AccountId::parse(-5), Err(-5));
        assert_eq!(AccountId::parse(2_147_483_648), Err(2_147_483_648));
    }

    #[test]
    fn fresh_ids_sort_by_creation() {
        let first = CustomerId::new_v7();
        let second = CustomerId::new_v7();
        assert!(first < second);
    }
}
