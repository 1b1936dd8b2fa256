//! Building customers from values the registry stored itself.
//!
//! The read model stores a customer only after the event carrying it was decoded, which checked
//! every field. Checking them again on every read (Unicode normalisation, the email grammar, the
//! country list) was most of what loading a customer cost, and a find loads up to a page of them.

use super::customer::CustomerDetails;
use super::fields::{
    City, CountryCode, Email, OrganizationName, PersonName, Phone, State, Street, ZipCode,
};
use super::text_field::TextField;

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
    use crate::domain::AccountId;

    #[test]
    fn trusted_values_read_back_as_set() {
        let mut details = CustomerDetails::for_account(AccountId::parse(7).unwrap());
        let mut trusted = details.clone();
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
            trusted.set_trusted_text(field, value.to_owned());
        }
        assert_eq!(trusted, details);
    }
}
