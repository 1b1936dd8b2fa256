//! The postings of a layer in memory: for each term, the ordinals this layer indexes under it.
//!
//! A live layer keeps them ordered by term, so finds can read a term range at any moment. A
//! replay's layer (`rebuild`, `audit`, `export`) is read by nobody until it is flushed, so it
//! finds its terms by hash, keeps their bytes in one arena, and sorts them once, on the
//! flusher's thread: a tree insert and an allocation per term were most of what applying a
//! replayed event cost.

use super::terms::{TermRange, Terms};
use hashbrown::HashTable;
use roaring::RoaringBitmap;
use std::collections::BTreeMap;
use std::hash::BuildHasher;

/// The ordinals under one term; never empty. Most terms (an email, a phone, a street) hold one
/// customer, kept as itself; only a term shared by several gets a bitmap.
#[derive(Debug, Clone, PartialEq)]
pub enum Posting {
    /// A single ordinal.
    One(u32),
    /// Several.
    Many(RoaringBitmap),
}

impl Posting {
    /// Adds `ordinal`.
    pub fn insert(&mut self, ordinal: u32) {
        match self {
            Posting::One(only) if *only == ordinal => {}
            Posting::One(only) => *self = Posting::Many([*only, ordinal].into_iter().collect()),
            Posting::Many(ordinals) => {
                ordinals.insert(ordinal);
            }
        }
    }

    /// Removes `ordinal`; returns whether none is left (then drop the posting).
    pub fn remove(&mut self, ordinal: u32) -> bool {
        match self {
            Posting::One(only) => *only == ordinal,
            Posting::Many(ordinals) => {
                ordinals.remove(ordinal);
                match ordinals.min() {
                    None => true,
                    Some(only) if ordinals.len() == 1 => {
                        *self = Posting::One(only);
                        false
                    }
                    Some(_) => false,
                }
            }
        }
    }

    /// Adds every ordinal to `into`.
    pub fn add_to(&self, into: &mut RoaringBitmap) {
        match self {
            Posting::One(only) => {
                into.insert(*only);
            }
            Posting::Many(ordinals) => *into |= ordinals,
        }
    }

    /// The ordinals, ascending.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        let (one, many) = match self {
            Posting::One(only) => (Some(*only), None),
            Posting::Many(ordinals) => (None, Some(ordinals.iter())),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }
}

/// Visits one term's ordinals: `(term key, its ordinals ascending)`.
pub type PostingVisitor<'v, E> =
    dyn FnMut(&[u8], &mut dyn Iterator<Item = u32>) -> Result<(), E> + 'v;

/// A layer's postings; see the module doc.
#[derive(Debug)]
pub enum LayerPostings {
    /// Term key → its ordinals, ordered: a live layer.
    Ordered(BTreeMap<Box<[u8]>, Posting>),
    /// Terms hashed, their bytes in one arena: a replay's layer.
    Hashed(HashedPostings),
}

impl LayerPostings {
    /// Postings a live layer keeps, ordered.
    pub fn ordered() -> Self {
        LayerPostings::Ordered(BTreeMap::new())
    }

    /// Postings a replay's layer keeps, hashed.
    pub fn hashed() -> Self {
        LayerPostings::Hashed(HashedPostings::default())
    }

    /// The same kind of postings, empty.
    pub fn empty_like(&self) -> Self {
        match self {
            LayerPostings::Ordered(_) => Self::ordered(),
            LayerPostings::Hashed(_) => Self::hashed(),
        }
    }

    /// Indexes `ordinal` under each of `terms`.
    pub fn add(&mut self, ordinal: u32, terms: &Terms) {
        for term in terms.iter() {
            match self {
                LayerPostings::Ordered(postings) => match postings.get_mut(term) {
                    Some(posting) => posting.insert(ordinal),
                    None => {
                        postings.insert(term.into(), Posting::One(ordinal));
                    }
                },
                LayerPostings::Hashed(postings) => postings.add(ordinal, term),
            }
        }
    }

    /// Takes `ordinal` out of each of `terms`.
    pub fn remove(&mut self, ordinal: u32, terms: &Terms) {
        for term in terms.iter() {
            match self {
                LayerPostings::Ordered(postings) => {
                    if postings
                        .get_mut(term)
                        .is_some_and(|posting| posting.remove(ordinal))
                    {
                        postings.remove(term);
                    }
                }
                LayerPostings::Hashed(postings) => postings.remove(ordinal, term),
            }
        }
    }

    /// Adds to `into` the ordinals under every term in `range`; returns how many terms that was.
    /// (A replay's layer answers by reading all its terms: nobody asks it while it is live.)
    pub fn add_in(&self, range: &TermRange, into: &mut RoaringBitmap) -> usize {
        match self {
            LayerPostings::Ordered(postings) => {
                let bounds = (
                    std::ops::Bound::Included(range.start.as_slice()),
                    std::ops::Bound::Excluded(range.end.as_slice()),
                );
                let mut terms = 0;
                for (_, posting) in postings.range::<[u8], _>(bounds) {
                    posting.add_to(into);
                    terms += 1;
                }
                terms
            }
            LayerPostings::Hashed(postings) => postings.add_in(range, into),
        }
    }

    /// Calls `visit` for every term, in term order, with its ordinals ascending.
    ///
    /// # Errors
    /// The first error `visit` returns.
    pub fn for_each<E>(&self, visit: &mut PostingVisitor<'_, E>) -> Result<(), E> {
        match self {
            LayerPostings::Ordered(postings) => {
                for (term, posting) in postings {
                    visit(term, &mut posting.iter())?;
                }
                Ok(())
            }
            LayerPostings::Hashed(postings) => postings.for_each(visit),
        }
    }
}

/// A replay's postings: each term's bytes once in an arena, found by hash, its ordinals in a
/// list (they arrive in order, so adding one is a push).
#[derive(Debug, Default)]
pub struct HashedPostings {
    arena: Vec<u8>,
    entries: HashTable<HashedEntry>,
    hasher: hashbrown::DefaultHashBuilder,
}

#[derive(Debug)]
struct HashedEntry {
    start: u32,
    end: u32,
    ordinals: Ordinals,
}

impl HashedEntry {
    fn term<'a>(&self, arena: &'a [u8]) -> &'a [u8] {
        &arena[self.start as usize..self.end as usize]
    }
}

/// Ascending ordinals.
#[derive(Debug)]
enum Ordinals {
    One(u32),
    Many(Vec<u32>),
}

impl Ordinals {
    fn insert(&mut self, ordinal: u32) {
        match self {
            Ordinals::One(only) if *only == ordinal => {}
            Ordinals::One(only) => {
                let (low, high) = ((*only).min(ordinal), (*only).max(ordinal));
                *self = Ordinals::Many(vec![low, high]);
            }
            Ordinals::Many(list) => match list.last() {
                Some(last) if *last < ordinal => list.push(ordinal),
                _ => {
                    if let Err(at) = list.binary_search(&ordinal) {
                        list.insert(at, ordinal);
                    }
                }
            },
        }
    }

    /// Removes `ordinal`; returns whether none is left.
    fn remove(&mut self, ordinal: u32) -> bool {
        match self {
            Ordinals::One(only) => *only == ordinal,
            Ordinals::Many(list) => {
                if let Ok(at) = list.binary_search(&ordinal) {
                    list.remove(at);
                }
                list.is_empty()
            }
        }
    }

    fn as_slice(&self) -> &[u32] {
        match self {
            Ordinals::One(only) => std::slice::from_ref(only),
            Ordinals::Many(list) => list,
        }
    }
}

impl HashedPostings {
    fn add(&mut self, ordinal: u32, term: &[u8]) {
        let Self {
            arena,
            entries,
            hasher,
        } = self;
        let hash = hasher.hash_one(term);
        if let Some(entry) = entries.find_mut(hash, |entry| entry.term(arena) == term) {
            entry.ordinals.insert(ordinal);
            return;
        }
        let start = arena.len() as u32;
        arena.extend_from_slice(term);
        let entry = HashedEntry {
            start,
            end: arena.len() as u32,
            ordinals: Ordinals::One(ordinal),
        };
        entries.insert_unique(hash, entry, |entry| hasher.hash_one(entry.term(arena)));
    }

    fn remove(&mut self, ordinal: u32, term: &[u8]) {
        let Self {
            arena,
            entries,
            hasher,
        } = self;
        if let Ok(mut entry) =
            entries.find_entry(hasher.hash_one(term), |entry| entry.term(arena) == term)
        {
            if entry.get_mut().ordinals.remove(ordinal) {
                entry.remove();
            }
        }
    }

    fn add_in(&self, range: &TermRange, into: &mut RoaringBitmap) -> usize {
        let mut terms = 0;
        for entry in self.entries.iter() {
            if range.contains(entry.term(&self.arena)) {
                into.extend(entry.ordinals.as_slice().iter().copied());
                terms += 1;
            }
        }
        terms
    }

    fn for_each<E>(&self, visit: &mut PostingVisitor<'_, E>) -> Result<(), E> {
        // Sorted by the key's first 8 bytes as a number first: most comparisons end there,
        // without comparing bytes. (Term keys end with their only 0 byte, so padding a short
        // one with zeros keeps their order.)
        let mut sorted: Vec<(u64, &[u8], &Ordinals)> = self
            .entries
            .iter()
            .map(|entry| {
                let term = entry.term(&self.arena);
                let mut head = [0u8; 8];
                let len = term.len().min(8);
                head[..len].copy_from_slice(&term[..len]);
                (u64::from_be_bytes(head), term, &entry.ordinals)
            })
            .collect();
        sorted.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        for (_, term, ordinals) in sorted {
            visit(term, &mut ordinals.as_slice().iter().copied())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AccountId, Customer, CustomerDetails, TextField};
    use crate::read_model::terms::{account_term, term_key, IndexedField};

    #[test]
    fn a_posting_grows_and_shrinks_back_to_one() {
        let mut posting = Posting::One(7);
        posting.insert(7);
        assert_eq!(posting, Posting::One(7));
        posting.insert(3);
        assert_eq!(posting.iter().collect::<Vec<_>>(), vec![3, 7]);
        assert!(!posting.remove(7));
        assert_eq!(posting, Posting::One(3));
        assert!(!posting.remove(9), "another ordinal leaves it as it was");
        assert!(posting.remove(3));
        let mut union = RoaringBitmap::new();
        Posting::One(1).add_to(&mut union);
        Posting::Many([4, 5].into_iter().collect()).add_to(&mut union);
        assert_eq!(union.iter().collect::<Vec<_>>(), vec![1, 4, 5]);
    }

    /// Every term's ordinals, as `for_each` gives them.
    fn listed(postings: &LayerPostings) -> Vec<(Vec<u8>, Vec<u32>)> {
        let mut listed = Vec::new();
        postings
            .for_each::<()>(&mut |term, ordinals| {
                listed.push((term.to_vec(), ordinals.collect()));
                Ok(())
            })
            .unwrap();
        listed
    }

    fn terms(account: i64, last_names: &[&str]) -> Vec<Terms> {
        last_names
            .iter()
            .map(|name| {
                let mut details = CustomerDetails::for_account(AccountId::parse(account).unwrap());
                details.set_text(TextField::LastName, name).unwrap();
                Terms::of(&Customer::register(details))
            })
            .collect()
    }

    #[test]
    fn ordered_and_hashed_postings_answer_alike() {
        let (five, two, nine) = (
            &terms(1, &["B"])[0],
            &terms(2, &["Bc"])[0],
            &terms(1, &["A"])[0],
        );
        let term = |name: &str| term_key(IndexedField::Text(TextField::LastName), name.as_bytes());
        let account = |id: i64| account_term(AccountId::parse(id).unwrap());
        for mut postings in [LayerPostings::ordered(), LayerPostings::hashed()] {
            postings.add(5, five);
            postings.add(2, two);
            postings.add(9, nine);
            postings.add(3, nine);
            postings.remove(9, nine);
            postings.add(9, nine);
            postings.remove(3, nine);
            assert_eq!(
                listed(&postings),
                vec![
                    (term("a"), vec![9]),
                    (term("b"), vec![5]),
                    (term("bc"), vec![2]),
                    (account(1), vec![5, 9]),
                    (account(2), vec![2]),
                ]
            );
            let mut found = RoaringBitmap::new();
            let range = TermRange::of(TextField::LastName, "b", false);
            assert_eq!(postings.add_in(&range, &mut found), 2);
            assert_eq!(found.iter().collect::<Vec<_>>(), vec![2, 5]);
        }
    }
}
