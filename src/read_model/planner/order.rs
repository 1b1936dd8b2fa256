//! Step 3 of a find, the order: the page's ordinals among the selection, in answer order.

use super::{Work, ORDINAL_COST};
use crate::read_model::directory::Directory;
use crate::read_model::index::Index;
use crate::read_model::query::CustomerQuery;
use crate::read_model::ReadModelError;
use roaring::RoaringBitmap;
use std::ops::{Range, RangeInclusive};

/// The ordinals of the page, in answer order.
pub(super) fn page_in_order(
    index: &Index,
    selection: Option<&RoaringBitmap>,
    query: &CustomerQuery,
    total: usize,
    work: &Work,
) -> Result<Vec<u32>, ReadModelError> {
    let order = index.directory.answer_order();
    let wanted = query.offset.saturating_add(query.limit).min(total);
    let Some(selection) = selection else {
        work.spend(query.limit.min(total) * ORDINAL_COST)?;
        return Ok(order.iter_from(query.offset).take(query.limit).collect());
    };
    // Walking the answer order visits about `wanted × live / total` ordinals; narrowing down to
    // the page's keys reads the selection's keys about twice (one pass to count, one to gather).
    let walk = (wanted as u128 * order.len() as u128 / total as u128) as usize;
    if walk < NARROWING_PASSES * total {
        work.spend(walk * ORDINAL_COST)?;
        let mut spent = walk;
        let mut page = Vec::with_capacity(query.limit.min(total));
        let mut to_skip = query.offset;
        for ordinal in order.iter_from(0) {
            spent += 1;
            // The estimate was short: pay as the walk goes on.
            if spent > walk {
                work.spend(ORDINAL_COST)?;
            }
            if selection.contains(ordinal) {
                if to_skip > 0 {
                    to_skip -= 1;
                } else {
                    page.push(ordinal);
                    if page.len() == query.limit {
                        break;
                    }
                }
            }
        }
        Ok(page)
    } else {
        narrow_to_page(index, selection, query.offset, wanted, work)
    }
}

/// Passes over the selection's keys that narrowing to a page usually takes.
const NARROWING_PASSES: usize = 2;

/// Buckets of `createdAt` a narrowing pass counts the selection into. (Tiny in tests, so that the
/// oracle's small registries narrow over several passes.)
const NARROWING_BUCKETS: usize = if cfg!(test) { 4 } else { 65_536 };

/// A key range holding this few selected customers is gathered and sorted.
const GATHER_AT_MOST: usize = if cfg!(test) { 2 } else { 16_384 };

/// The ordinals of ranks `offset..wanted` of `selection` in answer order, in memory bounded by the
/// page, not the selection (gathering every selected key took ~32 bytes per selected customer: a
/// deep page of 9M selected customers, ~288 MB). See [`Narrowing`].
fn narrow_to_page(
    index: &Index,
    selection: &RoaringBitmap,
    offset: usize,
    wanted: usize,
    work: &Work,
) -> Result<Vec<u32>, ReadModelError> {
    let directory = &index.directory;
    let order = directory.answer_order();
    let (Some(first), Some(last)) = (order.iter_from(0).next(), order.last()) else {
        return Ok(Vec::new());
    };
    let mut narrowing = Narrowing {
        directory,
        selection,
        work,
        page: Vec::with_capacity(wanted - offset),
    };
    // The answer order's ends bound every live customer's key.
    let range = directory.key(first).to_bytes()..=directory.key(last).to_bytes();
    narrowing.collect(range, selection.len() as usize, offset..wanted)?;
    Ok(narrowing.page)
}

/// An order key as bytes that sort as it does (`createdAt`, then id): see
/// [`crate::read_model::directory::OrderKey::to_bytes`].
type KeyBytes = [u8; 24];

/// Where keys in a range differ: every key between `low` and `high` shares their first `shared`
/// bytes, and the next 16 (a window, zero past the key's end) order them as a number.
struct Window {
    shared: usize,
}

impl Window {
    fn of(low: &KeyBytes, high: &KeyBytes) -> Self {
        let shared = low.iter().zip(high).take_while(|(a, b)| a == b).count();
        Self { shared }
    }

    /// The window's bytes of `key`, as a number.
    fn value(&self, key: &KeyBytes) -> u128 {
        let mut bytes = [0u8; 16];
        let tail = &key[self.shared..];
        let taken = tail.len().min(16);
        bytes[..taken].copy_from_slice(&tail[..taken]);
        u128::from_be_bytes(bytes)
    }

    /// The key sharing `like`'s first bytes with window `value`, and every later byte `fill`.
    fn key(&self, like: &KeyBytes, value: u128, fill: u8) -> KeyBytes {
        let mut key = [fill; 24];
        key[..self.shared].copy_from_slice(&like[..self.shared]);
        let window = value.to_be_bytes();
        let taken = (24 - self.shared).min(16);
        key[self.shared..self.shared + taken].copy_from_slice(&window[..taken]);
        key
    }
}

/// Narrowing a selection down to a page's ranks: each pass counts the selected customers of the
/// key range in play in buckets of the bytes where its keys start to differ (`createdAt` first,
/// then the id: customers created in one millisecond spread too), and goes on in the buckets
/// holding the wanted ranks: one bucket, or, when the ranks straddle buckets, the end of the
/// first, the buckets between (wholly wanted, so no larger than the page) and the start of the
/// last, each on its own. A range holding few enough selected customers is gathered and sorted.
struct Narrowing<'a> {
    directory: &'a Directory,
    selection: &'a RoaringBitmap,
    work: &'a Work,
    /// The ordinals found so far, in answer order.
    page: Vec<u32>,
}

impl Narrowing<'_> {
    /// Adds to the page the selected customers of ranks `ranks` among the `within` selected
    /// customers in `range`.
    fn collect(
        &mut self,
        range: RangeInclusive<KeyBytes>,
        within: usize,
        ranks: Range<usize>,
    ) -> Result<(), ReadModelError> {
        let (low, high) = (range.start(), range.end());
        if within <= GATHER_AT_MOST.max(ranks.len()) || low == high {
            return self.gather(range, ranks);
        }
        self.work
            .spend(self.selection.len() as usize * ORDINAL_COST)?;
        let window = Window::of(low, high);
        let (first, last) = (window.value(low), window.value(high));
        let width = (last - first) / NARROWING_BUCKETS as u128 + 1;
        // On the heap: 512 KiB would not belong on a worker thread's stack.
        let mut counts: Vec<usize> = std::iter::repeat_n(0, NARROWING_BUCKETS).collect();
        for ordinal in self.selection {
            let key = self.directory.key(ordinal).to_bytes();
            if range.contains(&key) {
                counts[((window.value(&key) - first) / width) as usize] += 1;
            }
        }
        // A bucket's keys, within the range.
        let bucket = |number: usize| {
            let start = first + number as u128 * width;
            let end = (start + (width - 1)).min(last);
            let from = window.key(low, start, 0x00).max(*low);
            from..=window.key(low, end, 0xff).min(*high)
        };
        let (Some((from, before_from)), Some((to, before_to))) = (
            bucket_holding(&counts, ranks.start),
            bucket_holding(&counts, ranks.end - 1),
        ) else {
            // Fewer in the range than counted before: nothing left to narrow by.
            return self.gather(range, ranks);
        };
        let first_ranks = ranks.start - before_from..ranks.end - before_from;
        if from == to {
            return self.collect(bucket(from), counts[from], first_ranks);
        }
        self.collect(bucket(from), counts[from], first_ranks.start..counts[from])?;
        let between = before_to - before_from - counts[from];
        if between > 0 {
            let start = *bucket(from + 1).start();
            let end = *bucket(to - 1).end();
            self.gather(start..=end, 0..between)?;
        }
        self.collect(bucket(to), counts[to], 0..ranks.end - before_to)
    }

    /// Adds to the page the selected customers of ranks `ranks` in `range`, by sorting them all.
    fn gather(
        &mut self,
        range: RangeInclusive<KeyBytes>,
        ranks: Range<usize>,
    ) -> Result<(), ReadModelError> {
        self.work
            .spend(self.selection.len() as usize * ORDINAL_COST)?;
        let mut keyed: Vec<_> = self
            .selection
            .iter()
            .filter_map(|ordinal| {
                let key = self.directory.key(ordinal);
                range.contains(&key.to_bytes()).then_some((key, ordinal))
            })
            .collect();
        #[cfg(test)]
        LARGEST_GATHER.with(|largest| largest.set(largest.get().max(keyed.len())));
        keyed.sort_unstable();
        let taken = keyed.into_iter().skip(ranks.start).take(ranks.len());
        self.page.extend(taken.map(|(_, ordinal)| ordinal));
        Ok(())
    }
}

/// The bucket holding rank `rank` of what `counts` counts, and how many the buckets before it
/// hold; `None` past the last.
fn bucket_holding(counts: &[usize], rank: usize) -> Option<(usize, usize)> {
    let mut before = 0;
    for (bucket, &count) in counts.iter().enumerate() {
        if before + count > rank {
            return Some((bucket, before));
        }
        before += count;
    }
    None
}

#[cfg(test)]
thread_local! {
    /// The most keys one gather of this thread held: what a test bounds narrowing's memory by.
    pub(crate) static LARGEST_GATHER: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}
