//! What the index is keyed by: a term is an indexed field and a value's search form, encoded as
//! bytes that sort the way a prefix filter reads them.
//!
//! A term key is `tag ++ value ++ 0`: the field's tag (one byte, fixed forever: it is written to
//! disk), then the value's search form, then a 0 byte (search forms never hold one: control
//! characters are refused at the edge). Every term whose value starts with a prefix lies in one
//! contiguous range; a whole value is the range of its one key.

use super::fold::search_form;
use crate::domain::{AccountId, Customer, TextField};

/// An indexed field: one of the customer's text fields, or its account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexedField {
    /// A text field, by its search form.
    Text(TextField),
    /// The account, as 4 big-endian bytes.
    Account,
}

impl IndexedField {
    /// The tag written to disk before every term of this field. These numbers never change: a
    /// new field takes a new number, and an old read model is rebuilt, never reinterpreted.
    pub const fn tag(self) -> u8 {
        match self {
            IndexedField::Text(TextField::FirstName) => 1,
            IndexedField::Text(TextField::LastName) => 2,
            IndexedField::Text(TextField::OrganizationName) => 3,
            IndexedField::Text(TextField::Email) => 4,
            IndexedField::Text(TextField::Phone) => 5,
            IndexedField::Text(TextField::Street) => 6,
            IndexedField::Text(TextField::City) => 7,
            IndexedField::Text(TextField::State) => 8,
            IndexedField::Text(TextField::ZipCode) => 9,
            IndexedField::Text(TextField::CountryCode) => 10,
            IndexedField::Account => 64,
        }
    }
}

/// The end of every term key.
const TERMINATOR: u8 = 0;

/// The key of `field`'s term with search form `value`.
pub fn term_key(field: IndexedField, value: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(value.len() + 2);
    key.push(field.tag());
    key.extend_from_slice(value);
    key.push(TERMINATOR);
    key
}

/// The key of an account's term.
pub fn account_term(account_id: AccountId) -> Vec<u8> {
    term_key(IndexedField::Account, &account_id.get().to_be_bytes())
}

/// The range of term keys a filter selects: `[start, end)`. A prefix filter's range holds every
/// term whose value starts with `needle`; a whole-value filter's holds the one term `needle`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TermRange {
    /// The first key in the range.
    pub start: Vec<u8>,
    /// The first key past the range.
    pub end: Vec<u8>,
}

impl TermRange {
    /// The terms of `field` whose search form is `needle` (`whole`) or starts with it.
    pub fn of(field: TextField, needle: &str, whole: bool) -> Self {
        let field = IndexedField::Text(field);
        if whole {
            Self::exactly(term_key(field, needle.as_bytes()))
        } else {
            let mut start = vec![field.tag()];
            start.extend_from_slice(needle.as_bytes());
            // Every key under the prefix continues with a byte ≤ 0xFF; the last byte is never
            // 0xFF in UTF-8, so incrementing it bounds the range.
            let mut end = start.clone();
            let last = end.last_mut().expect("a range starts with its tag");
            *last += 1;
            Self { start, end }
        }
    }

    /// The range holding only `key`.
    pub fn exactly(key: Vec<u8>) -> Self {
        let mut end = key.clone();
        end.push(TERMINATOR);
        Self { start: key, end }
    }

    /// The longest prefix every key in the range starts with: the whole start for a range of
    /// keys under a prefix or of one key, else what start and end share.
    pub fn shared_prefix(&self) -> &[u8] {
        let (start, end) = (self.start.as_slice(), self.end.as_slice());
        let one_key = self.single_key().is_some();
        let under_prefix = match (start.split_last(), end.split_last()) {
            (Some((last, head)), Some((end_last, end_head))) => {
                head == end_head && last.checked_add(1) == Some(*end_last)
            }
            _ => false,
        };
        if one_key || under_prefix {
            return start;
        }
        let shared = start.iter().zip(end).take_while(|(a, b)| a == b).count();
        &start[..shared]
    }

    /// The one key the range holds, when it holds one only (a range made by
    /// [`TermRange::exactly`]).
    pub fn single_key(&self) -> Option<&[u8]> {
        let (start, end) = (self.start.as_slice(), self.end.as_slice());
        let one_key = end.len() == start.len() + 1
            && end.starts_with(start)
            && end.last() == Some(&TERMINATOR);
        one_key.then_some(start)
    }

    /// Whether `key` lies in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        self.start.as_slice() <= key && key < self.end.as_slice()
    }
}

/// The term keys one customer is indexed under, back to back in one buffer (one allocation per
/// customer, not one per term).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Terms {
    bytes: Vec<u8>,
    ends: Vec<u32>,
}

impl Terms {
    /// Every term `customer` is indexed under: each present text field whose search form is not
    /// empty, and the account.
    pub fn of(customer: &Customer) -> Self {
        let details = &customer.details;
        let mut terms = Terms {
            bytes: Vec::with_capacity(192),
            ends: Vec::with_capacity(TextField::ALL.len() + 1),
        };
        for field in TextField::ALL {
            if let Some(value) = details.text(field) {
                let form = search_form(field, value);
                if !form.is_empty() {
                    terms.push(IndexedField::Text(field), form.as_bytes());
                }
            }
        }
        terms.push(
            IndexedField::Account,
            &details.account_id.get().to_be_bytes(),
        );
        terms
    }

    fn push(&mut self, field: IndexedField, value: &[u8]) {
        self.bytes.push(field.tag());
        self.bytes.extend_from_slice(value);
        self.bytes.push(TERMINATOR);
        self.ends.push(self.bytes.len() as u32);
    }

    /// Each term key, in field order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(start, end)| &self.bytes[start as usize..end as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CustomerDetails;

    #[test]
    fn every_key_of_a_range_starts_with_its_shared_prefix() {
        let under = TermRange::of(TextField::Email, "ann@ex", false);
        assert_eq!(under.shared_prefix(), b"\x04ann@ex");
        let one = TermRange::exactly(term_key(IndexedField::Text(TextField::State), b"CA"));
        assert_eq!(one.shared_prefix(), b"\x08CA\x00");
        let wide = TermRange {
            start: b"\x02ab".to_vec(),
            end: b"\x02b".to_vec(),
        };
        assert_eq!(wide.shared_prefix(), b"\x02");
        for key in [&b"\x02ab"[..], b"\x02az\x00", b"\x02a\xff"] {
            assert!(wide.contains(key) && key.starts_with(wide.shared_prefix()));
        }
    }

    #[test]
    fn tags_on_disk_never_change() {
        let tags: Vec<(&str, u8)> = TextField::ALL
            .into_iter()
            .map(|field| (field.name(), IndexedField::Text(field).tag()))
            .chain([("accountId", IndexedField::Account.tag())])
            .collect();
        assert_eq!(
            tags,
            vec![
                ("firstName", 1),
                ("lastName", 2),
                ("organizationName", 3),
                ("email", 4),
                ("phone", 5),
                ("street", 6),
                ("city", 7),
                ("state", 8),
                ("zipCode", 9),
                ("countryCode", 10),
                ("accountId", 64),
            ]
        );
        assert_eq!(
            term_key(IndexedField::Text(TextField::City), b"paris"),
            b"\x07paris\x00"
        );
        assert_eq!(
            account_term(AccountId::parse(258).unwrap()),
            vec![64, 0, 0, 1, 2, 0]
        );
    }

    #[test]
    fn a_prefix_range_holds_exactly_the_terms_that_start_with_it() {
        let field = IndexedField::Text(TextField::LastName);
        let range = TermRange::of(TextField::LastName, "ham", false);
        assert!(range.contains(&term_key(field, b"ham")));
        assert!(range.contains(&term_key(field, b"hamilton")));
        assert!(range.contains(&term_key(field, "hamé".as_bytes())));
        assert!(!range.contains(&term_key(field, b"ha")));
        assert!(!range.contains(&term_key(field, b"hb")));
        assert!(!range.contains(&term_key(IndexedField::Text(TextField::City), b"ham")));
        let whole = TermRange::of(TextField::State, "ny", true);
        assert!(whole.contains(&term_key(IndexedField::Text(TextField::State), b"ny")));
        assert!(!whole.contains(&term_key(IndexedField::Text(TextField::State), b"nya")));
    }

    #[test]
    fn a_customer_is_indexed_under_its_fields_and_account() {
        let mut details = CustomerDetails::for_account(AccountId::parse(7).unwrap());
        details.set_text(TextField::LastName, "Øre").unwrap();
        details.set_text(TextField::FirstName, "\u{301}").unwrap();
        let terms = Terms::of(&Customer::register(details));
        let expected = [
            term_key(IndexedField::Text(TextField::LastName), b"ore"),
            account_term(AccountId::parse(7).unwrap()),
        ];
        assert_eq!(
            terms.iter().collect::<Vec<_>>(),
            expected.iter().map(Vec::as_slice).collect::<Vec<_>>(),
            "a value that folds to nothing is not indexed"
        );
    }
}
