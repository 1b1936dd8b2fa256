//! The merchant's own reference for a customer (`code`): set once at create, unique per account.
//!
//! Uniqueness is decided by the log, not by a lookup: a create with a code names the customer
//! UUIDv5(`CODE_NAMESPACE`, `<accountId>:<code>`), so every create of one code in one account
//! names one customer, lands on one partition, and the projection's first-create-wins rule picks
//! the same winner on every replica. A customer created without a code has its id as its code.

use super::fields::RuleViolation;
use super::ids::{AccountId, CustomerId};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use uuid::Uuid;

/// Namespace of customer ids derived from a code (UUIDv5). Part of the public contract:
/// `events/README.md` gives it, so consumers can recompute ids.
pub const CODE_NAMESPACE: Uuid = Uuid::from_u128(0x23b3_cf7b_500f_4ceb_9f3c_0711_7454_bf87);

/// A customer's code: 1 to 60 characters, each an ASCII letter or digit or one of `- _ . : /`,
/// trimmed of surrounding whitespace, case-sensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CustomerCode(String);

impl CustomerCode {
    /// The longest code.
    pub const MAX_CHARS: usize = 60;

    /// The characters a code may hold besides ASCII letters and digits (`-` last, so that the
    /// set reads as the end of a regex class too).
    pub const PUNCTUATION: &'static str = "._:/-";

    /// # Errors
    /// Control characters anywhere, empty after trimming, longer than
    /// [`CustomerCode::MAX_CHARS`], or a character outside the code's alphabet.
    pub fn parse(raw: &str) -> Result<Self, RuleViolation> {
        if raw.chars().any(char::is_control) {
            return Err(RuleViolation {
                code: "control_character",
                message: "must not contain control characters".into(),
            });
        }
        let text = raw.trim();
        if text.is_empty() {
            return Err(RuleViolation {
                code: "empty",
                message: "must not be empty".into(),
            });
        }
        if !text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || Self::PUNCTUATION.contains(c))
        {
            return Err(RuleViolation {
                code: "invalid_format",
                message: "must be ASCII letters, digits, - _ . : or /".into(),
            });
        }
        let length = text.len();
        if length > Self::MAX_CHARS {
            return Err(RuleViolation {
                code: "too_long",
                message: format!(
                    "must be at most {} characters, got {length}",
                    Self::MAX_CHARS
                ),
            });
        }
        Ok(Self(text.to_owned()))
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The customer a create with this code names in `account_id`.
    pub fn customer_id(&self, account_id: AccountId) -> CustomerId {
        let name = format!("{account_id}:{}", self.0);
        CustomerId::from_bytes(*Uuid::new_v5(&CODE_NAMESPACE, name.as_bytes()).as_bytes())
    }
}

impl TryFrom<String> for CustomerCode {
    type Error = RuleViolation;

    fn try_from(raw: String) -> Result<Self, RuleViolation> {
        Self::parse(&raw)
    }
}

impl From<CustomerCode> for String {
    fn from(code: CustomerCode) -> String {
        code.0
    }
}

impl fmt::Display for CustomerCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A customer's code as shown: the one given at create, else its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeShown<'a> {
    /// The code the create gave.
    Given(&'a CustomerCode),
    /// No code was given: the code is the id.
    Id(CustomerId),
}

impl fmt::Display for CodeShown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodeShown::Given(code) => code.fmt(f),
            CodeShown::Id(id) => id.fmt(f),
        }
    }
}

impl Serialize for CodeShown<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            CodeShown::Given(code) => serializer.serialize_str(code.as_str()),
            CodeShown::Id(id) => serializer.collect_str(id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(raw: &str) -> &'static str {
        CustomerCode::parse(raw).expect_err(raw).code
    }

    #[test]
    fn codes_keep_to_their_alphabet_and_length() {
        assert_eq!(CustomerCode::parse(" ABC-1 ").unwrap().as_str(), "ABC-1");
        assert!(CustomerCode::parse("erp:cust/0042_a.b").is_ok());
        assert!(CustomerCode::parse(&"x".repeat(60)).is_ok());
        assert_eq!(refused(&"x".repeat(61)), "too_long");
        assert_eq!(refused("   "), "empty");
        for bad in ["a b", "é", "a#b", "a+b", "a@b", "a,b"] {
            assert_eq!(refused(bad), "invalid_format", "{bad}");
        }
        assert_eq!(refused("ab\u{85}"), "control_character");
        assert_eq!(refused("ab\t"), "control_character");
    }

    #[test]
    fn a_code_names_one_customer_per_account_and_case() {
        let code = CustomerCode::parse("ABC-1").unwrap();
        let account = AccountId::parse(42).unwrap();
        let other = AccountId::parse(43).unwrap();
        assert_eq!(code.customer_id(account), code.customer_id(account));
        assert_ne!(code.customer_id(account), code.customer_id(other));
        let lower = CustomerCode::parse("abc-1").unwrap();
        assert_ne!(code.customer_id(account), lower.customer_id(account));
        let expected = Uuid::new_v5(&CODE_NAMESPACE, b"42:ABC-1");
        assert_eq!(code.customer_id(account).to_string(), expected.to_string());
    }
}
