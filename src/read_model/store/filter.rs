//! Prefix filters: per segment, a Bloom filter of the first [`PREFIX_BYTES`] bytes of every term
//! key at least that long. A find reads every segment of the index for its term range, and a
//! segment costs a sled seek and a block parse even when it holds nothing in the range (an email
//! find read 4 to 11 segments to find one term: a third of its CPU, docs/performance.md). When
//! every key in the range starts with the same [`PREFIX_BYTES`] bytes (a whole email, or a long
//! prefix of one), a segment whose filter lacks them is skipped.
//!
//! Stored in the `state` tree as `f ++ segment id`, written with the segment's blocks before the
//! commit that adds it, deleted with them. A segment without one (written by an older build, or
//! too large to be worth one) is always read.

use super::{be_key, Store};
use crate::read_model::ReadModelError;
use hashbrown::HashMap;
use parking_lot::RwLock;
use std::sync::Arc;

const FILTER_PREFIX: u8 = b'f';
/// The first byte of a stored filter: how its bits were set. A filter of another version (an
/// earlier build's) is not used: its segment is read, as one without a filter.
const FILTER_VERSION: u8 = 1;
/// The bytes of a term key a filter keeps: the field's tag and the first 15 bytes of its value.
pub const PREFIX_BYTES: usize = 16;
/// Bits a filter spends on each prefix, and the hashes it sets: ~1 % false positives.
const BITS_PER_PREFIX: usize = 10;
const HASHES: u32 = 7;
/// A segment with more distinct prefixes than this gets no filter: one that large holds most
/// customers, so a find would read it anyway (and its filter would cost memory for nothing).
const MAX_PREFIXES: usize = 1 << 21;

/// The `state` key of segment `segment`'s filter.
pub(super) fn filter_key(segment: u64) -> Vec<u8> {
    be_key(FILTER_PREFIX, &segment.to_be_bytes())
}

/// A 64-bit hash of `bytes` (fixed seeds: filters are stored); its halves are the two hashes
/// the bit positions derive from (one word a prefix while a segment's filter is built).
fn hash(bytes: &[u8]) -> u64 {
    let mix = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut state = 0x243F_6A88_85A3_08D3_u64 ^ bytes.len() as u64;
    for word in bytes.chunks(8) {
        let mut padded = [0u8; 8];
        padded[..word.len()].copy_from_slice(word);
        state = mix(state ^ u64::from_le_bytes(padded));
    }
    state
}

/// A Bloom filter of term prefixes.
pub struct PrefixFilter {
    words: Vec<u64>,
}

impl PrefixFilter {
    fn bit_positions(&self, hash: u64) -> impl Iterator<Item = usize> + '_ {
        let bits = (self.words.len() * 64) as u64;
        let (first, step) = (hash & 0xFFFF_FFFF, (hash >> 32) | 1);
        (0..u64::from(HASHES))
            .map(move |n| (first.wrapping_add(n.wrapping_mul(step)) % bits) as usize)
    }

    /// Whether some key of the segment may start with `prefix` ([`PREFIX_BYTES`] long): `false`
    /// is certain, `true` is not.
    pub fn may_hold(&self, prefix: &[u8]) -> bool {
        self.bit_positions(hash(prefix))
            .all(|bit| self.words[bit / 64] & (1 << (bit % 64)) != 0)
    }

    fn encode(&self) -> Vec<u8> {
        std::iter::once(FILTER_VERSION)
            .chain(self.words.iter().flat_map(|word| word.to_le_bytes()))
            .collect()
    }

    /// The filter stored as `bytes`; `None` for one of another version or shape, which is not
    /// used (a filter only ever saves reads: without one, the segment is read).
    fn decode(bytes: &[u8]) -> Option<Self> {
        let (&FILTER_VERSION, words) = bytes.split_first()? else {
            return None;
        };
        if words.is_empty() || words.len() % 8 != 0 {
            return None;
        }
        let words = words
            .chunks_exact(8)
            .map(|word| u64::from_le_bytes(word.try_into().expect("chunks_exact gives 8 bytes")))
            .collect();
        Some(Self { words })
    }
}

/// Collects a segment's prefixes as its terms arrive in key order.
pub struct FilterBuilder {
    /// Hashes of each distinct prefix; `None` once past [`MAX_PREFIXES`].
    hashes: Option<Vec<u64>>,
    last: Vec<u8>,
}

impl Default for FilterBuilder {
    fn default() -> Self {
        Self {
            hashes: Some(Vec::new()),
            last: Vec::new(),
        }
    }
}

impl FilterBuilder {
    /// Takes in what `other` took in: the filter of a segment written in two key ranges.
    pub fn absorb(&mut self, other: FilterBuilder) {
        self.hashes = match (self.hashes.take(), other.hashes) {
            (Some(mut hashes), Some(more)) if hashes.len() + more.len() <= MAX_PREFIXES => {
                hashes.extend(more);
                Some(hashes)
            }
            _ => None,
        };
    }

    /// Takes in `term` (keys come in order, so equal prefixes come together).
    pub fn add(&mut self, term: &[u8]) {
        let (Some(hashes), Some(prefix)) = (self.hashes.as_mut(), term.get(..PREFIX_BYTES)) else {
            return;
        };
        if prefix == self.last.as_slice() {
            return;
        }
        if hashes.len() == MAX_PREFIXES {
            self.hashes = None;
            return;
        }
        hashes.push(hash(prefix));
        self.last.clear();
        self.last.extend_from_slice(prefix);
    }

    /// The filter, unless the segment had too many prefixes for one.
    fn build(self) -> Option<PrefixFilter> {
        let hashes = self.hashes?;
        let words = (hashes.len() * BITS_PER_PREFIX).div_ceil(64).max(1);
        let mut filter = PrefixFilter {
            words: vec![0; words],
        };
        for hash in hashes {
            let positions: Vec<usize> = filter.bit_positions(hash).collect();
            for bit in positions {
                filter.words[bit / 64] |= 1 << (bit % 64);
            }
        }
        Some(filter)
    }
}

/// Filters read so far, by segment (`None`: the segment has none).
#[derive(Default)]
pub struct Filters {
    loaded: RwLock<HashMap<u64, Option<Arc<PrefixFilter>>>>,
}

impl Store {
    /// Writes segment `segment`'s filter from `builder` (before the commit that adds it).
    ///
    /// # Errors
    /// [`ReadModelError::Storage`] when sled fails.
    pub(super) fn write_filter(
        &self,
        segment: u64,
        builder: FilterBuilder,
    ) -> Result<(), ReadModelError> {
        let filter = builder.build();
        if let Some(filter) = &filter {
            self.state.insert(filter_key(segment), filter.encode())?;
        }
        self.filters
            .loaded
            .write()
            .insert(segment, filter.map(Arc::new));
        Ok(())
    }

    /// Whether segment `segment` may hold a key starting with `prefix` ([`PREFIX_BYTES`] long).
    ///
    /// # Errors
    /// [`ReadModelError`] when sled fails or the stored filter is malformed.
    pub(super) fn segment_may_hold(
        &self,
        segment: u64,
        prefix: &[u8],
    ) -> Result<bool, ReadModelError> {
        if let Some(known) = self.filters.loaded.read().get(&segment) {
            return Ok(known.as_ref().is_none_or(|filter| filter.may_hold(prefix)));
        }
        let filter = match self.state.get(filter_key(segment))? {
            Some(bytes) => PrefixFilter::decode(&bytes).map(Arc::new),
            None => None,
        };
        let may_hold = filter.as_ref().is_none_or(|filter| filter.may_hold(prefix));
        self.filters.loaded.write().insert(segment, filter);
        Ok(may_hold)
    }

    /// Deletes the filters of segments `first` and later: a crashed flush's, which no manifest
    /// names.
    ///
    /// # Errors
    /// [`ReadModelError::Storage`] when sled fails.
    pub(super) fn delete_filters_from(&self, first: u64) -> Result<(), ReadModelError> {
        let orphans: Vec<sled::IVec> = self
            .state
            .range(filter_key(first)..be_key(FILTER_PREFIX + 1, &[]))
            .keys()
            .collect::<Result<_, _>>()?;
        for key in orphans {
            self.state.remove(key)?;
        }
        Ok(())
    }

    /// Deletes segment `segment`'s filter, stored and loaded.
    ///
    /// # Errors
    /// [`ReadModelError::Storage`] when sled fails.
    pub(super) fn delete_filter(&self, segment: u64) -> Result<(), ReadModelError> {
        self.state.remove(filter_key(segment))?;
        self.filters.loaded.write().remove(&segment);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(n: u32) -> Vec<u8> {
        format!("\x04customer{n:07}@example.com").into_bytes()[..PREFIX_BYTES].to_vec()
    }

    #[test]
    fn a_filter_holds_every_prefix_it_was_given_and_few_others() {
        let mut builder = FilterBuilder::default();
        let terms: Vec<Vec<u8>> = (0..10_000)
            .map(|n| format!("\x04customer{n:07}@example.com\x00").into_bytes())
            .collect();
        for term in &terms {
            builder.add(term);
            builder.add(term);
        }
        builder.add(b"\x02short\x00");
        let filter = PrefixFilter::decode(&builder.build().unwrap().encode()).unwrap();
        assert!((0..10_000).all(|n| filter.may_hold(&prefix(n))));
        let false_positives = (10_000..20_000)
            .filter(|&n| filter.may_hold(&prefix(n)))
            .count();
        assert!(false_positives < 300, "{false_positives} false positives");
    }

    #[test]
    fn a_filter_of_another_version_is_not_used() {
        assert!(PrefixFilter::decode(&[0xFF; 16]).is_none());
        assert!(PrefixFilter::decode(&[]).is_none());
        assert!(PrefixFilter::decode(&[FILTER_VERSION, 1, 2]).is_none());
        assert!(PrefixFilter::decode(&[FILTER_VERSION; 9]).is_some());
    }

    #[test]
    fn a_segment_with_too_many_prefixes_gets_no_filter() {
        let mut builder = FilterBuilder::default();
        for n in 0..=MAX_PREFIXES {
            builder.add(format!("\x04{n:015}@x").as_bytes());
        }
        assert!(builder.build().is_none());
    }
}
