//! Segments of the index: immutable, sorted runs of entries `term key ++ chunk → posting`, in
//! blocks of about [`INDEX_BLOCK_BYTES`], each block a `segments` key (the segment's id, then
//! the block's last entry key). Written once (by a flush or a merge), read by term range, merged.

use super::codec::{
    self, for_each_chunk, IndexBlockEntries, IndexBlockWriter, Malformed, OrdinalSink,
};
use super::filter::{FilterBuilder, PREFIX_BYTES};
use super::{read_u32, Segment, SegmentMeta, Store};
use crate::read_model::terms::TermRange;
use crate::read_model::ReadModelError;
use hashbrown::{Equivalent, HashMap};
use parking_lot::Mutex;
use roaring::RoaringBitmap;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::{Hash, Hasher};
use std::ops::Range;
use std::sync::Arc;

/// An index block is closed once it holds this many bytes.
const INDEX_BLOCK_BYTES: usize = 4096;

/// A merge of inputs this large runs on two threads, a half of the terms each: a replay's one
/// merge at its end (~40 inputs, ~150 MB at 1M customers) took 2 s on one core, the other idle.
const SPLIT_MERGE_BYTES: u64 = 16 << 20;

/// The `segments` key of a block of segment `segment` whose last entry is `last_entry`.
fn block_key(segment: u64, last_entry: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + last_entry.len());
    key.extend_from_slice(&segment.to_be_bytes());
    key.extend_from_slice(last_entry);
    key
}

/// The term and chunk of an entry key.
fn split_entry_key(key: &[u8]) -> Result<(&[u8], u32), Malformed> {
    let at = key
        .len()
        .checked_sub(4)
        .ok_or(Malformed("an index entry key is too short"))?;
    Ok((&key[..at], read_u32(&key[at..])?))
}

impl Store {
    /// A writer of segment `id`, to be given its terms in order.
    pub fn segment_writer(&self, id: u64) -> SegmentWriter<'_> {
        SegmentWriter {
            store: self,
            id,
            block: IndexBlockWriter::default(),
            key: Vec::new(),
            value: Vec::new(),
            chunk: Vec::new(),
            ordinals: None,
            bytes: 0,
            filter: FilterBuilder::default(),
        }
    }

    /// The ordinals segment `segment` holds under the terms in `range` (stale ones included:
    /// the caller removes them), and how many terms that was; `None` when the range holds more
    /// than `max_terms`. Terms stored as bitsets, and ranges that gathered many listed
    /// ordinals or read many blocks, are kept decoded (see [`PostingCache`]).
    ///
    /// # Errors
    /// [`ReadModelError`] when sled fails or a block is malformed.
    pub fn postings_in(
        &self,
        segment: u64,
        range: &TermRange,
        max_terms: usize,
    ) -> Result<Option<(RoaringBitmap, usize)>, ReadModelError> {
        if let Some((cached, terms)) = self.postings_cache.range(segment, range) {
            return Ok((terms <= max_terms).then(|| (cached.as_ref().clone(), terms)));
        }
        // A term kept decoded is answered without reading its blocks: a dense term's bitset
        // takes a block a chunk (a common state: ~30 blocks at 1M customers), each read from
        // sled and unpacked on every find before.
        if let Some(cached) = range
            .single_key()
            .and_then(|term| self.postings_cache.get(segment, term))
        {
            return Ok((max_terms >= 1).then(|| (cached.as_ref().clone(), 1)));
        }
        fail::fail_point!("store-read", |_| Err(sled::Error::Io(
            std::io::Error::other("injected read failure")
        )
        .into()));
        // A segment whose filter lacks the prefix every key in the range starts with holds none.
        if let Some(prefix) = range.shared_prefix().get(..PREFIX_BYTES) {
            if !self.segment_may_hold(segment, prefix)? {
                return Ok(Some((RoaringBitmap::new(), 0)));
            }
        }
        let mut terms = 0;
        // Sparse terms' ordinals, gathered and sorted once; dense terms' bitmaps, OR'ed.
        let mut sparse = OrdinalSink::default();
        let mut dense = RoaringBitmap::new();
        // The term being read: its key, and how its entries are taken.
        let mut term: Vec<u8> = Vec::new();
        let mut taking = Taking::Sparse;
        // The first block whose last entry is at or past the range's start holds its first entry.
        let blocks = self
            .segments
            .range(block_key(segment, &range.start)..block_key(segment + 1, &[]));
        let mut unpacked = Vec::new();
        let mut blocks_read = 0;
        'blocks: for block in blocks {
            let (_, stored) = block?;
            blocks_read += 1;
            let mut entries = IndexBlockEntries::new(self.unpack(&stored, &mut unpacked)?);
            while let Some((key, value)) = entries.next_entry()? {
                let (entry_term, chunk) = split_entry_key(key)?;
                if entry_term < range.start.as_slice() {
                    continue;
                }
                if entry_term >= range.end.as_slice() {
                    break 'blocks;
                }
                if entry_term != term.as_slice() {
                    self.postings_cache
                        .finish(segment, &term, taking, &mut dense);
                    terms += 1;
                    if terms > max_terms {
                        return Ok(None);
                    }
                    term.clear();
                    term.extend_from_slice(entry_term);
                    taking = match (
                        codec::is_dense(value),
                        self.postings_cache.get(segment, &term),
                    ) {
                        (true, Some(cached)) => {
                            dense |= cached.as_ref();
                            Taking::Cached
                        }
                        (true, None) => Taking::Dense(OrdinalSink::default()),
                        (false, _) => Taking::Sparse,
                    };
                }
                match &mut taking {
                    Taking::Sparse => sparse.add(chunk, value)?,
                    Taking::Dense(own) => own.add(chunk, value)?,
                    Taking::Cached => {}
                }
            }
        }
        // A single term kept decoded now is answered from there next time (above).
        let kept_as_term = matches!(taking, Taking::Dense(_)) && range.single_key().is_some();
        self.postings_cache
            .finish(segment, &term, taking, &mut dense);
        let costly = sparse.listed() >= PostingCache::COSTLY_RANGE
            || (blocks_read >= PostingCache::COSTLY_BLOCKS && !kept_as_term);
        let postings = dense | sparse.into_bitmap();
        if costly {
            self.postings_cache
                .keep_range(segment, range, &postings, terms);
        }
        Ok(Some((postings, terms)))
    }

    /// Merges `inputs` into segment `id`, leaving out each input's stale ordinals. A term only one
    /// input holds, from an input with nothing stale, is copied as stored, undecoded: most terms
    /// (an email, a phone) are such. Inputs of [`SPLIT_MERGE_BYTES`] or more are merged on two
    /// threads, each a half of the terms, into the one segment (its blocks are keyed by term).
    ///
    /// # Errors
    /// [`ReadModelError`] when sled fails or a block is malformed.
    pub fn merge_segments(
        &self,
        id: u64,
        inputs: &[Segment],
    ) -> Result<Option<SegmentMeta>, ReadModelError> {
        self.merge_split_from(id, inputs, SPLIT_MERGE_BYTES)
    }

    /// [`Store::merge_segments`], on two threads from `split_from` bytes of inputs.
    pub(super) fn merge_split_from(
        &self,
        id: u64,
        inputs: &[Segment],
        split_from: u64,
    ) -> Result<Option<SegmentMeta>, ReadModelError> {
        let bytes: u64 = inputs.iter().map(|segment| segment.meta.bytes).sum();
        let split = if bytes >= split_from {
            self.middle_term(inputs)?
        } else {
            None
        };
        let writer = match split {
            None => self.merge_range(id, inputs, None, None)?,
            Some(split) => std::thread::scope(|scope| {
                let upper = scope.spawn(|| self.merge_range(id, inputs, Some(&split), None));
                let mut lower = self.merge_range(id, inputs, None, Some(&split))?;
                let upper = upper.join().expect("merging does not panic")?;
                lower.absorb(upper)?;
                Ok::<_, ReadModelError>(lower)
            })?,
        };
        // Copied entries are not decoded: the inputs' ranges bound the ordinals.
        let ordinals = inputs.iter().map(|segment| segment.meta.ordinals).reduce(
            |(low, high), (other_low, other_high)| (low.min(other_low), high.max(other_high)),
        );
        Ok(writer.finish()?.map(|meta| SegmentMeta {
            ordinals: ordinals.unwrap_or(meta.ordinals),
            ..meta
        }))
    }

    /// A term near the middle of `inputs`' terms: the middle block's last term of the input
    /// with the fewest bytes (read whole, so the cheapest; a merge's inputs are of one size tier
    /// and hold terms alike). `None` when it has too few blocks to tell.
    pub(super) fn middle_term(
        &self,
        inputs: &[Segment],
    ) -> Result<Option<Vec<u8>>, ReadModelError> {
        let Some(smallest) = inputs.iter().min_by_key(|segment| segment.meta.bytes) else {
            return Ok(None);
        };
        let id = smallest.meta.id;
        let keys = self
            .segments
            .range(id.to_be_bytes()..(id + 1).to_be_bytes())
            .keys()
            .collect::<Result<Vec<_>, _>>()?;
        if keys.len() < 2 {
            return Ok(None);
        }
        let (term, _) = split_entry_key(&keys[keys.len() / 2][8..])?;
        Ok(Some(term.to_vec()))
    }

    /// Merges the entries of `inputs` whose terms are at least `from` and below `until` into
    /// segment `id`'s writer, left unfinished.
    fn merge_range<'w>(
        &'w self,
        id: u64,
        inputs: &[Segment],
        from: Option<&[u8]>,
        until: Option<&[u8]>,
    ) -> Result<SegmentWriter<'w>, ReadModelError> {
        let mut cursors = inputs
            .iter()
            .map(|segment| SegmentCursor::new(self, segment, from, until))
            .collect::<Result<Vec<_>, _>>()?;
        let mut writer = self.segment_writer(id);
        // Each input's current term (a copy) and the input, smallest first: a replay merges
        // dozens of segments at its end, and scanning every input for each term was most of it.
        let mut heads = BinaryHeap::with_capacity(cursors.len());
        for (at, cursor) in cursors.iter_mut().enumerate() {
            if let Some(entry) = cursor.peek()? {
                heads.push(Reverse((entry.term.to_vec(), at)));
            }
        }
        let mut spare_terms: Vec<Vec<u8>> = Vec::new();
        let mut term = Vec::new();
        let mut holders = Vec::with_capacity(cursors.len());
        while let Some(Reverse((mut smallest, first))) = heads.pop() {
            std::mem::swap(&mut term, &mut smallest);
            spare_terms.push(smallest);
            holders.clear();
            holders.push(first);
            while heads.peek().is_some_and(|Reverse((next, _))| *next == term) {
                let Some(Reverse((next, at))) = heads.pop() else {
                    break;
                };
                spare_terms.push(next);
                holders.push(at);
            }
            match holders[..] {
                [only] if cursors[only].stale.is_empty() => {
                    // A term one input holds, with nothing stale: copied as stored.
                    let cursor = &mut cursors[only];
                    while let Some(entry) = cursor.peek()?.filter(|entry| entry.term == term) {
                        writer.push_encoded(entry.term, entry.chunk, entry.value)?;
                        cursor.advance();
                    }
                }
                _ => {
                    let mut ordinals = RoaringBitmap::new();
                    for &at in &holders {
                        let cursor = &mut cursors[at];
                        let mut sink = OrdinalSink::default();
                        while let Some(entry) = cursor.peek()?.filter(|entry| entry.term == term) {
                            sink.add(entry.chunk, entry.value)?;
                            cursor.advance();
                        }
                        ordinals |= without_stale(sink.into_bitmap(), cursor.stale);
                    }
                    writer.push(&term, ordinals.iter())?;
                }
            }
            for &at in &holders {
                if let Some(entry) = cursors[at].peek()? {
                    let mut next = spare_terms.pop().unwrap_or_default();
                    next.clear();
                    next.extend_from_slice(entry.term);
                    heads.push(Reverse((next, at)));
                }
            }
        }
        Ok(writer)
    }
}

/// A term's posting holds at most this many ordinals for [`without_stale`] to look each up.
const LOOKED_UP_ORDINALS: u64 = 64;

/// `ordinals` less `stale`. A term's posting is mostly a few ordinals and a stale set may be
/// large: roaring's difference walks `stale`'s whole container for each, so a short posting
/// looks its ordinals up instead (a replay's single merge, whose inputs had every update since
/// they were written made stale, spent a sixth of its time in that difference).
fn without_stale(ordinals: RoaringBitmap, stale: &RoaringBitmap) -> RoaringBitmap {
    if stale.is_empty() {
        ordinals
    } else if ordinals.len() <= LOOKED_UP_ORDINALS {
        ordinals
            .iter()
            .filter(|ordinal| !stale.contains(*ordinal))
            .collect()
    } else {
        ordinals - stale
    }
}

/// Writes one segment's blocks, as terms arrive in order.
pub struct SegmentWriter<'s> {
    store: &'s Store,
    id: u64,
    block: IndexBlockWriter,
    /// Buffers reused from entry to entry.
    key: Vec<u8>,
    value: Vec<u8>,
    chunk: Vec<u32>,
    ordinals: Option<(u32, u32)>,
    bytes: u64,
    filter: FilterBuilder,
}

impl SegmentWriter<'_> {
    /// Adds `term` with its `ordinals` (ascending); terms must come in key order.
    ///
    /// # Errors
    /// [`ReadModelError::Storage`] when sled fails.
    pub fn push(
        &mut self,
        term: &[u8],
        ordinals: impl IntoIterator<Item = u32>,
    ) -> Result<(), ReadModelError> {
        let mut chunk = std::mem::take(&mut self.chunk);
        let pushed = for_each_chunk(ordinals, &mut chunk, |number, in_chunk| {
            let (min, max) = (in_chunk[0], in_chunk[in_chunk.len() - 1]);
            self.ordinals = Some(
                self.ordinals
                    .map_or((min, max), |(low, high)| (low.min(min), high.max(max))),
            );
            let mut value = std::mem::take(&mut self.value);
            value.clear();
            codec::encode_posting(number, in_chunk, &mut value);
            let pushed = self.push_encoded(term, number, &value);
            self.value = value;
            pushed
        });
        self.chunk = chunk;
        pushed
    }

    /// Adds one entry whose posting is encoded already; entries must come in key order.
    ///
    /// # Errors
    /// [`ReadModelError::Storage`] when sled fails.
    fn push_encoded(
        &mut self,
        term: &[u8],
        chunk: u32,
        value: &[u8],
    ) -> Result<(), ReadModelError> {
        self.filter.add(term);
        self.key.clear();
        self.key.extend_from_slice(term);
        self.key.extend_from_slice(&chunk.to_be_bytes());
        if self.block.len() + self.key.len() + value.len() > INDEX_BLOCK_BYTES
            && self.block.entries() > 0
        {
            self.write_block()?;
        }
        self.block.push(&self.key, value);
        Ok(())
    }

    fn write_block(&mut self) -> Result<(), ReadModelError> {
        let key = block_key(self.id, self.block.last_key());
        let value = self.store.pack(self.block.take());
        self.bytes += (key.len() + value.len()) as u64;
        self.store.segments.insert(key, value)?;
        Ok(())
    }

    /// Takes in what `upper` wrote: the same segment's entries past all of this writer's (a
    /// merge on two threads), its last block written out.
    ///
    /// # Errors
    /// [`ReadModelError::Storage`] when sled fails.
    fn absorb(&mut self, mut upper: SegmentWriter<'_>) -> Result<(), ReadModelError> {
        if upper.block.entries() > 0 {
            upper.write_block()?;
        }
        self.bytes += upper.bytes;
        self.ordinals = match (self.ordinals, upper.ordinals) {
            (Some((low, high)), Some((other_low, other_high))) => {
                Some((low.min(other_low), high.max(other_high)))
            }
            (one, other) => one.or(other),
        };
        self.filter.absorb(std::mem::take(&mut upper.filter));
        Ok(())
    }

    /// Writes the last block; returns what the segment is, `None` when it holds nothing.
    ///
    /// # Errors
    /// [`ReadModelError::Storage`] when sled fails.
    pub fn finish(mut self) -> Result<Option<SegmentMeta>, ReadModelError> {
        if self.block.entries() > 0 {
            self.write_block()?;
        }
        if self.bytes > 0 {
            let filter = std::mem::take(&mut self.filter);
            self.store.write_filter(self.id, filter)?;
        }
        Ok(self
            .ordinals
            .map(|ordinals| SegmentMeta {
                id: self.id,
                ordinals,
                bytes: self.bytes,
            })
            .or_else(|| {
                // Only encoded entries were pushed (a merge): the caller knows the range.
                (self.bytes > 0).then_some(SegmentMeta {
                    id: self.id,
                    ordinals: (0, 0),
                    bytes: self.bytes,
                })
            }))
    }
}

/// One entry of a segment, borrowed from its cursor.
struct Entry<'c> {
    term: &'c [u8],
    chunk: u32,
    value: &'c [u8],
}

/// Reads a segment's entries in order, a block at a time.
struct SegmentCursor<'s> {
    blocks: sled::Iter,
    /// Whether its blocks are packed.
    packed: bool,
    /// The current block, unpacked.
    block: Vec<u8>,
    /// Its entries' keys, expanded from their front coding, back to back.
    keys: Vec<u8>,
    /// Each entry: its key in `keys`, its value in `block`.
    entries: Vec<(Range<usize>, Range<usize>)>,
    /// The next entry.
    at: usize,
    stale: &'s RoaringBitmap,
    /// Entries of terms below this are skipped (until the first one past them).
    from: Option<&'s [u8]>,
    /// Entries of terms from this on are not read.
    until: Option<&'s [u8]>,
}

impl<'s> SegmentCursor<'s> {
    /// A cursor over `segment`'s entries of terms at least `from` and below `until`.
    fn new(
        store: &Store,
        segment: &'s Segment,
        from: Option<&'s [u8]>,
        until: Option<&'s [u8]>,
    ) -> Result<Self, ReadModelError> {
        let id = segment.meta.id;
        // A block is keyed by its last entry: the first that may hold `from` is the first
        // keyed at or past it.
        let first = block_key(id, from.unwrap_or_default());
        Ok(Self {
            blocks: store.segments.range(first..(id + 1).to_be_bytes().to_vec()),
            packed: store.packs_blocks,
            block: Vec::new(),
            keys: Vec::new(),
            entries: Vec::new(),
            at: 0,
            stale: &segment.stale,
            from,
            until,
        })
    }

    /// The current entry, loading the next block when this one is read.
    fn peek(&mut self) -> Result<Option<Entry<'_>>, ReadModelError> {
        while self.at == self.entries.len() {
            let Some(block) = self.blocks.next() else {
                return Ok(None);
            };
            let stored = block?.1;
            self.block.clear();
            if self.packed {
                codec::unpack_block_into(&stored, &mut self.block)?;
            } else {
                self.block.extend_from_slice(&stored);
            }
            self.keys.clear();
            self.entries.clear();
            self.at = 0;
            let base = self.block.as_ptr() as usize;
            let mut entries = IndexBlockEntries::new(&self.block);
            while let Some((key, value)) = entries.next_entry()? {
                let key_start = self.keys.len();
                self.keys.extend_from_slice(key);
                let value_start = value.as_ptr() as usize - base;
                self.entries.push((
                    key_start..self.keys.len(),
                    value_start..value_start + value.len(),
                ));
            }
        }
        if let Some(from) = self.from {
            let (term, _) = split_entry_key(&self.keys[self.entries[self.at].0.clone()])?;
            if term < from {
                // Only in the first block (the one keyed at or past `from`): a few calls deep.
                self.at += 1;
                return self.peek();
            }
            self.from = None;
        }
        let (key, value) = self.entries[self.at].clone();
        let (term, chunk) = split_entry_key(&self.keys[key])?;
        if self.until.is_some_and(|until| term >= until) {
            return Ok(None);
        }
        Ok(Some(Entry {
            term,
            chunk,
            value: &self.block[value],
        }))
    }

    fn advance(&mut self) {
        self.at += 1;
    }
}

/// How a term's entries are being taken while a range is read.
enum Taking {
    /// Into the range's shared sink.
    Sparse,
    /// Into a sink of the term's own, to be cached.
    Dense(OrdinalSink),
    /// Not at all: the term's bitmap came from the cache.
    Cached,
}

/// Dense terms' postings (stored as bitsets: a state, a country, a large account, a common
/// name), kept decoded: a find reads the same few of them again and again, and decoding their
/// bitsets was a third of such a find. So are the ordinals of term ranges that gathered many
/// listed ordinals (a short prefix such as `lastName=smi` spans thousands of names): sorting
/// them into a bitmap was half of such a find at 1M customers; and ranges that read many
/// blocks (a prefix over a dense term). Segments never change, so an entry
/// never goes stale; those of a segment merged away are simply never asked for again.
///
/// What is used stays: entries live in two generations, each up to half the budget. A hit in the
/// older one moves the entry to the newer; once the newer is full it becomes the older, and the
/// older is dropped, with only what was not used since (least recently used, approximately, at
/// O(1) a use; the whole cache used to be emptied when full, hot entries included).
#[derive(Default)]
pub struct PostingCache {
    entries: Mutex<CachedPostings>,
}

/// A term range of one segment: the segment, the range's start and end.
type RangeKey = (u64, Box<[u8]>, Box<[u8]>);

/// A term of one segment.
type TermKey = (u64, Box<[u8]>);

/// A [`RangeKey`] (with an end) or [`TermKey`] (without) made of borrowed parts, so a lookup
/// allocates nothing. It hashes exactly as the owned tuple does: each part in order.
struct BorrowedKey<'a>(u64, &'a [u8], Option<&'a [u8]>);

impl Hash for BorrowedKey<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
        self.1.hash(state);
        if let Some(end) = self.2 {
            end.hash(state);
        }
    }
}

impl Equivalent<RangeKey> for BorrowedKey<'_> {
    fn equivalent(&self, key: &RangeKey) -> bool {
        self.0 == key.0 && self.1 == &*key.1 && self.2 == Some(&*key.2)
    }
}

impl Equivalent<TermKey> for BorrowedKey<'_> {
    fn equivalent(&self, key: &TermKey) -> bool {
        self.0 == key.0 && self.1 == &*key.1 && self.2.is_none()
    }
}

/// A term's postings, and their size.
type CachedTerm = (Arc<RoaringBitmap>, usize);

/// A range's ordinals, how many terms it held, and their size.
type CachedRange = (Arc<RoaringBitmap>, usize, usize);

/// One generation of the cache.
#[derive(Default)]
struct Generation {
    by_term: HashMap<TermKey, CachedTerm>,
    by_range: HashMap<RangeKey, CachedRange>,
    bytes: usize,
}

#[derive(Default)]
struct CachedPostings {
    /// Entries kept or used since the last turn.
    newer: Generation,
    /// Entries of the generation before, not used since.
    older: Generation,
}

impl CachedPostings {
    /// Adds `bytes` to the newer generation, which becomes the older once past half the budget.
    fn count(&mut self, bytes: usize) {
        self.newer.bytes += bytes;
        if self.newer.bytes > PostingCache::BUDGET / 2 {
            self.older = std::mem::take(&mut self.newer);
        }
    }

    fn term(&mut self, key: &BorrowedKey<'_>) -> Option<Arc<RoaringBitmap>> {
        if let Some((postings, _)) = self.newer.by_term.get(key) {
            return Some(Arc::clone(postings));
        }
        let (owned, (postings, size)) = self.older.by_term.remove_entry(key)?;
        self.older.bytes -= size;
        self.newer
            .by_term
            .insert(owned, (Arc::clone(&postings), size));
        self.count(size);
        Some(postings)
    }

    fn range(&mut self, key: &BorrowedKey<'_>) -> Option<(Arc<RoaringBitmap>, usize)> {
        if let Some((ordinals, terms, _)) = self.newer.by_range.get(key) {
            return Some((Arc::clone(ordinals), *terms));
        }
        let (owned, (ordinals, terms, size)) = self.older.by_range.remove_entry(key)?;
        self.older.bytes -= size;
        self.newer
            .by_range
            .insert(owned, (Arc::clone(&ordinals), terms, size));
        self.count(size);
        Some((ordinals, terms))
    }
}

impl PostingCache {
    /// Most bytes of postings kept (1 MiB in tests, so that they fill it).
    const BUDGET: usize = if cfg!(test) { 1 << 20 } else { 64 << 20 };

    /// A range that gathered at least this many listed ordinals is kept decoded.
    const COSTLY_RANGE: usize = 2_048;

    /// So is a range that read at least this many blocks: a prefix over a dense term (`city=New
    /// York`) reads a block for each of its chunks on every find, even with the term kept
    /// decoded, and a term whose first chunk is a list has its bitsets decoded each time.
    const COSTLY_BLOCKS: usize = 4;

    /// How many ranges are kept, and whether `range` of `segment` is one of them.
    #[cfg(test)]
    pub fn keeps_range(&self, segment: u64, range: &TermRange) -> (usize, bool) {
        let kept = {
            let entries = self.entries.lock();
            entries.newer.by_range.len() + entries.older.by_range.len()
        };
        (kept, self.range(segment, range).is_some())
    }

    fn range(&self, segment: u64, range: &TermRange) -> Option<(Arc<RoaringBitmap>, usize)> {
        let key = BorrowedKey(segment, &range.start, Some(&range.end));
        self.entries.lock().range(&key)
    }

    /// Keeps a range's ordinals; two readers that missed the same range count it once.
    fn keep_range(&self, segment: u64, range: &TermRange, postings: &RoaringBitmap, terms: usize) {
        let mut entries = self.entries.lock();
        let key = BorrowedKey(segment, &range.start, Some(&range.end));
        if entries.range(&key).is_some() {
            return;
        }
        let size = postings.serialized_size();
        let key = (
            segment,
            range.start.as_slice().into(),
            range.end.as_slice().into(),
        );
        entries
            .newer
            .by_range
            .insert(key, (Arc::new(postings.clone()), terms, size));
        entries.count(size);
    }

    fn get(&self, segment: u64, term: &[u8]) -> Option<Arc<RoaringBitmap>> {
        self.entries.lock().term(&BorrowedKey(segment, term, None))
    }

    /// Ends reading `term`: a dense term's ordinals are kept, and added to `dense`.
    fn finish(&self, segment: u64, term: &[u8], taking: Taking, dense: &mut RoaringBitmap) {
        let Taking::Dense(own) = taking else { return };
        let postings = own.into_bitmap();
        *dense |= &postings;
        self.keep_term(segment, term, postings);
    }

    /// Keeps a term's postings; two readers that missed the same term count it once.
    fn keep_term(&self, segment: u64, term: &[u8], postings: RoaringBitmap) {
        let mut entries = self.entries.lock();
        if entries.term(&BorrowedKey(segment, term, None)).is_some() {
            return;
        }
        let size = postings.serialized_size();
        entries
            .newer
            .by_term
            .insert((segment, term.into()), (Arc::new(postings), size));
        entries.count(size);
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;

    #[test]
    fn a_posting_used_again_and_again_stays_while_others_fill_the_cache() {
        let cache = PostingCache::default();
        let hot: RoaringBitmap = (0..1_000).collect();
        cache.keep_term(1, b"hot", hot.clone());
        for n in 0..40u32 {
            // About 200 KB each: the cache turns over many times.
            let cold: RoaringBitmap = (0..100_000).map(|x| x * 3 + n).collect();
            cache.keep_term(2, &n.to_be_bytes(), cold);
            assert_eq!(
                cache.get(1, b"hot").as_deref(),
                Some(&hot),
                "after {n} other terms"
            );
            let entries = cache.entries.lock();
            assert!(entries.newer.bytes + entries.older.bytes <= PostingCache::BUDGET + 250_000);
        }
        assert!(
            cache.get(2, &0u32.to_be_bytes()).is_none(),
            "the coldest went"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_posting_less_its_stale_ordinals_is_the_set_difference_whatever_its_size() {
        let stale: RoaringBitmap = (0..10_000).filter(|ordinal| ordinal % 3 == 0).collect();
        for size in [0, 1, 5, LOOKED_UP_ORDINALS, LOOKED_UP_ORDINALS + 1, 5_000] {
            let posting: RoaringBitmap = (0..size as u32).map(|n| n * 7).collect();
            let expected = &posting - &stale;
            assert_eq!(
                without_stale(posting.clone(), &stale),
                expected,
                "{size} ordinals"
            );
            assert_eq!(
                without_stale(posting.clone(), &RoaringBitmap::new()),
                posting
            );
        }
    }
}
