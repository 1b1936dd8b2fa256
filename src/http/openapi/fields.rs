//! The customer's optional text fields, three ways: as answers carry them (valid, trimmed,
//! NFC), as bodies send them (blank leaves a field out or clears it), and as find filters.

use super::text::{self, allowed, anchored, blank, trimmed, visible};
use crate::domain::{Phone, TextField, ASSIGNED_ALPHA_2};
use serde_json::{json, Value};

/// What the field holds, in a few words.
fn what(field: TextField) -> &'static str {
    match field {
        TextField::FirstName => "Given name.",
        TextField::LastName => "Family name.",
        TextField::OrganizationName => "Company name.",
        TextField::Email => "Email address.",
        TextField::Phone => "Phone number, kept as given.",
        TextField::Street => "Street of the mailing address.",
        TextField::City => "City of the mailing address.",
        TextField::State => "State code of the mailing address, stored upper-case.",
        TextField::ZipCode => "ZIP or postal code of the mailing address.",
        TextField::CountryCode => {
            "Country code of the mailing address (ISO 3166-1 alpha-2), stored upper-case."
        }
    }
}

/// The field as an answer carries it: valid, trimmed and NFC.
pub fn stored(field: TextField) -> Value {
    let max = field.max_chars();
    let what = what(field);
    match field {
        TextField::Email => json!({
            "type": "string",
            "description": format!(
                "{what} At most {max} characters; an address `local@domain.tld` (RFC 5322 \
                 syntax: a dot-atom or quoted local part of at most 64 bytes, Unicode allowed; a \
                 domain of at least two labels, each starting and ending with a letter or digit; \
                 no display name, no IP literal)."
            ),
            "minLength": 3,
            "maxLength": max,
            "pattern": r"^[\s\S]+@[^@]+\.[^@]+$",
        }),
        TextField::Phone => {
            let formatting = Phone::FORMATTING;
            json!({
                "type": "string",
                "description": format!(
                    "{what} 1 to {} digits, with a leading `+`, spaces, `-`, `.`, `(` and `)` as \
                     formatting; at most {max} characters in all.",
                    Phone::MAX_DIGITS
                ),
                "minLength": 1,
                "maxLength": max,
                "pattern": format!(r"^\+?[{formatting}0-9]*[0-9][{formatting}0-9]*$"),
            })
        }
        TextField::State => json!({
            "type": "string",
            "description": format!("{what} 1 to {max} ASCII letters or digits."),
            "pattern": format!("^[A-Z0-9]{{1,{max}}}$"),
        }),
        TextField::ZipCode => json!({
            "type": "string",
            "description": format!(
                "{what} At most {max} ASCII letters, digits, spaces or dashes, at least one a \
                 letter or digit."
            ),
            "minLength": 1,
            "maxLength": max,
            "pattern": format!("^{}$", text::ZIP),
        }),
        TextField::CountryCode => json!({
            "type": "string",
            "description": format!(
                "{what} One of the {} officially assigned codes.",
                ASSIGNED_ALPHA_2.len()
            ),
            "enum": ASSIGNED_ALPHA_2.as_slice(),
        }),
        _ => json!({
            "type": "string",
            "description": format!(
                "{what} 1 to {max} characters (Unicode scalar values after NFC), no control or \
                 bidirectional-control characters."
            ),
            "minLength": 1,
            "maxLength": max,
            "pattern": format!("^{}+$", allowed()),
        }),
    }
}

/// The body a field is sent in: a create or an update, in JSON or in XML, or a merge patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// A create in JSON: blank (or null) leaves the field out.
    Create,
    /// A create in XML: an empty element leaves the field out.
    CreateXml,
    /// An update by `POST` in JSON: blank (or null) clears the field.
    Update,
    /// An update by `POST` in XML: an empty element clears the field.
    UpdateXml,
    /// An update by `PATCH`, a JSON merge patch: null (or blank) clears the field.
    MergePatch,
}

/// The field as a body sends it: null or blank (only spaces and invisible characters) leaves it
/// out of a create and clears it in an update; otherwise trimmed, NFC, then checked.
pub fn sent(field: TextField, body: Body) -> Value {
    let max = field.max_chars();
    let what = what(field);
    let (value, max_length, rule) = match field {
        TextField::Email => (
            trimmed(&text::email()),
            Some(max),
            format!(
                "At most {max} characters (`too_long`); an address `local@domain.tld` in RFC \
                 5322 syntax (a dot-atom or quoted local part of at most 64 bytes, Unicode \
                 allowed; a domain of at least two labels, each starting and ending with a letter \
                 or digit); no display name, no IP literal (`invalid_format`). The pattern \
                 describes plain ASCII dot-atom addresses, which are always accepted; the service \
                 also takes quoted local parts and non-ASCII letters."
            ),
        ),
        TextField::Phone => (
            trimmed(&text::phone()),
            Some(max),
            format!(
                "Digits with a leading `+`, spaces, `-`, `.`, `(`, `)` as formatting, at least \
                 one digit (`invalid_format`); at most {} digits and {max} characters in all \
                 (`too_long`). Kept as given (trimmed).",
                Phone::MAX_DIGITS
            ),
        ),
        TextField::State => (
            trimmed(&text::state()),
            None,
            format!(
                "1 to {max} ASCII letters or digits (`invalid_format`; more than {max} characters \
                 is `too_long`), any case, stored upper-case."
            ),
        ),
        TextField::ZipCode => (
            trimmed(text::ZIP),
            Some(max),
            format!(
                "At most {max} characters (`too_long`) of ASCII letters, digits, spaces and \
                 dashes, at least one a letter or digit (`invalid_format`)."
            ),
        ),
        TextField::CountryCode => (
            trimmed(&text::country_any_case()),
            None,
            "An officially assigned ISO 3166-1 alpha-2 code in any case, stored upper-case; \
             anything else (user-assigned codes such as XK, reserved ones such as UK, control \
             characters) is `invalid_format`."
                .to_owned(),
        ),
        _ => (
            format!("{}*", allowed()),
            Some(max),
            format!("At most {max} characters after trimming and NFC (`too_long`)."),
        ),
    };
    let description = format!("{what} {rule}{}", blank_rule(body));
    optional_text(&value, max_length, description, body)
}

/// What a blank value does, and how the rest is read.
fn blank_rule(body: Body) -> String {
    let (absent, effect) = match body {
        Body::Create => ("or null (an empty element in XML)", "leaves the field out"),
        Body::CreateXml => ("or an empty element", "leaves the field out"),
        Body::Update | Body::MergePatch => {
            ("or null (an empty element in XML)", "clears the field")
        }
        Body::UpdateXml => ("or an empty element", "clears the field"),
    };
    format!(
        " An empty or blank value (only spaces and invisible format characters), {absent}, \
         {effect}. Otherwise the value is trimmed (Unicode White_Space) and NFC-normalised, then \
         checked; a control character anywhere (C0, DEL, C1, even at the ends) or a \
         bidirectional control is `control_character`."
    )
}

/// An optional text member: one string schema, whose pattern takes a blank value (no value)
/// or `value`, within `max_length` characters; null too in a merge patch, and only there. (A
/// generated client sends every member of a model it holds; one whose schema allowed null sent
/// null for each field it did not set, and an update cleared them.)
pub fn optional_text(
    value: &str,
    max_length: Option<usize>,
    description: String,
    body: Body,
) -> Value {
    let types = if body == Body::MergePatch {
        json!(["string", "null"])
    } else {
        json!("string")
    };
    let mut schema = json!({
        "type": types,
        "description": description,
        "pattern": anchored(&[&blank(), value]),
    });
    if let Some(max_length) = max_length {
        schema["maxLength"] = max_length.into();
    }
    schema
}

/// The field as a find filter, described, and its schema: never blank (a blank filter is a 400
/// `empty`), otherwise checked by the field's rule.
pub fn filter(field: TextField) -> (String, Value) {
    let max = field.max_chars();
    let name = field.name();
    let (value, max_length, description) = match field {
        TextField::Phone => (
            trimmed(&text::phone()),
            Some(max),
            format!(
                "Filter on `phone`: a prefix of the digits alone (`(212) 555` finds \
                 `212-555-0101`). Must itself be a valid phone: digits with a leading `+`, \
                 spaces, `-`, `.`, `(`, `)`, at least one digit (`invalid_format`), at most {} \
                 digits and {max} characters (`too_long`).{FILTER_RULE}",
                Phone::MAX_DIGITS
            ),
        ),
        TextField::State => (
            trimmed(&text::state()),
            None,
            format!(
                "Filter on `state`: a whole valid state, 1 to {max} ASCII letters or digits \
                 (`invalid_format`; longer is `too_long`), matched case-insensitively.\
                 {FILTER_RULE}"
            ),
        ),
        TextField::ZipCode => (
            trimmed(text::ZIP),
            Some(max),
            format!(
                "Filter on `zipCode`: must itself be a valid zip code, at most {max} ASCII \
                 letters, digits, spaces or dashes with at least one letter or digit \
                 (`invalid_format`, `too_long`); matched as a case-insensitive prefix.\
                 {FILTER_RULE}"
            ),
        ),
        TextField::CountryCode => (
            trimmed(&text::country_any_case()),
            None,
            "Filter on `countryCode`: a whole officially assigned ISO 3166-1 alpha-2 code, any \
             case (anything else, control characters included, is `invalid_format`), matched \
             case-insensitively. An empty or blank value (only spaces and invisible characters) \
             is `empty`."
                .to_owned(),
        ),
        _ => {
            let email = if field == TextField::Email {
                " (As a prefix, an email filter need not be a whole address.)"
            } else {
                ""
            };
            (
                format!("{allowed}*{}{allowed}*", visible(), allowed = allowed()),
                Some(max),
                format!(
                    "Filter on `{name}`: at most {max} characters. Matches as a case- and \
                     accent-insensitive prefix of the folded value (NFKD, combining marks \
                     dropped, full case folding, Latin transliterated); leading spaces are \
                     trimmed, trailing spaces are part of the prefix. A value that folds to \
                     nothing (e.g. a lone combining accent) is `invalid_format`.\
                     {FILTER_RULE}{email}"
                ),
            )
        }
    };
    let mut schema = json!({"type": "string", "pattern": anchored(&[&value])});
    if let Some(max_length) = max_length {
        schema["maxLength"] = max_length.into();
    }
    (description, schema)
}

/// What every text filter refuses.
const FILTER_RULE: &str = " An empty or blank value (only spaces, White_Space that is not a \
    control character, and invisible format characters such as a zero-width space) is `empty`: \
    leave the parameter out not to filter by it. Otherwise the value is checked by the same rules \
    as the field in a create body: a control character anywhere (U+0085 included) or a \
    bidirectional control is `control_character`; lengths count characters after trimming and \
    NFC (`too_long`).";
