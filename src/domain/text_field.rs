//! The names of the optional text fields, for code that treats them alike (validation, indexes,
//! filters).

use super::fields::{
    bounded_prefix, City, CountryCode, Email, OrganizationName, PersonName, Phone, RuleViolation,
    State, Street, ZipCode,
};

/// The optional text fields of a customer, in the seed's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextField {
    /// `firstName`.
    FirstName,
    /// `lastName`.
    LastName,
    /// `organizationName`.
    OrganizationName,
    /// `email`.
    Email,
    /// `phone`.
    Phone,
    /// `street`.
    Street,
    /// `city`.
    City,
    /// `state`.
    State,
    /// `zipCode`.
    ZipCode,
    /// `countryCode`.
    CountryCode,
}

impl TextField {
    /// Every text field, in the seed's order.
    pub const ALL: [TextField; 10] = [
        TextField::FirstName,
        TextField::LastName,
        TextField::OrganizationName,
        TextField::Email,
        TextField::Phone,
        TextField::Street,
        TextField::City,
        TextField::State,
        TextField::ZipCode,
        TextField::CountryCode,
    ];

    /// The field's name in JSON, query strings and XML.
    pub fn name(self) -> &'static str {
        match self {
            TextField::FirstName => "firstName",
            TextField::LastName => "lastName",
            TextField::OrganizationName => "organizationName",
            TextField::Email => "email",
            TextField::Phone => "phone",
            TextField::Street => "street",
            TextField::City => "city",
            TextField::State => "state",
            TextField::ZipCode => "zipCode",
            TextField::CountryCode => "countryCode",
        }
    }

    /// The field named `name`, if any.
    pub fn from_name(name: &str) -> Option<TextField> {
        Self::ALL.into_iter().find(|field| field.name() == name)
    }

    /// The most characters a value of the field holds (after trimming and NFC).
    pub fn max_chars(self) -> usize {
        match self {
            TextField::FirstName | TextField::LastName => PersonName::MAX_CHARS,
            TextField::OrganizationName => OrganizationName::MAX_CHARS,
            TextField::Email => Email::MAX_CHARS,
            TextField::Phone => Phone::MAX_CHARS,
            TextField::Street => Street::MAX_CHARS,
            TextField::City => City::MAX_CHARS,
            TextField::State => State::MAX_CHARS,
            TextField::ZipCode => ZipCode::MAX_CHARS,
            TextField::CountryCode => CountryCode::MAX_CHARS,
        }
    }

    /// Checks a `find` filter by the field's rule, as far as a prefix can be checked: `state` and
    /// `countryCode` must be whole valid values, `phone` and `zipCode` keep to their alphabets,
    /// other text to its length. Returns the value NFC-normalised and trimmed; a prefix keeps its
    /// trailing spaces (`city=New%20` finds New York, not Newark).
    ///
    /// # Errors
    /// The rule the filter broke.
    pub fn parse_filter(self, raw: &str) -> Result<String, RuleViolation> {
        match self {
            TextField::FirstName
            | TextField::LastName
            | TextField::OrganizationName
            | TextField::Email
            | TextField::Street
            | TextField::City => bounded_prefix(raw, self.max_chars()),
            TextField::Phone => Phone::parse(raw).map(String::from),
            TextField::State => State::parse(raw).map(String::from),
            TextField::ZipCode => ZipCode::parse(raw).map(String::from),
            TextField::CountryCode => CountryCode::parse(raw).map(String::from),
        }
    }
}
