//! The postings of a layer in memory: for each term, the ordinals this layer indexes under it.
//!
//! A live layer keeps them ordered by term, so finds can read a term range at any moment. A
//! replay's layer (`rebuild`, `audit`, `export`) is read by nobody until it is flushed, so it only
//! appends `(term, ordinal)` pairs and sorts them once, on the flusher's thread: a tree insert
//! per term was most of what applying a replayed event cost.

use super::terms::TermRange;
use roaring::RoaringBitmap;
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashSet};

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
    /// Pairs in the order they came, and pairs taken out since: a replay's layer.
    Appended {
        /// Every `(term, ordinal)` added.
        pairs: Vec<(Box<[u8]>, u32)>,
        /// Pairs taken out after they were added (a replaced or removed customer).
        removed: HashSet<(Box<[u8]>, u32)>,
    },
}

impl LayerPostings {
    /// Postings a live layer keeps, ordered.
    pub fn ordered() -> Self {
        LayerPostings::Ordered(BTreeMap::new())
    }

    /// Postings a replay's layer keeps, appended.
    pub fn appended() -> Self {
        LayerPostings::Appended {
            pairs: Vec::new(),
            removed: HashSet::new(),
        }
    }

    /// The same kind of postings, empty.
    pub fn empty_like(&self) -> Self {
        match self {
            LayerPostings::Ordered(_) => Self::ordered(),
            LayerPostings::Appended { .. } => Self::appended(),
        }
    }

    /// Indexes `ordinal` under each of `terms`.
    pub fn add(&mut self, ordinal: u32, terms: Vec<Vec<u8>>) {
        for term in terms {
            // Terms come with exact capacity: boxing them does not reallocate.
            let term = term.into_boxed_slice();
            match self {
                LayerPostings::Ordered(postings) => match postings.entry(term) {
                    Entry::Occupied(mut held) => held.get_mut().insert(ordinal),
                    Entry::Vacant(free) => {
                        free.insert(Posting::One(ordinal));
                    }
                },
                LayerPostings::Appended { pairs, removed } => {
                    let pair = (term, ordinal);
                    removed.remove(&pair);
                    pairs.push(pair);
                }
            }
        }
    }

    /// Takes `ordinal` out of each of `terms`.
    pub fn remove(&mut self, ordinal: u32, terms: &[Vec<u8>]) {
        for term in terms {
            match self {
                LayerPostings::Ordered(postings) => {
                    if let Some(posting) = postings.get_mut(term.as_slice()) {
                        if posting.remove(ordinal) {
                            postings.remove(term.as_slice());
                        }
                    }
                }
                LayerPostings::Appended { removed, .. } => {
                    removed.insert((term.clone().into_boxed_slice(), ordinal));
                }
            }
        }
    }

    /// Adds to `into` the ordinals under every term in `range`; returns how many terms that was.
    /// (A replay's layer answers by reading all its pairs: nobody asks it while it is live.)
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
            LayerPostings::Appended { pairs, removed } => {
                let mut terms = HashSet::new();
                for pair in pairs {
                    if range.contains(&pair.0) && !removed.contains(pair) {
                        into.insert(pair.1);
                        terms.insert(&pair.0);
                    }
                }
                terms.len()
            }
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
            }
            LayerPostings::Appended { pairs, removed } => {
                // Sorted by the key's first 8 bytes as a number first: most comparisons end
                // there, without comparing bytes. (Term keys end with their only 0 byte, so
                // padding a short one with zeros keeps their order.)
                let mut sorted: Vec<(u64, &[u8], u32)> = pairs
                    .iter()
                    .filter(|pair| removed.is_empty() || !removed.contains(*pair))
                    .map(|(term, ordinal)| {
                        let mut head = [0u8; 8];
                        let len = term.len().min(8);
                        head[..len].copy_from_slice(&term[..len]);
                        (u64::from_be_bytes(head), term.as_ref(), *ordinal)
                    })
                    .collect();
                sorted.sort_unstable();
                sorted.dedup();
                for run in sorted.chunk_by(|a, b| a.1 == b.1) {
                    visit(run[0].1, &mut run.iter().map(|pair| pair.2))?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn ordered_and_appended_postings_answer_alike() {
        let term = |text: &str| text.as_bytes().to_vec();
        for mut postings in [LayerPostings::ordered(), LayerPostings::appended()] {
            postings.add(5, vec![term("b"), term("a")]);
            postings.add(2, vec![term("b"), term("c")]);
            postings.add(9, vec![term("ab")]);
            postings.remove(2, &[term("b")]);
            postings.remove(9, &[term("ab")]);
            postings.add(9, vec![term("ab")]);
            assert_eq!(
                listed(&postings),
                vec![
                    (term("a"), vec![5]),
                    (term("ab"), vec![9]),
                    (term("b"), vec![5]),
                    (term("c"), vec![2])
                ]
            );
            let mut found = RoaringBitmap::new();
            let range = TermRange {
                start: term("a"),
                end: term("b"),
            };
            assert_eq!(postings.add_in(&range, &mut found), 2);
            assert_eq!(found.iter().collect::<Vec<_>>(), vec![5, 9]);
        }
    }
}
