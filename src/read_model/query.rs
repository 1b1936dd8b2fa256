//! The `find` query: parsed from query-string pairs, and the matching rule of each filter.

use super::fold::{matches_whole_value, search_form};
use crate::domain::{
    is_blank, shown, AccountId, Customer, CustomerCode, FieldError, TextField, ValidationErrors,
    NAME_SHOWN,
};
use std::collections::HashSet;

/// Default page size, as the seed gives it.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest page a client may ask for.
pub const MAX_LIMIT: usize = 1000;

/// A validated `find`: filters combined with AND, and the page to return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerQuery {
    /// Exact account match.
    pub account_id: Option<AccountId>,
    /// Exact, case-sensitive match of the customer's code: the cross-reference lookup.
    pub code: Option<CustomerCode>,
    /// The accounts the caller may see (sorted), set from its API key rather than the query
    /// string; `None` for every account.
    pub within_accounts: Option<Vec<AccountId>>,
    /// Text filters, each needle in its field's search form (see [`CustomerQuery::matches`]).
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
            code: None,
            within_accounts: None,
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
        let mut seen: HashSet<&str> = HashSet::new();
        for (name, value) in pairs {
            if !seen.insert(name.as_str()) {
                errors.push(repeated_parameter(name));
                continue;
            }
            // Text filters get the raw value: a prefix's trailing space is part of the prefix.
            // An empty or blank value (spaces, invisible characters) is refused: dropping it
            // would answer the whole list to a client that meant to filter. One holding a
            // control character is refused as such (U+0085 is whitespace to `trim`).
            let trimmed = value.trim();
            let blank = is_blank(value);
            let outcome = match name.as_str() {
                // Counts are digits only, untrimmed: `limit=+5` (a space, in a query string)
                // is refused, not read as 5.
                "offset" => parse_count(name, value, 0, usize::MAX).map(|n| query.offset = n),
                "limit" => parse_count(name, value, 1, MAX_LIMIT).map(|n| query.limit = n),
                "accountId" | "code" if blank => Err(empty_filter(name)),
                "accountId" => parse_account(trimmed).map(|id| query.account_id = Some(id)),
                "code" => CustomerCode::parse(value)
                    .map(|code| query.code = Some(code))
                    .map_err(|violation| FieldError::broken("code", violation)),
                _ => match TextField::from_name(name) {
                    Some(_) if blank => Err(empty_filter(name)),
                    Some(field) => parse_filter(field, value)
                        .map(|needle| query.text_filters.push((field, needle))),
                    None => Err(unknown_parameter(name, "find")),
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

    /// The names of the parameters that shape this find (filters and paging), as the client
    /// gave them: what an error about the find as a whole names.
    pub fn parameter_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        if self.account_id.is_some() {
            names.push("accountId".to_owned());
        }
        if self.code.is_some() {
            names.push("code".to_owned());
        }
        names.extend(
            self.text_filters
                .iter()
                .map(|(field, _)| field.name().to_owned()),
        );
        if self.offset > 0 {
            names.push("offset".to_owned());
        }
        names
    }

    /// The accounts this find is confined to: `accountId` (if the caller may see it), else the
    /// caller's; `None` for every account.
    pub fn accounts(&self) -> Option<Vec<AccountId>> {
        match (self.account_id, &self.within_accounts) {
            (Some(id), Some(visible)) if visible.binary_search(&id).is_err() => Some(Vec::new()),
            (Some(id), _) => Some(vec![id]),
            (None, visible) => visible.clone(),
        }
    }

    /// Whether `customer` passes every filter: the account exactly (and within the caller's),
    /// the code exactly, and each text filter on the value's search form: whole-value for
    /// `state` and `countryCode`, prefix for the rest.
    pub fn matches(&self, customer: &Customer) -> bool {
        let details = &customer.details;
        self.account_id.is_none_or(|id| id == details.account_id)
            && self
                .code
                .as_ref()
                .is_none_or(|code| customer.has_code(code))
            && self
                .within_accounts
                .as_ref()
                .is_none_or(|visible| visible.binary_search(&details.account_id).is_ok())
            && self.text_filters.iter().all(|(field, needle)| {
                details.text(*field).is_some_and(|value| {
                    let value = search_form(*field, value);
                    if matches_whole_value(*field) {
                        value == *needle
                    } else {
                        value.starts_with(needle.as_str())
                    }
                })
            })
    }
}

fn error(name: &str, code: &'static str, message: String) -> FieldError {
    FieldError {
        field: name.to_owned(),
        code,
        message,
    }
}

/// The page of a listing that takes only `offset` and `limit`, by the same rules as `find`'s:
/// the admin listing of rejected events.
///
/// # Errors
/// Every unknown or repeated parameter and every count out of its bounds.
pub fn parse_page(pairs: &[(String, String)]) -> Result<(usize, usize), ValidationErrors> {
    let (mut offset, mut limit) = (0, DEFAULT_LIMIT);
    let mut errors = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    for (name, value) in pairs {
        let outcome = match name.as_str() {
            _ if !seen.insert(name) => Err(repeated_parameter(name)),
            "offset" => parse_count(name, value, 0, usize::MAX).map(|n| offset = n),
            "limit" => parse_count(name, value, 1, MAX_LIMIT).map(|n| limit = n),
            _ => Err(unknown_parameter(name, "this listing")),
        };
        if let Err(broken) = outcome {
            errors.push(broken);
        }
    }
    if errors.is_empty() {
        Ok((offset, limit))
    } else {
        Err(ValidationErrors(errors))
    }
}

/// A parameter given twice, quoted in part.
fn repeated_parameter(name: &str) -> FieldError {
    let quoted = shown(name, NAME_SHOWN);
    let message = format!("{quoted} may be given once");
    error(&quoted, "repeated_parameter", message)
}

/// Refuses every parameter: for `operation`, which takes none.
///
/// # Errors
/// One `unknown_parameter` error for each parameter.
pub fn no_parameters(pairs: &[(String, String)], operation: &str) -> Result<(), ValidationErrors> {
    if pairs.is_empty() {
        return Ok(());
    }
    Err(ValidationErrors(
        pairs
            .iter()
            .map(|(name, _)| unknown_parameter(name, operation))
            .collect(),
    ))
}

/// A filter given with nothing in it.
fn empty_filter(name: &str) -> FieldError {
    let message = format!(
        "{name} must not be empty or only invisible characters; leave the parameter out to not \
         filter by it"
    );
    error(name, "empty", message)
}

/// A parameter `listing` does not take, quoted in part.
fn unknown_parameter(name: &str, listing: &str) -> FieldError {
    let quoted = shown(name, NAME_SHOWN);
    let message = format!("{quoted} is not a parameter of {listing}");
    error(&quoted, "unknown_parameter", message)
}

fn parse_count(name: &str, value: &str, min: usize, max: usize) -> Result<usize, FieldError> {
    let rule = if max == usize::MAX {
        format!("{name} must be a whole number ≥ {min}")
    } else {
        format!("{name} must be a whole number in {min}..={max}")
    };
    let all_digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
    // Digits only: Rust's parser would also take a leading `+`.
    match value.parse::<usize>() {
        Ok(_) if !all_digits => Err(error(name, "invalid_type", rule)),
        Ok(number) if (min..=max).contains(&number) => Ok(number),
        // Outside the bounds, or too large for a usize: a number, but not an allowed one.
        Ok(_) => Err(error(name, "out_of_range", rule)),
        Err(_) if all_digits => Err(error(name, "out_of_range", rule)),
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
    let valid = field
        .parse_filter(value)
        .map_err(|violation| FieldError::broken(field.name(), violation))?;
    let needle = search_form(field, &valid);
    if needle.is_empty() {
        // A lone combining mark, say: as a prefix it would match everything.
        return Err(error(
            field.name(),
            "invalid_format",
            format!(
                "{} must hold a letter, digit or symbol that search can match; this value \
                 folds to nothing (accents alone are ignored)",
                field.name()
            ),
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

    #[test]
    fn empty_and_blank_filters_are_refused_and_so_are_control_characters() {
        for (name, value) in [
            ("zipCode", "   "),
            ("firstName", "\u{200B}\u{FEFF}"),
            ("accountId", " "),
            ("accountId", ""),
            ("code", ""),
            ("lastName", ""),
        ] {
            let refused = CustomerQuery::parse(&pairs(&[(name, value)])).unwrap_err();
            assert_eq!(refused.0[0].field, name, "{value:?}");
            assert_eq!(refused.0[0].code, "empty", "{name}={value:?}");
        }
        for value in ["\u{202E}", "\u{200E}"] {
            let refused = CustomerQuery::parse(&pairs(&[("firstName", value)])).unwrap_err();
            assert_eq!(refused.0[0].code, "control_character", "{value:?}");
        }
        for value in ["\u{85}\u{85}", "\u{85}", "a\u{85}", "\t"] {
            let refused = CustomerQuery::parse(&pairs(&[("zipCode", value)])).unwrap_err();
            assert_eq!(refused.0[0].field, "zipCode", "{value:?}");
            assert_ne!(refused.0[0].code, "empty", "{value:?}");
        }
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
    fn a_listing_page_takes_offset_and_limit_only() {
        assert_eq!(parse_page(&[]).unwrap(), (0, DEFAULT_LIMIT));
        assert_eq!(
            parse_page(&pairs(&[("offset", "5"), ("limit", "2")])).unwrap(),
            (5, 2)
        );
        let errors = parse_page(&pairs(&[
            ("limit", "0"),
            ("accountId", "1"),
            ("offset", "1"),
            ("offset", "2"),
        ]))
        .unwrap_err();
        let codes: Vec<&str> = errors.0.iter().map(|error| error.code).collect();
        assert_eq!(
            codes,
            ["out_of_range", "unknown_parameter", "repeated_parameter"]
        );
    }

    #[test]
    fn counts_are_digits_only() {
        for signed in ["+5", "-0", " 5x", " 5", "5 "] {
            let errors = CustomerQuery::parse(&pairs(&[("limit", signed)])).unwrap_err();
            assert_eq!(errors.0[0].code, "invalid_type", "{signed:?}");
        }
        let query = CustomerQuery::parse(&pairs(&[("limit", "5"), ("offset", "07")])).unwrap();
        assert_eq!((query.limit, query.offset), (5, 7));
    }

    #[test]
    fn text_filters_are_case_insensitive_prefixes() {
        let hamilton = customer(|d| d.set_text(TextField::LastName, "Hamilton").unwrap());
        let query = CustomerQuery::parse(&pairs(&[("lastName", "hamil")])).unwrap();
        assert!(query.matches(&hamilton));
        let query = CustomerQuery::parse(&pairs(&[("lastName", "milton")])).unwrap();
        assert!(!query.matches(&hamilton));
    }

    #[test]
    fn codes_match_whole_values_and_phones_match_digits() {
        let customer = customer(|d| {
            d.set_text(TextField::State, "NY").unwrap();
            d.set_text(TextField::Phone, "212-555-0101").unwrap();
        });
        let exact = CustomerQuery::parse(&pairs(&[("state", "ny")])).unwrap();
        assert!(exact.matches(&customer));
        let prefix = CustomerQuery::parse(&pairs(&[("state", "n")])).unwrap();
        assert!(!prefix.matches(&customer));
        let phone = CustomerQuery::parse(&pairs(&[("phone", "(212) 555")])).unwrap();
        assert!(phone.matches(&customer));
    }

    #[test]
    fn a_prefix_keeps_its_trailing_space() {
        let new_york = customer(|d| d.set_text(TextField::City, "New York").unwrap());
        let newark = customer(|d| d.set_text(TextField::City, "Newark").unwrap());
        let query = CustomerQuery::parse(&pairs(&[("city", "  new ")])).unwrap();
        assert!(query.matches(&new_york));
        assert!(!query.matches(&newark));
    }

    #[test]
    fn accents_fold_on_both_sides() {
        let jose = customer(|d| d.set_text(TextField::FirstName, "José").unwrap());
        let query = CustomerQuery::parse(&pairs(&[("firstName", "jose")])).unwrap();
        assert!(query.matches(&jose));
        let muller = customer(|d| d.set_text(TextField::LastName, "Müller").unwrap());
        let query = CustomerQuery::parse(&pairs(&[("lastName", "MULL")])).unwrap();
        assert!(query.matches(&muller));
    }

    #[test]
    fn filters_follow_their_fields_rules() {
        let long_name = "a".repeat(126);
        let errors = CustomerQuery::parse(&pairs(&[
            ("state", "NYCX"),
            ("countryCode", "ZZ"),
            ("phone", "abc"),
            ("firstName", &long_name),
            ("offset", "99999999999999999999999"),
        ]))
        .unwrap_err();
        let codes: Vec<&str> = errors.0.iter().map(|error| error.code).collect();
        assert_eq!(
            codes,
            vec![
                "too_long",
                "invalid_format",
                "invalid_format",
                "too_long",
                "out_of_range"
            ]
        );
    }

    #[test]
    fn a_filter_that_folds_to_nothing_is_refused() {
        let errors = CustomerQuery::parse(&pairs(&[("firstName", "\u{301}")])).unwrap_err();
        assert_eq!(errors.0[0].code, "invalid_format");
        assert_eq!(errors.0[0].field, "firstName");
    }

    #[test]
    fn codes_match_exactly_and_by_case() {
        let coded = customer(|d| d.code = Some(CustomerCode::parse("ABC-1").unwrap()));
        let query = CustomerQuery::parse(&pairs(&[("code", " ABC-1 ")])).unwrap();
        assert!(query.matches(&coded));
        for other in ["abc-1", "ABC", "ABC-10"] {
            let query = CustomerQuery::parse(&pairs(&[("code", other)])).unwrap();
            assert!(!query.matches(&coded), "{other}");
        }
        let uncoded = customer(|_| {});
        let by_id = CustomerQuery::parse(&pairs(&[("code", &uncoded.id.to_string())])).unwrap();
        assert!(by_id.matches(&uncoded));
        assert!(!by_id.matches(&coded));
        let refused = CustomerQuery::parse(&pairs(&[("code", "a b")])).unwrap_err();
        assert_eq!(
            (refused.0[0].field.as_str(), refused.0[0].code),
            ("code", "invalid_format")
        );
    }

    #[test]
    fn a_missing_field_never_matches_its_filter() {
        let nameless = customer(|_| {});
        let query = CustomerQuery::parse(&pairs(&[("firstName", "a")])).unwrap();
        assert!(!query.matches(&nameless));
    }
}
