//! A find's query string, decoded strictly: `application/x-www-form-urlencoded` pairs whose
//! percent-escapes are all well-formed and whose bytes are UTF-8. A lenient decoder turns `%C3`
//! or a lone `%` into a replacement character, and the filter then silently matches nothing.

use super::ApiError;
use crate::domain::{shown, FieldError, ValidationErrors, NAME_SHOWN};

/// The `name=value` pairs of `query`, in order, empty pairs skipped.
///
/// # Errors
/// [`ApiError::Validation`] naming every parameter whose name or value is not well-formed
/// percent-encoded UTF-8 (`invalid_format`).
pub fn decode(query: &str) -> Result<Vec<(String, String)>, ApiError> {
    let mut pairs = Vec::new();
    let mut errors = Vec::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        match (percent_decoded(raw_name), percent_decoded(raw_value)) {
            (Some(name), Some(value)) => pairs.push((name, value)),
            (name, _) => {
                let name = name.unwrap_or_else(|| raw_name.to_owned());
                let quoted = shown(&name, NAME_SHOWN);
                let message = format!(
                    "{quoted} is not well-formed: every % must start an escape of two hex \
                     digits, and the escapes must spell UTF-8"
                );
                errors.push(FieldError::new(&quoted, "invalid_format", message));
            }
        }
    }
    if errors.is_empty() {
        Ok(pairs)
    } else {
        Err(ApiError::Validation(ValidationErrors(errors)))
    }
}

/// `raw` with `+` read as a space and `%XX` as the byte it names; `None` when an escape is cut
/// short or not hex, or the bytes are not UTF-8.
fn percent_decoded(raw: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(raw.len());
    let mut rest = raw.as_bytes();
    while let Some((&byte, after)) = rest.split_first() {
        rest = after;
        match byte {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = rest.get(..2)?;
                let high = char::from(hex[0]).to_digit(16)?;
                let low = char::from(hex[1]).to_digit(16)?;
                bytes.push(u8::try_from(high * 16 + low).ok()?);
                rest = &rest[2..];
            }
            other => bytes.push(other),
        }
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(query: &str) -> Vec<(String, &'static str)> {
        match decode(query) {
            Err(ApiError::Validation(ValidationErrors(errors))) => errors
                .into_iter()
                .map(|error| (error.field, error.code))
                .collect(),
            other => panic!("{query}: {other:?}"),
        }
    }

    #[test]
    fn well_formed_pairs_decode_as_forms_do() {
        let pairs = decode("lastName=M%C3%BCller&city=New+York&&flag&email=a%2Bb%40c").unwrap();
        let expected = [
            ("lastName", "Müller"),
            ("city", "New York"),
            ("flag", ""),
            ("email", "a+b@c"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        assert_eq!(pairs, expected);
    }

    #[test]
    fn broken_escapes_and_other_encodings_name_their_parameter() {
        let invalid = |name: &str| vec![(name.to_owned(), "invalid_format")];
        assert_eq!(refused("firstName=%C3"), invalid("firstName"));
        assert_eq!(refused("firstName=%FF%FE"), invalid("firstName"));
        assert_eq!(refused("city=%"), invalid("city"));
        assert_eq!(refused("city=%4"), invalid("city"));
        assert_eq!(refused("city=%zz"), invalid("city"));
        assert_eq!(refused("ok=1&bad%=x"), invalid("bad%"));
        assert_eq!(
            refused("a=%C3&b=%E9t%E9").len(),
            2,
            "every broken parameter is named"
        );
    }
}
