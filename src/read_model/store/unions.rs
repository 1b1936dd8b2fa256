//! A term range's live ordinals across a whole segment list, kept for the ranges that gather
//! many: what a find reads from the store before the layers in memory are added.

use super::{ReadModelError, Segment, Store};
use crate::read_model::terms::TermRange;
use parking_lot::Mutex;
use roaring::RoaringBitmap;
use std::collections::HashMap;
use std::sync::{Arc, Weak};

/// Live ordinals of term ranges across one segment list, for ranges that gathered many. A find
/// by city and state unions each segment's postings of its ranges and takes each segment's stale
/// ordinals out on every request: half of such a find's CPU at 1M customers in a read model a
/// `serve` built (a dozen segments), even with every segment's postings kept decoded. A list
/// never changes (a flush replaces it whole), so an entry holds as long as its list is the
/// current one; the entries of a list no reader holds any more make way for the next list's.
#[derive(Default)]
pub struct RangeUnions {
    held: Mutex<HeldUnions>,
}

#[derive(Default)]
struct HeldUnions {
    /// The list the entries are of. Weak: it keeps no segment from being deleted, yet its
    /// address is not reused by another list while it is held.
    list: Weak<Vec<Segment>>,
    /// Per range: its live ordinals, the terms read, their size.
    by_range: HashMap<TermRange, (Arc<RoaringBitmap>, usize, usize)>,
    bytes: usize,
}

impl HeldUnions {
    /// Whether the entries are of `list`: compared by address, with no count taken on either
    /// (the lookup is on every find's path).
    fn is_of(&self, list: &Arc<Vec<Segment>>) -> bool {
        std::ptr::eq(self.list.as_ptr(), Arc::as_ptr(list))
    }
}

impl RangeUnions {
    /// Most bytes of ordinals kept (64 KiB in tests, so that they fill it); past it, the
    /// entries are dropped and made again by the finds that need them.
    const BUDGET: usize = if cfg!(test) { 64 << 10 } else { 32 << 20 };

    /// A range with at least this many live ordinals is kept: fewer cost little to gather.
    const MANY_ORDINALS: u64 = 1_024;

    fn get(
        &self,
        list: &Arc<Vec<Segment>>,
        range: &TermRange,
    ) -> Option<(Arc<RoaringBitmap>, usize)> {
        let held = self.held.lock();
        if !held.is_of(list) {
            return None;
        }
        held.by_range
            .get(range)
            .map(|(ordinals, terms, _)| (Arc::clone(ordinals), *terms))
    }

    /// Keeps `range`'s ordinals across `list`, unless entries of another list that a reader
    /// still holds are kept (a find that began before the last flush).
    fn keep(
        &self,
        list: &Arc<Vec<Segment>>,
        range: &TermRange,
        ordinals: &Arc<RoaringBitmap>,
        terms: usize,
    ) {
        if ordinals.len() < Self::MANY_ORDINALS {
            return;
        }
        let mut held = self.held.lock();
        if !held.is_of(list) {
            if held.list.strong_count() > 0 {
                return;
            }
            *held = HeldUnions {
                list: Arc::downgrade(list),
                ..HeldUnions::default()
            };
        }
        let size = ordinals.serialized_size();
        if size > Self::BUDGET {
            return;
        }
        if held.bytes + size > Self::BUDGET {
            held.by_range.clear();
            held.bytes = 0;
        }
        let kept = (Arc::clone(ordinals), terms, size);
        if let Some((_, _, replaced)) = held.by_range.insert(range.clone(), kept) {
            held.bytes -= replaced;
        }
        held.bytes += size;
    }
}

impl Store {
    /// The ordinals `segments` index under a term in `range`, their stale ones left out, and how
    /// many terms that was; `None` past `max_terms` terms. Needs no lock: a list is replaced
    /// whole, never changed. Ranges that gather many are kept (see [`RangeUnions`]).
    ///
    /// # Errors
    /// [`ReadModelError`] when the store fails.
    pub fn live_postings(
        &self,
        segments: &Arc<Vec<Segment>>,
        range: &TermRange,
        max_terms: usize,
    ) -> Result<Option<(Arc<RoaringBitmap>, usize)>, ReadModelError> {
        if let Some((ordinals, terms)) = self.unions.get(segments, range) {
            return Ok((terms <= max_terms).then_some((ordinals, terms)));
        }
        let mut terms = 0;
        let mut ordinals = RoaringBitmap::new();
        for segment in segments.iter() {
            let Some((found, read)) =
                self.postings_in(segment.meta.id, range, max_terms - terms)?
            else {
                return Ok(None);
            };
            terms += read;
            ordinals |= found - &segment.stale;
        }
        let ordinals = Arc::new(ordinals);
        self.unions.keep(segments, range, &ordinals, terms);
        Ok(Some((ordinals, terms)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TextField;

    /// A store with segment 1 holding `terms` (city terms and their ordinals), ordinal 3 stale.
    fn store_with(dir: &std::path::Path, terms: &[(&str, u32)]) -> (Store, Arc<Vec<Segment>>) {
        let store = Store::open(dir).unwrap();
        let mut writer = store.segment_writer(1);
        for (term, count) in terms {
            writer
                .push(format!("\x07{term}\x00").as_bytes(), 0..*count)
                .unwrap();
        }
        let meta = writer.finish().unwrap().unwrap();
        let segment = Segment {
            meta,
            stale: [3].into_iter().collect(),
        };
        (store, Arc::new(vec![segment]))
    }

    fn city(needle: &str) -> TermRange {
        TermRange::of(TextField::City, needle, false)
    }

    fn read(store: &Store, list: &Arc<Vec<Segment>>, needle: &str) -> Arc<RoaringBitmap> {
        store
            .live_postings(list, &city(needle), usize::MAX)
            .unwrap()
            .unwrap()
            .0
    }

    #[test]
    fn a_range_that_gathers_many_is_kept_while_its_list_is_current() {
        let dir = tempfile::tempdir().unwrap();
        let (store, list) = store_with(dir.path(), &[("few", 10), ("many", 2_000)]);
        let (first, terms) = store
            .live_postings(&list, &city("man"), usize::MAX)
            .unwrap()
            .unwrap();
        assert_eq!(
            (first.len(), terms),
            (1_999, 1),
            "its stale ordinal left out"
        );
        assert!(Arc::ptr_eq(&first, &read(&store, &list, "man")), "kept");
        assert!(store
            .live_postings(&list, &city("man"), 0)
            .unwrap()
            .is_none());
        let few = read(&store, &list, "fe");
        assert_eq!(few.len(), 9);
        assert!(
            !Arc::ptr_eq(&few, &read(&store, &list, "fe")),
            "too few to keep"
        );
        // Another list (a flush replaced it): read again, and kept only once no reader holds
        // the first.
        let next = Arc::new(list.as_ref().clone());
        let again = read(&store, &next, "man");
        assert_eq!(again, first);
        assert!(!Arc::ptr_eq(&again, &read(&store, &next, "man")));
        assert!(
            Arc::ptr_eq(&first, &read(&store, &list, "man")),
            "still the first's"
        );
        drop(list);
        let kept = read(&store, &next, "man");
        assert!(Arc::ptr_eq(&kept, &read(&store, &next, "man")));
    }

    #[test]
    fn past_its_budget_it_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        // Each about 40 KiB of ordinals, the two more than the budget in tests; the last more
        // than all of it.
        let terms = [("alpha", 300_000), ("beta", 300_000), ("gamma", 1_000_000)];
        let (store, list) = store_with(dir.path(), &terms);
        let alpha = read(&store, &list, "alp");
        let kept = |store: &Store| store.unions.held.lock().by_range.len();
        assert_eq!(kept(&store), 1);
        let beta = read(&store, &list, "bet");
        assert_eq!(kept(&store), 1, "alpha made way");
        assert!(Arc::ptr_eq(&beta, &read(&store, &list, "bet")));
        assert!(!Arc::ptr_eq(&alpha, &read(&store, &list, "alp")));
        read(&store, &list, "gam");
        assert!(store.unions.held.lock().bytes <= RangeUnions::BUDGET);
    }
}
