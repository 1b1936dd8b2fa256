//! Reading back customers the registry stored itself.
//!
//! The read model stores a customer's JSON only after the event carrying it was decoded, which
//! checked every field. Checking them again on every read (Unicode normalisation, the email
//! grammar, the country list) and serde's `flatten` (which buffers every field) were most of what
//! loading a customer cost, and a find loads up to a page of them.

use super::customer::{rfc3339_millis, AccountId, Customer, CustomerDetails, CustomerId};
use super::fields::{
    City, CountryCode, Email, OrganizationName, PersonName, Phone, State, Street, ZipCode,
};
use super::text_field::TextField;
use chrono::{DateTime, Utc};
use serde::Deserialize;

/// The stored JSON, field by field.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredCustomer {
    id: CustomerId,
    account_id: AccountId,
    first_name: Option<String>,
    last_name: Option<String>,
    organization_name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    street: Option<String>,
    city: Option<String>,
    state: Option<String>,
    zip_code: Option<String>,
    country_code: Option<String>,
    #[serde(with = "rfc3339_millis")]
    created_at: DateTime<Utc>,
}

impl Customer {
    /// Decodes a customer's JSON as this registry stored it, without checking the field rules
    /// again: only for bytes the registry wrote itself, after checking them.
    ///
    /// # Errors
    /// When the bytes are not a customer's JSON.
    pub fn from_trusted_json(bytes: &[u8]) -> Result<Customer, serde_json::Error> {
        let stored: StoredCustomer = serde_json::from_slice(bytes)?;
        Ok(Customer {
            id: stored.id,
            details: CustomerDetails {
                account_id: stored.account_id,
                first_name: stored.first_name.map(PersonName::trusted),
                last_name: stored.last_name.map(PersonName::trusted),
                organization_name: stored.organization_name.map(OrganizationName::trusted),
                email: stored.email.map(Email::trusted),
                phone: stored.phone.map(Phone::trusted),
                street: stored.street.map(Street::trusted),
                city: stored.city.map(City::trusted),
                state: stored.state.map(State::trusted),
                zip_code: stored.zip_code.map(ZipCode::trusted),
                country_code: stored.country_code.map(CountryCode::trusted),
            },
            created_at: stored.created_at,
        })
    }
}

impl CustomerDetails {
    /// Sets `field` to a value this registry checked and stored itself, without checking it
    /// again: only for the read model's own bytes.
    pub fn set_trusted_text(&mut self, field: TextField, value: String) {
        match field {
            TextField::FirstName => self.first_name = Some(PersonName::trusted(value)),
            TextField::LastName => self.last_name = Some(PersonName::trusted(value)),
            TextField::OrganizationName => {
                self.organization_name = Some(OrganizationName::trusted(value))
            }
            TextField::Email => self.email = Some(Email::trusted(value)),
            TextField::Phone => self.phone = Some(Phone::trusted(value)),
            TextField::Street => self.street = Some(Street::trusted(value)),
            TextField::City => self.city = Some(City::trusted(value)),
            TextField::State => self.state = Some(State::trusted(value)),
            TextField::ZipCode => self.zip_code = Some(ZipCode::trusted(value)),
            TextField::CountryCode => self.country_code = Some(CountryCode::trusted(value)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_customer_reads_back_equal() {
        let mut details = CustomerDetails::for_account(AccountId::parse(7).unwrap());
        for (field, value) in [
            (TextField::FirstName, "José"),
            (TextField::LastName, "Søndergaard-Müller"),
            (TextField::OrganizationName, "Acme \"Widgets\""),
            (TextField::Email, "jose@example.com"),
            (TextField::Phone, "+45 12 34 56 78"),
            (TextField::Street, "1 Ærø Vej"),
            (TextField::City, "Ærøskøbing"),
            (TextField::State, "85"),
            (TextField::ZipCode, "5970"),
            (TextField::CountryCode, "DK"),
        ] {
            details.set_text(field, value).unwrap();
        }
        let full = Customer::register(details);
        let sparse = Customer::register(CustomerDetails::for_account(AccountId::parse(8).unwrap()));
        for customer in [full, sparse] {
            let json = serde_json::to_vec(&customer).unwrap();
            assert_eq!(Customer::from_trusted_json(&json).unwrap(), customer);
        }
    }

    #[test]
    fn bytes_that_are_not_a_customer_are_an_error() {
        assert!(Customer::from_trusted_json(b"{\"id\": 5}").is_err());
        assert!(Customer::from_trusted_json(b"not json").is_err());
    }
}
