//! The character classes and patterns of the document's text schemas: regex text that
//! ECMA-262, Python's `re` and Rust's `regex` read alike.
//!
//! The classes are worked out from the domain's own predicates over the Basic Multilingual
//! Plane (what a `\uXXXX` escape names), so that a pattern refuses, trims and takes as blank
//! what the rules do. Formats the domain checks with code the patterns only approximate (an
//! email address): the descriptions say so.

use crate::domain::{
    is_bidi_control, is_blank, is_noncharacter, CustomerCode, Phone, State, ASSIGNED_ALPHA_2,
};
use std::sync::LazyLock;

/// A customer id as the server writes it: lower-case, hyphenated.
pub const UUID_LOWER: &str = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";

/// A time as the server writes it: RFC 3339, UTC, milliseconds.
pub const MILLIS: &str = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$";

/// The character classes, as the text between a class's brackets.
struct Classes {
    /// Control characters (Cc: C0, DEL, C1): refused anywhere (`control_character`).
    control: String,
    /// Bidirectional controls: refused anywhere (`control_character`).
    bidi: String,
    /// White_Space that is not a control: what trimming removes.
    spaces: String,
    /// Invisible characters that are not bidirectional controls: with `spaces`, what a blank
    /// value holds.
    invisible: String,
    /// Format characters (Cf), bidirectional controls included.
    format: String,
    /// Unicode's noncharacters (`noncharacter`).
    noncharacters: String,
}

static CLASSES: LazyLock<Classes> = LazyLock::new(|| {
    let blank = |c: char| is_blank(c.encode_utf8(&mut [0; 4]));
    Classes {
        control: class_of(char::is_control),
        bidi: class_of(is_bidi_control),
        spaces: class_of(|c| blank(c) && c.is_whitespace()),
        invisible: class_of(|c| blank(c) && !c.is_whitespace()),
        format: class_of(|c| (blank(c) && !c.is_whitespace()) || is_bidi_control(c)),
        noncharacters: class_of(is_noncharacter),
    }
});

/// The characters of the Basic Multilingual Plane that `member` takes, as class text: a run of
/// three or more as a range, printable ASCII as itself.
fn class_of(member: impl Fn(char) -> bool) -> String {
    let members: Vec<u32> = (0..=0xFFFF)
        .filter(|&code| char::from_u32(code).is_some_and(&member))
        .collect();
    let shown = |code: u32| match char::from_u32(code) {
        Some(c) if c.is_ascii_alphanumeric() || c == ' ' => c.to_string(),
        _ => format!("\\u{code:04X}"),
    };
    let mut class = String::new();
    let mut at = 0;
    while at < members.len() {
        let mut end = at;
        while end + 1 < members.len() && members[end + 1] == members[end] + 1 {
            end += 1;
        }
        if end - at >= 2 {
            class += &format!("{}-{}", shown(members[at]), shown(members[end]));
        } else {
            members[at..=end]
                .iter()
                .for_each(|&code| class += &shown(code));
        }
        at = end + 1;
    }
    class
}

/// A blank value: only spaces and invisible characters. A blank body value leaves its field
/// out (or clears it); a blank filter is refused.
pub fn blank() -> String {
    format!("[{}{}]*", CLASSES.spaces, CLASSES.invisible)
}

/// One character a value may hold anywhere.
pub fn allowed() -> String {
    let classes = &*CLASSES;
    format!(
        "[^{}{}{}]",
        classes.control, classes.bidi, classes.noncharacters
    )
}

/// One character a value may hold that shows something.
pub fn visible() -> String {
    let classes = &*CLASSES;
    format!(
        "[^{}{}{}{}{}]",
        classes.control, classes.bidi, classes.noncharacters, classes.spaces, classes.format
    )
}

/// `core` with the spaces trimming removes around it.
pub fn trimmed(core: &str) -> String {
    let spaces = &CLASSES.spaces;
    format!("[{spaces}]*{core}[{spaces}]*")
}

/// A pattern matching the whole value to one of `alternatives`.
pub fn anchored(alternatives: &[&str]) -> String {
    format!("^(?:{})$", alternatives.join("|"))
}

/// A phone: digits and their formatting, a `+` first.
pub fn phone() -> String {
    let formatting = Phone::FORMATTING;
    format!(
        r"\+?[{formatting}]*(?:[0-9][{formatting}]*){{1,{}}}",
        Phone::MAX_DIGITS
    )
}

/// A state: ASCII letters or digits.
pub fn state() -> String {
    format!("[A-Za-z0-9]{{1,{}}}", State::MAX_CHARS)
}

/// A zip code: ASCII letters, digits, spaces and dashes, a letter or digit among them.
pub const ZIP: &str = "[-A-Za-z0-9 ]*[A-Za-z0-9][-A-Za-z0-9 ]*";

/// A code: ASCII letters, digits and the code's punctuation.
pub fn code() -> String {
    format!(
        "[A-Za-z0-9{}]{{1,{}}}",
        CustomerCode::PUNCTUATION,
        CustomerCode::MAX_CHARS
    )
}

/// A plain ASCII dot-atom address, which is always accepted (the rule takes more: quoted
/// local parts, non-ASCII letters).
pub fn email() -> String {
    let atext = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]";
    let label = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
    format!(r"{atext}{{1,32}}(?:\.{atext}{{1,15}}){{0,2}}@{label}(?:\.{label})+")
}

/// An assigned country code in any case, one alternative per first letter (`[Aa][D-GI...]`):
/// OpenAPI Generator's Python generator overflows Java's regex stack on a pattern of one
/// alternative per code, some 2,700 characters long.
pub fn country_any_case() -> String {
    COUNTRY_ANY_CASE.clone()
}

static COUNTRY_ANY_CASE: LazyLock<String> = LazyLock::new(|| {
    let mut firsts: Vec<char> = ASSIGNED_ALPHA_2
        .iter()
        .filter_map(|code| code.chars().next())
        .collect();
    firsts.dedup();
    let alternatives: Vec<String> = firsts
        .into_iter()
        .map(|first| {
            let seconds: Vec<char> = ASSIGNED_ALPHA_2
                .iter()
                .filter(|code| code.starts_with(first))
                .filter_map(|code| code.chars().nth(1))
                .collect();
            let second = class_of(|c| seconds.contains(&c.to_ascii_uppercase()));
            format!("[{first}{}][{second}]", first.to_ascii_lowercase())
        })
        .collect();
    format!("(?:{})", alternatives.join("|"))
});
