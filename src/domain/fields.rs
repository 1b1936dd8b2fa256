//! One type per customer field. Each `parse` trims, normalises to Unicode NFC and applies the
//! seed's rule, so a value of these types is valid by construction. Lengths count characters
//! (Unicode scalar values after NFC), not bytes.

use super::country_codes;
use serde::{Deserialize, Serialize};
use std::fmt;
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
use unicode_script::{Script, UnicodeScript};

/// Why a value is not valid for its field; the caller names the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleViolation {
    /// Machine-readable: `empty`, `too_long`, `invalid_format` or `control_character`.
    pub code: &'static str,
    /// What the rule is, in words, without the field's name.
    pub message: String,
}

impl RuleViolation {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for RuleViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Declares a string newtype built by its `parse` (and, inside the domain, from values it stored
/// itself), which (de)serialises as a plain string through that same `parse`.
macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The value as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Wraps a value this registry parsed and stored before, without checking it again
            /// (see `trusted.rs`).
            pub(super) fn trusted(value: String) -> Self {
                Self(value)
            }
        }

        impl TryFrom<String> for $name {
            type Error = RuleViolation;

            fn try_from(raw: String) -> Result<Self, RuleViolation> {
                Self::parse(&raw)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_type!(
    /// `firstName` or `lastName`: 1 to 125 characters.
    PersonName
);
text_type!(
    /// `organizationName`: 1 to 255 characters.
    OrganizationName
);
text_type!(
    /// `email`: a syntactically valid address (`local@domain.tld`), at most 100 characters.
    Email
);
text_type!(
    /// `phone`: 1 to 15 digits, with `+` (leading), spaces, `-`, `.`, `(` and `)` as formatting,
    /// kept as given; at most 30 characters in all.
    Phone
);
text_type!(
    /// `street`: 1 to 128 characters.
    Street
);
text_type!(
    /// `city`: 1 to 50 characters.
    City
);
text_type!(
    /// `state`: 1 to 3 ASCII letters or digits, stored upper case.
    State
);
text_type!(
    /// `zipCode`: 1 to 10 ASCII letters, digits, spaces or dashes, with at least one letter or digit.
    ZipCode
);
text_type!(
    /// `countryCode`: an assigned ISO 3166-1 alpha-2 code, stored upper case.
    CountryCode
);

/// Unicode's Bidi_Control characters (embeddings, overrides, isolates and marks): they reorder
/// how text is shown, so a value holding one can display as another (U+202E turns `gnp.exe`
/// around).
const BIDI_CONTROLS: [char; 12] = [
    '\u{061C}', '\u{200E}', '\u{200F}', '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}',
    '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
];

/// Whether `text` shows nothing: only whitespace that is not a control character, and invisible
/// format characters (a zero-width space, a BOM, a soft hyphen). A control character or a
/// bidirectional control is never blank: it is refused, not dropped.
pub fn is_blank(text: &str) -> bool {
    text.chars().all(|c| {
        // No ASCII character is a format character: the lookup is for the rest.
        if c.is_ascii() {
            return c == ' ';
        }
        let invisible = (c.is_whitespace() && !c.is_control())
            || c.general_category() == GeneralCategory::Format;
        invisible && !is_bidi_control(c)
    })
}

/// Whether `c` is one of Unicode's Bidi_Control characters, refused anywhere in a value.
pub fn is_bidi_control(c: char) -> bool {
    BIDI_CONTROLS.contains(&c)
}

/// Whether `part` mixes letters of several scripts, as an address spoofing another would
/// (UTS #39's "highly restrictive" level: Han may go with Hiragana and Katakana, with Hangul, or
/// with Bopomofo, as Japanese, Korean and Chinese text does).
fn mixes_scripts(part: &str) -> bool {
    let mut scripts: Vec<Script> = part
        .chars()
        .map(|c| c.script())
        .filter(|script| !matches!(script, Script::Common | Script::Inherited))
        .collect();
    scripts.sort_unstable_by_key(|script| *script as u16);
    scripts.dedup();
    if scripts.len() <= 1 {
        return false;
    }
    let within = |allowed: &[Script]| scripts.iter().all(|script| allowed.contains(script));
    !(within(&[Script::Han, Script::Hiragana, Script::Katakana])
        || within(&[Script::Han, Script::Hangul])
        || within(&[Script::Han, Script::Bopomofo]))
}

/// Whether `c` is one of Unicode's 66 noncharacters, reserved for a program's own use.
pub fn is_noncharacter(c: char) -> bool {
    ('\u{FDD0}'..='\u{FDEF}').contains(&c) || (u32::from(c) & 0xFFFE) == 0xFFFE
}

/// Refuses control characters anywhere (checked before trimming, which would drop a C1 `NEL`
/// at either end) and bidirectional controls; trims; refuses text that is empty or only
/// invisible format characters (a zero-width space or a BOM is not a name); normalises to NFC;
/// bounds the length.
pub(super) fn bounded_text(raw: &str, max_chars: usize) -> Result<String, RuleViolation> {
    if raw.chars().any(char::is_control) {
        return Err(RuleViolation::new(
            "control_character",
            "must not contain control characters",
        ));
    }
    if raw.chars().any(is_bidi_control) {
        return Err(RuleViolation::new(
            "control_character",
            "must not contain bidirectional controls (U+202A to U+202E, U+2066 to U+2069, marks)",
        ));
    }
    if raw.chars().any(is_noncharacter) {
        return Err(RuleViolation::new(
            "noncharacter",
            "must not contain Unicode noncharacters (U+FFFE, U+FFFF, U+FDD0 to U+FDEF and the \
             last two code points of every plane): no text holds them, and XML cannot",
        ));
    }
    let text = raw.trim();
    if is_blank(text) {
        return Err(RuleViolation::new(
            "empty",
            "must not be empty or only invisible characters",
        ));
    }
    // Most text is NFC already (all ASCII text is): then it is kept as it is.
    let text: String = match unicode_normalization::is_nfc_quick(text.chars()) {
        unicode_normalization::IsNormalized::Yes => text.to_owned(),
        _ => text.nfc().collect(),
    };
    let length = text.chars().count();
    if length > max_chars {
        return Err(RuleViolation::new(
            "too_long",
            format!("must be at most {max_chars} characters, got {length}"),
        ));
    }
    Ok(text)
}

/// A prefix of a text value: the rules of [`bounded_text`], but only leading whitespace is
/// trimmed, since a trailing space is part of what a prefix asks for.
pub(super) fn bounded_prefix(raw: &str, max_chars: usize) -> Result<String, RuleViolation> {
    let start = raw.trim_start();
    let kept_end = &start[start.trim_end().len()..];
    bounded_text(raw, max_chars).map(|text| text + kept_end)
}

fn invalid_format(rule: &str) -> RuleViolation {
    RuleViolation::new("invalid_format", format!("must be {rule}"))
}

impl PersonName {
    /// The seed's limit.
    pub const MAX_CHARS: usize = 125;

    /// # Errors
    /// Empty, control characters, or longer than [`PersonName::MAX_CHARS`].
    pub fn parse(raw: &str) -> Result<Self, RuleViolation> {
        bounded_text(raw, Self::MAX_CHARS).map(Self)
    }
}

impl OrganizationName {
    /// The seed's limit.
    pub const MAX_CHARS: usize = 255;

    /// # Errors
    /// Empty, control characters, or longer than [`OrganizationName::MAX_CHARS`].
    pub fn parse(raw: &str) -> Result<Self, RuleViolation> {
        bounded_text(raw, Self::MAX_CHARS).map(Self)
    }
}

impl Street {
    /// The seed's limit.
    pub const MAX_CHARS: usize = 128;

    /// # Errors
    /// Empty, control characters, or longer than [`Street::MAX_CHARS`].
    pub fn parse(raw: &str) -> Result<Self, RuleViolation> {
        bounded_text(raw, Self::MAX_CHARS).map(Self)
    }
}

impl City {
    /// The seed's limit.
    pub const MAX_CHARS: usize = 50;

    /// # Errors
    /// Empty, control characters, or longer than [`City::MAX_CHARS`].
    pub fn parse(raw: &str) -> Result<Self, RuleViolation> {
        bounded_text(raw, Self::MAX_CHARS).map(Self)
    }
}

impl Email {
    /// The seed's limit.
    pub const MAX_CHARS: usize = 100;

    /// # Errors
    /// Empty, control characters, too long, or not an address of the form `local@domain.tld`
    /// (RFC 5322 address syntax, without display names or IP-literal domains).
    pub fn parse(raw: &str) -> Result<Self, RuleViolation> {
        let text = bounded_text(raw, Self::MAX_CHARS)?;
        let options = email_address::Options::default()
            .with_required_tld()
            .without_domain_literal()
            .without_display_text();
        if email_address::EmailAddress::parse_with_options(&text, options).is_err() {
            return Err(invalid_format("an address like name@example.com"));
        }
        // An address that shows as another: an invisible character inside it, or a part that
        // mixes scripts (a Cyrillic `а` among Latin letters). An ASCII address can do neither.
        if !text.is_ascii()
            && text
                .chars()
                .any(|c| c.general_category() == GeneralCategory::Format)
        {
            return Err(invalid_format(
                "an address without invisible characters (a zero-width space, a soft hyphen)",
            ));
        }
        if !text.is_ascii() && text.split(['@', '.']).any(mixes_scripts) {
            return Err(invalid_format(
                "an address whose parts each keep to one script (a Cyrillic or Greek letter \
                 among Latin ones reads as another address)",
            ));
        }
        Ok(Self(text))
    }
}

impl Phone {
    /// The seed's limit, in digits.
    pub const MAX_DIGITS: usize = 15;
    /// Room for formatting around the digits.
    pub const MAX_CHARS: usize = 30;
    /// The characters that may format the digits (and a `+`, first), `-` first so that the
    /// set reads as a regex class too.
    pub const FORMATTING: &'static str = "-. ()";

    /// # Errors
    /// Empty, control characters, characters other than digits and formatting, a `+` other than
    /// the first character, no digit, or more than [`Phone::MAX_DIGITS`] digits.
    pub fn parse(raw: &str) -> Result<Self, RuleViolation> {
        let text = bounded_text(raw, Self::MAX_CHARS)?;
        let allowed = text.char_indices().all(|(at, c)| {
            c.is_ascii_digit() || Self::FORMATTING.contains(c) || (c == '+' && at == 0)
        });
        let digits = Self::digits_of(&text).count();
        if !allowed || digits == 0 {
            return Err(invalid_format(
                "digits, optionally formatted with a leading +, spaces, - . ( )",
            ));
        }
        if digits > Self::MAX_DIGITS {
            return Err(RuleViolation::new(
                "too_long",
                format!(
                    "must have at most {} digits, got {digits}",
                    Self::MAX_DIGITS
                ),
            ));
        }
        Ok(Self(text))
    }

    /// The digits alone, which is what phone filters match.
    pub fn digits_of(text: &str) -> impl Iterator<Item = char> + '_ {
        text.chars().filter(char::is_ascii_digit)
    }
}

impl State {
    /// The seed's limit.
    pub const MAX_CHARS: usize = 3;

    /// # Errors
    /// Empty, or anything but 1 to 3 ASCII letters or digits.
    pub fn parse(raw: &str) -> Result<Self, RuleViolation> {
        let text = bounded_text(raw, Self::MAX_CHARS)?;
        if text.chars().all(|c| c.is_ascii_alphanumeric()) {
            Ok(Self(text.to_ascii_uppercase()))
        } else {
            Err(invalid_format("1 to 3 letters or digits"))
        }
    }
}

impl ZipCode {
    /// The seed's limit.
    pub const MAX_CHARS: usize = 10;

    /// # Errors
    /// Empty, too long, or characters other than ASCII letters, digits, spaces and dashes.
    pub fn parse(raw: &str) -> Result<Self, RuleViolation> {
        let text = bounded_text(raw, Self::MAX_CHARS)?;
        let allowed = text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-');
        if allowed && text.chars().any(|c| c.is_ascii_alphanumeric()) {
            Ok(Self(text))
        } else {
            Err(invalid_format("letters, digits, spaces or dashes"))
        }
    }
}

impl CountryCode {
    /// A code's length.
    pub const MAX_CHARS: usize = 2;

    /// # Errors
    /// Anything but an assigned ISO 3166-1 alpha-2 code (in any case).
    pub fn parse(raw: &str) -> Result<Self, RuleViolation> {
        let code = bounded_text(raw, Self::MAX_CHARS)
            .map_err(|_| invalid_format("an assigned ISO 3166-1 alpha-2 code such as US or FR"))?
            .to_ascii_uppercase();
        if country_codes::is_assigned(&code) {
            Ok(Self(code))
        } else {
            Err(invalid_format(
                "an assigned ISO 3166-1 alpha-2 code such as US or FR",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code<T: fmt::Debug>(result: Result<T, RuleViolation>) -> &'static str {
        result.expect_err("should be refused").code
    }

    #[test]
    fn names_count_characters_not_bytes_at_the_edge() {
        assert!(PersonName::parse(&"É".repeat(125)).is_ok());
        assert_eq!(code(PersonName::parse(&"É".repeat(126))), "too_long");
        assert!(OrganizationName::parse(&"x".repeat(255)).is_ok());
        assert_eq!(code(OrganizationName::parse(&"x".repeat(256))), "too_long");
        assert!(Street::parse(&"x".repeat(128)).is_ok());
        assert_eq!(code(Street::parse(&"x".repeat(129))), "too_long");
        assert!(City::parse(&"ü".repeat(50)).is_ok());
        assert_eq!(code(City::parse(&"ü".repeat(51))), "too_long");
    }

    #[test]
    fn text_is_trimmed_and_composed() {
        let decomposed = "  E\u{301}mile ";
        let name = PersonName::parse(decomposed).unwrap();
        assert_eq!(name.as_str(), "Émile");
        assert_eq!(name.as_str().chars().count(), 5);
        let limit_in_decomposed_form = "e\u{301}".repeat(125);
        assert!(PersonName::parse(&limit_in_decomposed_form).is_ok());
    }

    #[test]
    fn an_email_that_shows_as_another_is_refused() {
        for spoof in [
            "a\u{200B}@example.com",
            "\u{0430}lice@example.com",
            "bob@ex\u{0430}mple.com",
        ] {
            assert_eq!(code(Email::parse(spoof)), "invalid_format", "{spoof:?}");
        }
        for fine in [
            "алиса@пример.рф",
            "bob@example.com",
            "太郎たろう@example.jp",
        ] {
            assert!(Email::parse(fine).is_ok(), "{fine}");
        }
    }

    #[test]
    fn noncharacters_are_refused() {
        for text in ["a\u{FFFF}b", "\u{FFFE}", "x\u{FDD0}", "\u{10FFFF}"] {
            assert_eq!(code(City::parse(text)), "noncharacter", "{text:?}");
        }
        assert!(City::parse("a\u{FFFD}b").is_ok());
    }

    #[test]
    fn control_characters_and_empty_text_are_refused_everywhere() {
        assert_eq!(code(PersonName::parse("Bo\u{0}b")), "control_character");
        assert_eq!(code(City::parse("New\nYork")), "control_character");
        assert_eq!(code(Street::parse("Main\u{85}St")), "control_character");
        assert_eq!(
            code(Email::parse("a\u{7f}@example.com")),
            "control_character"
        );
        assert_eq!(code(PersonName::parse("   ")), "empty");
        // At either end too: trimming must not make a control character vanish.
        assert_eq!(code(PersonName::parse("Bob\u{85}")), "control_character");
        assert_eq!(code(PersonName::parse("\u{85}Bob")), "control_character");
        assert_eq!(code(PersonName::parse("Bob\n")), "control_character");
        // Invisible characters alone are no name; bidi controls are refused anywhere.
        for invisible in ["\u{200B}", "\u{FEFF}", " \u{200B}\u{2060} ", "\u{AD}"] {
            assert_eq!(code(PersonName::parse(invisible)), "empty", "{invisible:?}");
        }
        assert_eq!(code(PersonName::parse("\u{202E}")), "control_character");
        assert_eq!(code(City::parse("abc\u{202E}exe")), "control_character");
        assert_eq!(code(City::parse("x\u{2066}y")), "control_character");
        // A joiner inside a name is fine (it shapes scripts and emoji).
        assert!(PersonName::parse("\u{915}\u{94D}\u{200D}\u{937}").is_ok());
    }

    #[test]
    fn emails_must_be_addresses() {
        assert!(Email::parse("emile.hamilton+billing@example.co.uk").is_ok());
        assert!(Email::parse("zoë@exämple.no").is_ok());
        let at_edge = format!("{}@{}.com", "a".repeat(50), "b".repeat(45));
        assert_eq!(at_edge.len(), 100);
        assert!(Email::parse(&at_edge).is_ok());
        let past_edge = format!("{}@{}.com", "a".repeat(50), "b".repeat(46));
        assert_eq!(code(Email::parse(&past_edge)), "too_long");
        for bad in [
            "plain",
            "a@b",
            "@example.com",
            "a@@example.com",
            "Émile <e@example.com>",
            "a b@example.com",
            "a@[127.0.0.1]",
        ] {
            assert_eq!(code(Email::parse(bad)), "invalid_format", "{bad}");
        }
    }

    #[test]
    fn phones_count_digits_and_keep_their_formatting() {
        assert_eq!(
            Phone::parse("+1 (212) 555-0101").unwrap().as_str(),
            "+1 (212) 555-0101"
        );
        assert!(Phone::parse("123456789012345").is_ok());
        assert_eq!(code(Phone::parse("1234567890123456")), "too_long");
        assert_eq!(
            code(Phone::parse("1-2-3-4-5-6-7-8-9-0-1-2-3-4-5-6")),
            "too_long"
        );
        for bad in ["call me", "12+34", "()", "555 0101 ext 2", "١٢٣"] {
            assert_eq!(code(Phone::parse(bad)), "invalid_format", "{bad}");
        }
        let digits: String = Phone::digits_of("(212) 555-0101").collect();
        assert_eq!(digits, "2125550101");
    }

    #[test]
    fn states_and_zip_codes_have_their_alphabets() {
        assert_eq!(State::parse("ny").unwrap().as_str(), "NY");
        assert!(State::parse("75").is_ok());
        assert!(State::parse("NSW").is_ok());
        assert_eq!(code(State::parse("NSWX")), "too_long");
        assert_eq!(code(State::parse("N-Y")), "invalid_format");
        assert_eq!(code(State::parse("ÉÉ")), "invalid_format");
        assert!(ZipCode::parse("SW1A 1AA").is_ok());
        assert!(ZipCode::parse("10001-1234").is_ok());
        assert_eq!(code(ZipCode::parse("10001-12345")), "too_long");
        assert_eq!(code(ZipCode::parse("10001_1")), "invalid_format");
        assert_eq!(code(ZipCode::parse("--")), "invalid_format");
    }

    #[test]
    fn country_codes_are_assigned_and_upper_cased() {
        assert_eq!(CountryCode::parse("fr").unwrap().as_str(), "FR");
        assert_eq!(CountryCode::parse(" us ").unwrap().as_str(), "US");
        for bad in ["ZZ", "UK", "USA", "U", "1A", "ÜS"] {
            assert_eq!(code(CountryCode::parse(bad)), "invalid_format", "{bad}");
        }
    }

    #[test]
    fn deserialising_goes_through_parse() {
        let parsed: Result<CountryCode, _> = serde_json::from_str("\"zz\"");
        assert!(parsed.is_err());
        let parsed: CountryCode = serde_json::from_str("\"de\"").unwrap();
        assert_eq!(parsed.as_str(), "DE");
    }
}
