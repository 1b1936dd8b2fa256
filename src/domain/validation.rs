//! The rules a create must pass: raw fields in, [`CustomerDetails`] out, or every broken rule at once.

use super::customer::{AccountId, CustomerDetails, TextField};
use serde::Serialize;
use std::fmt;

/// A field's value as a request carried it, before any rule is applied.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// An explicit null: the same as leaving the field out.
    Null,
    /// A string.
    Text(String),
    /// A whole number.
    Integer(i64),
    /// Any other kind of value, named for the error message (`"boolean"`, `"array"`, ...).
    Other(&'static str),
}

/// One broken rule: which field, a machine-readable code, and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field's name as the client spelled it.
    pub field: String,
    /// `required`, `invalid_type`, `out_of_range`, `too_long`, `invalid_format`,
    /// `control_character`, `unknown_field` or `server_assigned`.
    pub code: &'static str,
    /// What was wrong, in words.
    pub message: String,
}

impl FieldError {
    fn new(field: &str, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            code,
            message: message.into(),
        }
    }
}

/// Every rule a request broke, in the order the fields were checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fields: Vec<&str> = self.0.iter().map(|error| error.field.as_str()).collect();
        write!(f, "invalid fields: {}", fields.join(", "))
    }
}

impl CustomerDetails {
    /// Parses the fields of a create request into details that satisfy every rule of the seed.
    ///
    /// Text is trimmed; an empty string or null leaves the field out. `id` and `createdAt` are the
    /// server's to assign, so a client that sends them is refused, as is any field the seed lacks.
    ///
    /// # Errors
    /// Returns every broken rule, not only the first.
    pub fn parse(
        fields: impl IntoIterator<Item = (String, FieldValue)>,
    ) -> Result<CustomerDetails, ValidationErrors> {
        let mut errors = Vec::new();
        let mut account_id = None;
        let mut texts: Vec<(TextField, String)> = Vec::new();
        for (name, value) in fields {
            if name == "accountId" {
                match parse_account_id(value) {
                    Ok(parsed) => account_id = parsed,
                    Err(error) => errors.push(error),
                }
            } else if let Some(field) = TextField::from_name(&name) {
                match parse_text(field, value) {
                    Ok(Some(text)) => texts.push((field, text)),
                    Ok(None) => {}
                    Err(error) => errors.push(error),
                }
            } else if name == "id" || name == "createdAt" {
                errors.push(FieldError::new(
                    &name,
                    "server_assigned",
                    format!("{name} is assigned by the server and must not be sent"),
                ));
            } else {
                errors.push(FieldError::new(
                    &name,
                    "unknown_field",
                    format!("{name} is not a field of Customer"),
                ));
            }
        }
        let Some(account_id) = account_id else {
            if !errors.iter().any(|error| error.field == "accountId") {
                errors.insert(
                    0,
                    FieldError::new("accountId", "required", "accountId is required"),
                );
            }
            return Err(ValidationErrors(errors));
        };
        if !errors.is_empty() {
            return Err(ValidationErrors(errors));
        }
        let mut details = CustomerDetails::for_account(account_id);
        for (field, text) in texts {
            *details.text_slot_mut(field) = Some(text);
        }
        Ok(details)
    }
}

fn parse_account_id(value: FieldValue) -> Result<Option<AccountId>, FieldError> {
    match value {
        FieldValue::Null => Ok(None),
        FieldValue::Integer(number) => AccountId::parse(number).map(Some).map_err(|number| {
            FieldError::new(
                "accountId",
                "out_of_range",
                format!("accountId must be in 1..={}, got {number}", AccountId::MAX),
            )
        }),
        FieldValue::Text(_) => Err(FieldError::new(
            "accountId",
            "invalid_type",
            "accountId must be an integer, got a string",
        )),
        FieldValue::Other(kind) => Err(FieldError::new(
            "accountId",
            "invalid_type",
            format!("accountId must be an integer, got {kind}"),
        )),
    }
}

fn parse_text(field: TextField, value: FieldValue) -> Result<Option<String>, FieldError> {
    let name = field.name();
    let raw = match value {
        FieldValue::Null => return Ok(None),
        FieldValue::Text(text) => text,
        FieldValue::Integer(_) => {
            return Err(FieldError::new(
                name,
                "invalid_type",
                format!("{name} must be a string, got a number"),
            ))
        }
        FieldValue::Other(kind) => {
            return Err(FieldError::new(
                name,
                "invalid_type",
                format!("{name} must be a string, got {kind}"),
            ))
        }
    };
    let text = raw.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if text.chars().any(char::is_control) {
        return Err(FieldError::new(
            name,
            "control_character",
            format!("{name} must not contain control characters"),
        ));
    }
    let counted = if field == TextField::Phone {
        text.chars().filter(char::is_ascii_digit).count()
    } else {
        text.chars().count()
    };
    if counted > field.max_len() {
        let unit = if field == TextField::Phone {
            "digits"
        } else {
            "characters"
        };
        return Err(FieldError::new(
            name,
            "too_long",
            format!(
                "{name} must be at most {} {unit}, got {counted}",
                field.max_len()
            ),
        ));
    }
    check_format(field, text)?;
    Ok(Some(if field == TextField::CountryCode {
        text.to_ascii_uppercase()
    } else {
        text.to_owned()
    }))
}

/// The shape rules of the fields that have one.
fn check_format(field: TextField, text: &str) -> Result<(), FieldError> {
    let (valid, rule) = match field {
        TextField::Email => (
            text.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && !domain.is_empty()
                    && !domain.contains('@')
                    && !text.chars().any(char::is_whitespace)
            }),
            "an address like name@example.com",
        ),
        TextField::Phone => (
            text.chars().any(|c| c.is_ascii_digit())
                && text
                    .chars()
                    .all(|c| c.is_ascii_digit() || " +-.()".contains(c)),
            "digits, optionally formatted with + - . ( ) and spaces",
        ),
        TextField::State => (text.chars().all(char::is_alphanumeric), "letters or digits"),
        TextField::ZipCode => (
            text.chars()
                .all(|c| c.is_alphanumeric() || c == ' ' || c == '-'),
            "letters, digits, spaces or dashes",
        ),
        TextField::CountryCode => (
            text.len() == 2 && text.chars().all(|c| c.is_ascii_alphabetic()),
            "a two-letter ISO 3166-1 alpha-2 code",
        ),
        _ => (true, ""),
    };
    if valid {
        Ok(())
    } else {
        let name = field.name();
        Err(FieldError::new(
            name,
            "invalid_format",
            format!("{name} must be {rule}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: &str) -> FieldValue {
        FieldValue::Text(value.to_owned())
    }

    fn parse(fields: Vec<(&str, FieldValue)>) -> Result<CustomerDetails, ValidationErrors> {
        CustomerDetails::parse(
            fields
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value)),
        )
    }

    fn codes(result: Result<CustomerDetails, ValidationErrors>) -> Vec<(String, &'static str)> {
        result
            .unwrap_err()
            .0
            .into_iter()
            .map(|error| (error.field, error.code))
            .collect()
    }

    #[test]
    fn a_minimal_customer_needs_only_an_account() {
        let details = parse(vec![("accountId", FieldValue::Integer(7))]).unwrap();
        assert_eq!(details.account_id.get(), 7);
        assert_eq!(details.text(TextField::LastName), None);
    }

    #[test]
    fn text_is_trimmed_and_empty_text_is_absent() {
        let details = parse(vec![
            ("accountId", FieldValue::Integer(7)),
            ("lastName", text("  Hamilton ")),
            ("city", text("   ")),
            ("countryCode", text("us")),
        ])
        .unwrap();
        assert_eq!(details.text(TextField::LastName), Some("Hamilton"));
        assert_eq!(details.text(TextField::City), None);
        assert_eq!(details.text(TextField::CountryCode), Some("US"));
    }

    #[test]
    fn every_broken_rule_is_reported() {
        let result = parse(vec![
            ("lastname", text("typo")),
            ("firstName", text(&"é".repeat(126))),
            ("email", text("no-at-sign")),
            ("id", text("x")),
        ]);
        assert_eq!(
            codes(result),
            vec![
                ("accountId".to_owned(), "required"),
                ("lastname".to_owned(), "unknown_field"),
                ("firstName".to_owned(), "too_long"),
                ("email".to_owned(), "invalid_format"),
                ("id".to_owned(), "server_assigned"),
            ]
        );
    }

    #[test]
    fn lengths_count_characters_at_the_edge() {
        let at_edge = parse(vec![
            ("accountId", FieldValue::Integer(1)),
            ("firstName", text(&"É".repeat(125))),
        ]);
        assert!(at_edge.is_ok());
        let past_edge = parse(vec![
            ("accountId", FieldValue::Integer(1)),
            ("city", text(&"a".repeat(51))),
        ]);
        assert_eq!(codes(past_edge), vec![("city".to_owned(), "too_long")]);
    }

    #[test]
    fn phone_counts_digits_and_keeps_its_formatting() {
        let details = parse(vec![
            ("accountId", FieldValue::Integer(1)),
            ("phone", text("+1 (212) 555-0101")),
        ])
        .unwrap();
        assert_eq!(details.text(TextField::Phone), Some("+1 (212) 555-0101"));
        let too_many = parse(vec![
            ("accountId", FieldValue::Integer(1)),
            ("phone", text("1234567890123456")),
        ]);
        assert_eq!(codes(too_many), vec![("phone".to_owned(), "too_long")]);
    }

    #[test]
    fn control_characters_and_wrong_types_are_refused() {
        let result = parse(vec![
            ("accountId", text("12")),
            ("street", text("Main\u{0007}Street")),
            ("city", FieldValue::Other("boolean")),
        ]);
        assert_eq!(
            codes(result),
            vec![
                ("accountId".to_owned(), "invalid_type"),
                ("street".to_owned(), "control_character"),
                ("city".to_owned(), "invalid_type"),
            ]
        );
    }

    #[test]
    fn account_id_out_of_range_is_named() {
        let result = parse(vec![("accountId", FieldValue::Integer(0))]);
        assert_eq!(
            codes(result),
            vec![("accountId".to_owned(), "out_of_range")]
        );
    }
}
