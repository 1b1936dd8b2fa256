//! The search form of a field's value: what indexes store and filters compare. Text folds case
//! and accents (`José` → `jose`, `Müller` → `muller`); a phone keeps its digits alone.
//!
//! Folding works character by character (compatibility decomposition, lower case, combining
//! marks dropped), so the form of a prefix is always a prefix of the form of the whole: that is
//! what lets a byte-prefix scan of an index answer a prefix filter.

use crate::domain::{Phone, TextField};
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// The form `value` of `field` takes in indexes and comparisons.
pub fn search_form(field: TextField, value: &str) -> String {
    if field == TextField::Phone {
        Phone::digits_of(value).collect()
    } else {
        value
            .nfkd()
            .flat_map(char::to_lowercase)
            .filter(|c| !is_combining_mark(*c))
            .collect()
    }
}

/// `state` and `countryCode` match whole values; every other text field matches prefixes.
pub fn matches_whole_value(field: TextField) -> bool {
    matches!(field, TextField::State | TextField::CountryCode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_and_accents_fold_away() {
        assert_eq!(search_form(TextField::FirstName, "José"), "jose");
        assert_eq!(search_form(TextField::LastName, "MÜLLER"), "muller");
        assert_eq!(search_form(TextField::City, "Ærøskøbing"), "ærøskøbing");
        assert_eq!(search_form(TextField::Street, "ＦＵＬＬ"), "full");
        assert_eq!(search_form(TextField::LastName, "ΟΔΟΣ"), "οδοσ");
    }

    #[test]
    fn composed_and_decomposed_input_fold_alike() {
        assert_eq!(
            search_form(TextField::FirstName, "E\u{301}mile"),
            search_form(TextField::FirstName, "Émile")
        );
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
        let whole = "Ὀδυσσεύς Müller-Lüdenscheidt";
        for end in whole.char_indices().map(|(at, _)| at) {
            let prefix = search_form(TextField::LastName, &whole[..end]);
            assert!(search_form(TextField::LastName, whole).starts_with(&prefix));
        }
    }
}
