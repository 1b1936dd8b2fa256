//! Request bodies of the opponent, checked the way a plain service would: each field's length
//! and characters by the registry's README table, unknown fields refused.

use serde_json::{Map, Value};

/// Whether a trimmed, non-blank value is valid for a field.
type Check = fn(&str) -> bool;

/// The text fields in the JSON's order, each with its JSON name and its check.
pub const TEXT_FIELDS: [(&str, Check); 10] = [
    ("firstName", |text| chars_at_most(text, 125)),
    ("lastName", |text| chars_at_most(text, 125)),
    ("organizationName", |text| chars_at_most(text, 255)),
    ("email", |text| {
        chars_at_most(text, 100)
            && text
                .split_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
    }),
    ("phone", |text| {
        chars_at_most(text, 30)
            && text.chars().filter(char::is_ascii_digit).count() <= 15
            && text
                .chars()
                .all(|c| c.is_ascii_digit() || " +-.()".contains(c))
    }),
    ("street", |text| chars_at_most(text, 128)),
    ("city", |text| chars_at_most(text, 50)),
    ("state", |text| {
        (1..=3).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_alphanumeric())
    }),
    ("zipCode", |text| {
        chars_at_most(text, 10)
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-')
    }),
    ("countryCode", |text| {
        text.len() == 2 && text.bytes().all(|b| b.is_ascii_alphabetic())
    }),
];

fn chars_at_most(text: &str, most: usize) -> bool {
    text.chars().count() <= most
}

/// A create's body.
pub struct NewCustomer {
    pub account_id: i32,
    pub code: Option<String>,
    /// Each of [`TEXT_FIELDS`], in order, when given.
    pub text: Vec<Option<String>>,
}

impl NewCustomer {
    /// The body, checked; the problem's detail when it is not a valid customer.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let mut members = object(body)?;
        let account_id = match members.remove("accountId") {
            Some(Value::Number(number)) => number
                .as_i64()
                .and_then(|id| i32::try_from(id).ok())
                .filter(|id| *id > 0)
                .ok_or("accountId must be a positive 32-bit integer")?,
            _ => return Err("accountId is required".into()),
        };
        let code = match members.remove("code") {
            None | Some(Value::Null) => None,
            Some(Value::String(code)) => {
                let code = code.trim().to_owned();
                let allowed = |c: char| c.is_ascii_alphanumeric() || "-_.:/".contains(c);
                if code.is_empty() || code.len() > 60 || !code.chars().all(allowed) {
                    return Err("code: 1-60 letters, digits or - _ . : /".into());
                }
                Some(code)
            }
            Some(_) => return Err("code must be a string".into()),
        };
        let text = text_fields(&mut members)?
            .into_iter()
            .map(Option::flatten)
            .collect();
        no_other_members(&members)?;
        Ok(Self {
            account_id,
            code,
            text,
        })
    }
}

/// An update's body: each of [`TEXT_FIELDS`] it names, with its new value (`None` clears it).
pub struct Change {
    pub text: Vec<Option<Option<String>>>,
}

impl Change {
    /// The body, checked; the problem's detail when it is not a valid change.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let mut members = object(body)?;
        if members.contains_key("accountId") || members.contains_key("code") {
            return Err("accountId and code are fixed at create".into());
        }
        let text = text_fields(&mut members)?;
        no_other_members(&members)?;
        Ok(Self { text })
    }
}

fn object(body: &[u8]) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(members)) => Ok(members),
        _ => Err("the body must be a JSON object".into()),
    }
}

/// Takes each text field out of `members`: not named (`None`), cleared (`Some(None)`: null or
/// blank) or set, trimmed and checked; `state` and `countryCode` stored upper-case.
fn text_fields(members: &mut Map<String, Value>) -> Result<Vec<Option<Option<String>>>, String> {
    TEXT_FIELDS
        .iter()
        .map(|(name, valid)| match members.remove(*name) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(Value::String(text)) if text.trim().is_empty() => Ok(Some(None)),
            Some(Value::String(text)) => {
                let mut text = text.trim().to_owned();
                if matches!(*name, "state" | "countryCode") {
                    text.make_ascii_uppercase();
                }
                if valid(&text) {
                    Ok(Some(Some(text)))
                } else {
                    Err(format!("{name} is not valid"))
                }
            }
            Some(_) => Err(format!("{name} must be a string")),
        })
        .collect()
}

fn no_other_members(members: &Map<String, Value>) -> Result<(), String> {
    match members.keys().next() {
        Some(name) => Err(format!("{name} is not a field of a customer")),
        None => Ok(()),
    }
}
