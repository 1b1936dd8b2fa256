//! The `find` query: parsed from query-string pairs, and the matching rule of each filter.

use crate::domain::{AccountId, Customer, FieldError, TextField, ValidationErrors};

/// Default page size, as the seed gives it.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest page a client may ask for.
pub const MAX_LIMIT: usize = 1000;

/// A validated `find`: filters combined with AND, and the page to return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerQuery {
    /// Exact account match.
    pub account_id: Option<AccountId>,
    /// Text filters, each value already normalised for matching (see [`CustomerQuery::matches`]).
    pub text_filters: Vec<(TextField, String)>,
    /// Matches to skip.
    pub offset: usize,
    /// Most matches to return.
    pub limit: usize,
}

impl Default for CustomerQuery {
    fn default() -> Self {
        Self {
            account_id: None,
            text_filters: Vec::new(),
            offset: 0,
            limit: DEFAULT_LIMIT,
        }
    }
}

impl CustomerQuery {
    /// Parses query-string pairs (already percent-decoded).
    ///
    /// An empty filter value means no filter. Each parameter may appear once.
    ///
    /// # Errors
    /// Every unknown or repeated parameter and every value that breaks its field's rule.
    pub fn parse(pairs: &[(String, String)]) -> Result<CustomerQuery, ValidationErrors> {
        let mut query = CustomerQuery::default();
        let mut errors = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        for (name, value) in pairs {
            if seen.contains(&name.as_str()) {
                errors.push(error(
                    name,
                    "repeated_parameter",
                    format!("{name} may be given once"),
                ));
                continue;
            }
            seen.push(name);
            let value = value.trim();
            let outcome = match name.as_str() {
                "offset" => parse_count(name, value, 0, usize::MAX).map(|n| query.offset = n),
                "limit" => parse_count(name, value, 1, MAX_LIMIT).map(|n| query.limit = n),
                "accountId" if value.is_empty() => Ok(()),
                "accountId" => parse_account(value).map(|id| query.account_id = Some(id)),
                _ => match TextField::from_name(name) {
                    Some(_) if value.is_empty() => Ok(()),
                    Some(field) => parse_filter(field, value)
                        .map(|needle| query.text_filters.push((field, needle))),
                    None => Err(error(
                        name,
                        "unknown_parameter",
                        format!("{name} is not a parameter of find"),
                    )),
                },
            };
            if let Err(broken) = outcome {
                errors.push(broken);
            }
        }
        if errors.is_empty() {
            Ok(query)
        } else {
            Err(ValidationErrors(errors))
        }
    }

    /// Whether `customer` passes every filter: text filters are case-insensitive prefixes,
    /// `phone` a prefix of the digits alone, `state` and `countryCode` exact but case-insensitive,
    /// `accountId` exact.
    pub fn matches(&self, customer: &Customer) -> bool {
        let details = &customer.details;
        self.account_id.is_none_or(|id| id == details.account_id)
            && self.text_filters.iter().all(|(field, needle)| {
                details.text(*field).is_some_and(|value| {
                    let value = normalise(*field, value);
                    if is_exact(*field) {
                        value == *needle
                    } else {
                        value.starts_with(needle.as_str())
                    }
                })
            })
    }
}

/// `state` and `countryCode` match whole values; the other text fields match prefixes.
fn is_exact(field: TextField) -> bool {
    matches!(field, TextField::State | TextField::CountryCode)
}

/// The form both sides of a comparison take: lower case, and for phones the digits alone.
fn normalise(field: TextField, value: &str) -> String {
    if field == TextField::Phone {
        value.chars().filter(char::is_ascii_digit).collect()
    } else {
        value.to_lowercase()
    }
}

fn error(name: &str, code: &'static str, message: String) -> FieldError {
    FieldError {
        field: name.to_owned(),
        code,
        message,
    }
}

fn parse_count(name: &str, value: &str, min: usize, max: usize) -> Result<usize, FieldError> {
    let rule = if max == usize::MAX {
        format!("{name} must be a whole number ≥ {min}")
    } else {
        format!("{name} must be a whole number in {min}..={max}")
    };
    match value.parse::<usize>() {
        Ok(number) if (min..=max).contains(&number) => Ok(number),
        Ok(_) => Err(error(name, "out_of_range", rule)),
        Err(_) => Err(error(name, "invalid_type", rule)),
    }
}

fn parse_account(value: &str) -> Result<AccountId, FieldError> {
    let number: i64 = value.parse().map_err(|_| {
        error(
            "accountId",
            "invalid_type",
            "accountId must be an integer".into(),
        )
    })?;
    AccountId::parse(number).map_err(|_| {
        error(
            "accountId",
            "out_of_range",
            format!("accountId must be in 1..={}", AccountId::MAX),
        )
    })
}

fn parse_filter(field: TextField, value: &str) -> Result<String, FieldError> {
    let name = field.name();
    if value.chars().any(char::is_control) {
        return Err(error(
            name,
            "control_character",
            format!("{name} must not contain control characters"),
        ));
    }
    let needle = normalise(field, value);
    let length = if field == TextField::Phone {
        needle.len()
    } else {
        value.chars().count()
    };
    if length > field.max_len() {
        return Err(error(
            name,
            "too_long",
            format!("{name} must be at most {} characters", field.max_len()),
        ));
    }
    if field == TextField::Phone && needle.is_empty() {
        return Err(error(
            name,
            "invalid_format",
            "phone must contain digits".into(),
        ));
    }
    Ok(needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CustomerDetails;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    fn customer(fill: impl FnOnce(&mut CustomerDetails)) -> Customer {
        let mut details = CustomerDetails::for_account(AccountId::parse(5).unwrap());
        fill(&mut details);
        Customer::register(details)
    }

    #[test]
    fn defaults_are_the_seeds() {
        let query = CustomerQuery::parse(&[]).unwrap();
        assert_eq!((query.offset, query.limit), (0, 100));
    }

    #[test]
    fn bad_parameters_are_all_named() {
        let errors = CustomerQuery::parse(&pairs(&[
            ("limit", "0"),
            ("offset", "-1"),
            ("lastname", "x"),
            ("accountId", "abc"),
            ("city", "a"),
            ("city", "b"),
        ]))
        .unwrap_err();
        let named: Vec<(&str, &str)> = errors
            .0
            .iter()
            .map(|error| (error.field.as_str(), error.code))
            .collect();
        assert_eq!(
            named,
            vec![
                ("limit", "out_of_range"),
                ("offset", "invalid_type"),
                ("lastname", "unknown_parameter"),
                ("accountId", "invalid_type"),
                ("city", "repeated_parameter"),
            ]
        );
    }

    #[test]
    fn text_filters_are_case_insensitive_prefixes() {
        let hamilton = customer(|d| d.last_name = Some("Hamilton".into()));
        let query = CustomerQuery::parse(&pairs(&[("lastName", "hamil")])).unwrap();
        assert!(query.matches(&hamilton));
        let query = CustomerQuery::parse(&pairs(&[("lastName", "milton")])).unwrap();
        assert!(!query.matches(&hamilton));
    }

    #[test]
    fn codes_match_whole_values_and_phones_match_digits() {
        let customer = customer(|d| {
            d.state = Some("NY".into());
            d.phone = Some("212-555-0101".into());
        });
        let exact = CustomerQuery::parse(&pairs(&[("state", "ny")])).unwrap();
        assert!(exact.matches(&customer));
        let prefix = CustomerQuery::parse(&pairs(&[("state", "n")])).unwrap();
        assert!(!prefix.matches(&customer));
        let phone = CustomerQuery::parse(&pairs(&[("phone", "(212) 555")])).unwrap();
        assert!(phone.matches(&customer));
    }

    #[test]
    fn a_missing_field_never_matches_its_filter() {
        let nameless = customer(|_| {});
        let query = CustomerQuery::parse(&pairs(&[("firstName", "a")])).unwrap();
        assert!(!query.matches(&nameless));
    }
}
