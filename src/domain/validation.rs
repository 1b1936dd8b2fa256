//! The rules a create must pass: raw fields in, [`CustomerDetails`] out, or every broken rule at once.

use super::code::CustomerCode;
use super::customer::CustomerDetails;
use super::fields::{is_blank, RuleViolation};
use super::ids::AccountId;
use super::text_field::TextField;
use serde::Serialize;
use std::collections::HashSet;
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
    /// `required`, `invalid_type`, `out_of_range`, `empty`, `too_long`, `invalid_format`,
    /// `control_character`, `unknown_field`, `repeated_field`, `server_assigned`, and for `find`
    /// `unknown_parameter` and `repeated_parameter`.
    pub code: &'static str,
    /// What was wrong, in words.
    pub message: String,
}

impl FieldError {
    /// An error of `field`.
    pub fn new(field: &str, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            code,
            message: message.into(),
        }
    }

    /// `field` broke the rule `violation` describes.
    pub fn broken(field: &str, violation: RuleViolation) -> Self {
        Self::new(
            field,
            violation.code,
            format!("{field} {}", violation.message),
        )
    }
}

/// Every rule a request broke, in the order the fields were checked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<FieldError>);

/// At most `chars` characters of `text`, and `…` when there were more: how a request's own words
/// (a member name, a header) are quoted back, so that a huge one is never echoed whole.
pub fn shown(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// How many characters of a name an error quotes.
pub const NAME_SHOWN: usize = 64;

/// How many fields a validation error's one-line description names; the rest are counted.
const FIELDS_NAMED: usize = 10;

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fields: Vec<&str> = self
            .0
            .iter()
            .take(FIELDS_NAMED)
            .map(|error| error.field.as_str())
            .collect();
        write!(f, "invalid fields: {}", fields.join(", "))?;
        match self.0.len().saturating_sub(FIELDS_NAMED) {
            0 => Ok(()),
            more => write!(f, " and {more} more"),
        }
    }
}

impl CustomerDetails {
    /// Parses the fields of a create request into details that satisfy every rule of the seed.
    ///
    /// An empty string or null leaves a field out (an absent `code` is the customer's id).
    /// `id`, `createdAt`, `updatedAt` and `version`
    /// are the server's to assign, so a client that sends them is refused, as is any field the seed lacks.
    ///
    /// # Errors
    /// Returns every broken rule, not only the first.
    pub fn parse(
        fields: impl IntoIterator<Item = (String, FieldValue)>,
    ) -> Result<CustomerDetails, ValidationErrors> {
        // Fields are checked in the order they came, so errors read in document order. The
        // account may come last; a stand-in holds its place and never leaves this function,
        // because a missing account is an error.
        let stand_in = AccountId::parse(1).expect("1 is a valid account id");
        let mut details = CustomerDetails::for_account(stand_in);
        let mut errors = Vec::new();
        let mut account_id = None;
        let mut seen: HashSet<String> = HashSet::new();
        for (name, value) in fields {
            if let Some(repeated) = repeated_field(&name, &mut seen) {
                errors.push(repeated);
                continue;
            }
            if name == "accountId" {
                match parse_account_id(value) {
                    Ok(parsed) => account_id = parsed,
                    Err(error) => errors.push(error),
                }
            } else if name == "code" {
                match parse_code(value) {
                    Ok(parsed) => details.code = parsed,
                    Err(error) => errors.push(error),
                }
            } else if let Some(field) = TextField::from_name(&name) {
                let checked = text_of(field, value).and_then(|text| match text {
                    Some(text) => details
                        .set_text(field, &text)
                        .map_err(|violation| FieldError::broken(field.name(), violation)),
                    None => Ok(()),
                });
                if let Err(error) = checked {
                    errors.push(error);
                }
            } else {
                errors.push(not_a_field(&name));
            }
        }
        match account_id {
            Some(account_id) => details.account_id = account_id,
            None if !errors.iter().any(|error| error.field == "accountId") => {
                let required = FieldError::new("accountId", "required", "accountId is required");
                errors.insert(0, required);
            }
            None => {}
        }
        if errors.is_empty() {
            Ok(details)
        } else {
            Err(ValidationErrors(errors))
        }
    }
}

/// `repeated_field` when `name` is in `seen` already; otherwise records it.
pub(super) fn repeated_field(name: &str, seen: &mut HashSet<String>) -> Option<FieldError> {
    if seen.insert(name.to_owned()) {
        return None;
    }
    let quoted = shown(name, NAME_SHOWN);
    let message = format!("{quoted} may be given once");
    Some(FieldError::new(&quoted, "repeated_field", message))
}

/// The members of a customer the server assigns, which no body may send.
pub const SERVER_ASSIGNED: [&str; 4] = ["id", "createdAt", "updatedAt", "version"];

/// The error of a body member that names no field a client may send: `server_assigned` for the
/// server's own (`id`, `createdAt`, `updatedAt`, `version`), `unknown_field` for anything else.
pub(super) fn not_a_field(name: &str) -> FieldError {
    if SERVER_ASSIGNED.contains(&name) {
        let message = format!("{name} is assigned by the server and must not be sent");
        return FieldError::new(name, "server_assigned", message);
    }
    let quoted = shown(name, NAME_SHOWN);
    let message = format!("{quoted} is not a field of Customer");
    FieldError::new(&quoted, "unknown_field", message)
}

fn parse_account_id(value: FieldValue) -> Result<Option<AccountId>, FieldError> {
    let wrong_type = |kind: &str| {
        let message = format!("accountId must be an integer, got {kind}");
        FieldError::new("accountId", "invalid_type", message)
    };
    match value {
        FieldValue::Null => Ok(None),
        FieldValue::Integer(number) => AccountId::parse(number).map(Some).map_err(|number| {
            let message = format!("accountId must be in 1..={}, got {number}", AccountId::MAX);
            FieldError::new("accountId", "out_of_range", message)
        }),
        FieldValue::Text(_) => Err(wrong_type("a string")),
        FieldValue::Other(kind) => Err(wrong_type(kind)),
    }
}

/// A create's `code`: `None` for null or blank text (the code is then the customer's id).
fn parse_code(value: FieldValue) -> Result<Option<CustomerCode>, FieldError> {
    text_named("code", value)?
        .map(|text| {
            CustomerCode::parse(&text).map_err(|violation| FieldError::broken("code", violation))
        })
        .transpose()
}

/// The text of a text field; `None` for null or blank text, which leave the field out.
pub(super) fn text_of(field: TextField, value: FieldValue) -> Result<Option<String>, FieldError> {
    text_named(field.name(), value)
}

/// The text of the string field `name`; `None` for null or blank text.
fn text_named(name: &str, value: FieldValue) -> Result<Option<String>, FieldError> {
    let wrong_type = |kind: &str| {
        let message = format!("{name} must be a string, got {kind}");
        FieldError::new(name, "invalid_type", message)
    };
    match value {
        FieldValue::Null => Ok(None),
        FieldValue::Text(text) if is_blank(&text) => Ok(None),
        FieldValue::Text(text) => Ok(Some(text)),
        FieldValue::Integer(_) => Err(wrong_type("a number")),
        FieldValue::Other(kind) => Err(wrong_type(kind)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Customer;

    #[test]
    fn invisible_values_are_blank_but_control_characters_are_refused() {
        let details = parse(vec![
            ("accountId", FieldValue::Integer(1)),
            ("firstName", text("\u{200B}\u{FEFF}")),
            ("city", text(" \u{2060} ")),
        ])
        .unwrap();
        assert_eq!(
            details,
            parse(vec![("accountId", FieldValue::Integer(1))]).unwrap()
        );
        let refused = parse(vec![
            ("accountId", FieldValue::Integer(1)),
            ("firstName", text("\u{85}")),
            ("lastName", text("Lee\u{85}")),
            // A bidirectional control alone is not blank: it is refused, never read as nothing.
            ("email", text("\u{202E}")),
            ("city", text(" \u{2067} ")),
            ("code", text("\u{202E}")),
        ]);
        assert_eq!(
            codes(refused),
            vec![
                ("firstName".to_owned(), "control_character"),
                ("lastName".to_owned(), "control_character"),
                ("email".to_owned(), "control_character"),
                ("city".to_owned(), "control_character"),
                ("code".to_owned(), "invalid_format"),
            ]
        );
    }

    #[test]
    fn quoted_words_are_cut_at_a_character_not_a_byte() {
        assert_eq!(shown("short", 10), "short");
        assert_eq!(shown("exactly10!", 10), "exactly10!");
        assert_eq!(shown("ééééé", 3), "ééé…");
        assert_eq!(shown("", 3), "");
    }

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
    fn a_field_given_twice_is_refused() {
        let result = parse(vec![
            ("accountId", FieldValue::Integer(1)),
            ("city", text("Paris")),
            ("city", text("Lyon")),
        ]);
        assert_eq!(codes(result), vec![("city".to_owned(), "repeated_field")]);
    }

    #[test]
    fn account_id_out_of_range_is_named() {
        let result = parse(vec![("accountId", FieldValue::Integer(0))]);
        assert_eq!(
            codes(result),
            vec![("accountId".to_owned(), "out_of_range")]
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn field_name() -> impl Strategy<Value = String> {
            prop_oneof![
                proptest::sample::select(TextField::ALL.map(TextField::name).to_vec())
                    .prop_map(str::to_owned),
                Just("accountId".to_owned()),
                "[a-zA-Z]{1,12}",
            ]
        }

        fn field_value() -> impl Strategy<Value = FieldValue> {
            prop_oneof![
                Just(FieldValue::Null),
                any::<i64>().prop_map(FieldValue::Integer),
                any::<String>().prop_map(FieldValue::Text),
                "[ a-zA-Z0-9@.()+\\-éÉüß]{0,20}".prop_map(FieldValue::Text),
                Just(FieldValue::Other("a boolean")),
            ]
        }

        proptest! {
            /// Whatever arrives, parsing answers (never panics), and what it accepts survives a
            /// trip through its JSON form unchanged.
            #[test]
            fn accepted_details_round_trip(
                fields in proptest::collection::vec((field_name(), field_value()), 0..8)
            ) {
                if let Ok(details) = CustomerDetails::parse(fields) {
                    // The customer's JSON, without what the server assigns.
                    let json = serde_json::to_value(Customer::register(details.clone())).unwrap();
                    let again: Vec<(String, FieldValue)> = json
                        .as_object()
                        .unwrap()
                        .iter()
                        .filter(|(name, _)| !["id", "createdAt"].contains(&name.as_str()))
                        .map(|(name, value)| {
                            let value = match value {
                                serde_json::Value::Number(n) => FieldValue::Integer(n.as_i64().unwrap()),
                                serde_json::Value::String(text) => FieldValue::Text(text.clone()),
                                other => panic!("unexpected {other}"),
                            };
                            (name.clone(), value)
                        })
                        .collect();
                    prop_assert_eq!(CustomerDetails::parse(again), Ok(details));
                }
            }

            /// Every text rule is idempotent: a parsed value parses to itself.
            #[test]
            fn parsing_is_idempotent(raw in any::<String>(), field in proptest::sample::select(TextField::ALL.to_vec())) {
                let mut details = CustomerDetails::for_account(AccountId::parse(1).unwrap());
                if details.set_text(field, &raw).is_ok() {
                    let parsed = details.text(field).unwrap().to_owned();
                    let mut again = CustomerDetails::for_account(AccountId::parse(1).unwrap());
                    prop_assert!(again.set_text(field, &parsed).is_ok());
                    prop_assert_eq!(again.text(field), Some(parsed.as_str()));
                }
            }
        }
    }
}
