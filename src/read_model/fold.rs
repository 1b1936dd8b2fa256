//! The search form of a field's value: what indexes store and filters compare. Text is folded so
//! that a customer base written in many languages is found the way people type:
//!
//! 1. compatibility decomposition (NFKD), so `é` is `e` + an accent and `ＦＵＬＬ` is `FULL`;
//! 2. combining marks dropped (`José` → `jose`, `Müller` → `muller`);
//! 3. full Unicode case folding (`caseless`): `Straße` → `strasse`, `ΟΔΟΣ` → `οδοσ`;
//! 4. Latin letters that do not decompose, and punctuation, transliterated to ASCII (`any_ascii`):
//!    `ı` → `i`, `ø` → `o`, `ł` → `l`, `æ` → `ae`, `’` → `'`. Letters of other scripts (Greek,
//!    Cyrillic, Han, ...) are kept, case-folded: transliterating them would make a Latin prefix
//!    match unrelated names.
//!
//! A phone keeps its digits alone. Every step works character by character (the reordering of
//! combining marks that NFKD adds is moot, since they are dropped), so the form of a prefix is
//! always a prefix of the form of the whole: that is what lets a term range of the index answer a
//! prefix filter.

use crate::domain::{Phone, TextField};
use any_ascii::any_ascii_char;
use caseless::Caseless;
use unicode_normalization::char::{decompose_compatible, is_combining_mark};
use unicode_script::{Script, UnicodeScript};

/// The form `value` of `field` takes in indexes and comparisons; empty when nothing in it can be
/// searched (e.g. a lone combining mark).
pub fn search_form(field: TextField, value: &str) -> String {
    if field == TextField::Phone {
        return Phone::digits_of(value).collect();
    }
    let mut form = String::with_capacity(value.len());
    for c in value.chars() {
        if c.is_ascii() {
            form.push(c.to_ascii_lowercase());
        } else {
            decompose_compatible(c, |part| fold_part(part, &mut form));
        }
    }
    form
}

/// Folds one character of a compatibility decomposition onto `form`.
fn fold_part(part: char, form: &mut String) {
    if is_combining_mark(part) {
        return;
    }
    for folded in std::iter::once(part).default_case_fold() {
        if folded.is_ascii() {
            form.push(folded);
        } else if is_combining_mark(folded) {
            // Case folding can split a letter off its accent again (U+0130 → i + U+0307).
        } else if matches!(folded.script(), Script::Latin | Script::Common) {
            form.extend(
                any_ascii_char(folded)
                    .chars()
                    .map(|c| c.to_ascii_lowercase()),
            );
        } else {
            form.push(folded);
        }
    }
}

/// `state` and `countryCode` match whole values; every other text field matches prefixes.
pub fn matches_whole_value(field: TextField) -> bool {
    matches!(field, TextField::State | TextField::CountryCode)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(value: &str) -> String {
        search_form(TextField::LastName, value)
    }

    #[test]
    fn case_and_accents_fold_away() {
        assert_eq!(search_form(TextField::FirstName, "José"), "jose");
        assert_eq!(form("MÜLLER"), "muller");
        assert_eq!(search_form(TextField::Street, "ＦＵＬＬ"), "full");
        assert_eq!(form("ΟΔΟΣ"), "οδοσ");
        assert_eq!(form("Ὀδυσσεύς"), "οδυσσευσ");
    }

    #[test]
    fn letters_that_do_not_decompose_are_transliterated() {
        for (typed, stored) in [
            ("yilmaz", "Yılmaz"),
            ("oystein", "Øystein"),
            ("lukasz", "Łukasz"),
            ("aesir", "Æsir"),
            ("strasse", "Straße"),
            ("straße", "Strasse"),
            ("aeroskobing", "Ærøskøbing"),
            ("istanbul", "İstanbul"),
            ("thorsdottir", "Þórsdóttir"),
            ("o'b", "O’Brien"),
            ("o’b", "O'Brien"),
        ] {
            assert!(
                form(stored).starts_with(&form(typed)),
                "{typed} finds {stored}"
            );
        }
        assert_eq!(form("Иван"), "иван", "other scripts keep their letters");
    }

    #[test]
    fn composed_and_decomposed_input_fold_alike() {
        assert_eq!(form("E\u{301}mile"), form("Émile"));
    }

    #[test]
    fn what_folds_to_nothing_is_empty() {
        assert_eq!(form("\u{301}"), "");
        assert_eq!(form("\u{301}\u{308}"), "");
    }

    #[test]
    fn phones_keep_digits_alone() {
        assert_eq!(
            search_form(TextField::Phone, "+1 (212) 555-0101"),
            "12125550101"
        );
    }

    #[test]
    fn the_form_of_a_prefix_is_a_prefix_of_the_form() {
        let whole = "Ὀδυσσεύς Müller-Lüdenscheidt Straße Øre Łódź İzmir ﬁn’";
        for end in whole.char_indices().map(|(at, _)| at) {
            let prefix = form(&whole[..end]);
            assert!(form(whole).starts_with(&prefix), "{:?}", &whole[..end]);
        }
    }
}
