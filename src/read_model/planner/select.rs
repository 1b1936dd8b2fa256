//! Step 1 of a find, the selection: segment postings read with the index's lock released, then
//! combined under it with the layers in memory, the accounts, and the records of candidates
//! whose filters were too broad to read.

use super::{Work, LOAD_COST, ORDINAL_COST, TERM_COST};
use crate::domain::{AccountId, TextField};
use crate::read_model::directory::Directory;
use crate::read_model::fold::matches_whole_value;
use crate::read_model::index::{Index, RecordsToLoad};
use crate::read_model::query::CustomerQuery;
use crate::read_model::store::{Segment, Store};
use crate::read_model::terms::{account_term, TermRange};
use crate::read_model::ReadModelError;
use parking_lot::RwLock;
use roaring::RoaringBitmap;
use std::sync::Arc;

/// A selection this small checks its account in the directory, one ordinal at a time, rather
/// than intersecting with the account's whole set. (Tiny in tests, so that the oracle's small
/// registries take both ways.)
const ACCOUNT_CHECK_LIMIT: u64 = if cfg!(test) { 3 } else { 8_192 };

/// The ordinals `query` selects; `None` for every live customer. Segment postings are read
/// first with the lock released ([`SegmentReads::read`]), then combined under it with the layers
/// in memory; a flush that replaced the segments in between makes it read them again, once,
/// and then under the lock (a flush takes about a second, a find milliseconds). Shared: a
/// single range's ordinals may be the store's kept ones.
pub(super) fn select(
    index: &RwLock<Index>,
    store: &Store,
    query: &CustomerQuery,
    work: &Work,
) -> Result<Option<Arc<RoaringBitmap>>, ReadModelError> {
    let accounts = query.accounts();
    let filters = filters_in_order(query);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let (segments, account_size) = {
            let index = index.read();
            let size = account_size(&index.directory, accounts.as_deref());
            (Arc::clone(&index.segments), size)
        };
        if account_size == Some(0) {
            return Ok(Some(Arc::default()));
        }
        let estimate = Estimate {
            account_size,
            affordable: work.left() / TERM_COST,
        };
        let mut reads =
            SegmentReads::read(store, segments, &filters, accounts.as_deref(), estimate)?;
        let index = index.read();
        if !Arc::ptr_eq(&index.segments, &reads.segments) && attempts < 2 {
            continue;
        }
        let mut select = Selecting {
            index: &index,
            store,
            reads: &mut reads,
            work,
        };
        let (selection, to_check) = select.run(&filters, accounts.as_deref(), account_size)?;
        let Some((to_load, checked)) = to_check else {
            return Ok(selection);
        };
        drop(index);
        return to_load
            .ordinals_where(store, |record| checked.matches(&record.customer))
            .map(|ordinals| Some(Arc::new(ordinals)));
    }
}

/// The text filters, whole values first (one term each), then prefixes, longest (most
/// selective) first.
fn filters_in_order(query: &CustomerQuery) -> Vec<(TextField, &str)> {
    let mut filters: Vec<_> = query
        .text_filters
        .iter()
        .map(|(field, needle)| (*field, needle.as_str()))
        .collect();
    filters
        .sort_by_key(|(field, needle)| (!matches_whole_value(*field), usize::MAX - needle.len()));
    filters
}

/// How many customers the find's accounts hold; `None` when it is not confined to accounts.
fn account_size(directory: &Directory, accounts: Option<&[AccountId]>) -> Option<usize> {
    accounts.map(|accounts| {
        accounts
            .iter()
            .map(|account| directory.account_size(*account))
            .sum()
    })
}

/// How many terms a filter's range may read: at most what checking the candidates' records
/// would cost (the selection so far, else the account's customers).
fn max_terms(candidates: Option<usize>) -> usize {
    candidates.map_or(usize::MAX, |n| n * LOAD_COST / TERM_COST)
}

/// What bounds the reads made before the selection is known.
struct Estimate {
    account_size: Option<usize>,
    affordable: usize,
}

/// Segment postings of a find's ranges, read from one list of segments with the index's lock
/// released. The selection they will make is estimated from the segments alone (the layers in
/// memory hold at most a flush's changes), with room to spare, so the terms each range may read
/// are what the planner under the lock will allow, or a little more.
struct SegmentReads {
    segments: Arc<Vec<Segment>>,
    ranges: Vec<RangeRead>,
}

/// A range's segment postings, read before the selection is made.
struct RangeRead {
    range: TermRange,
    /// The ordinals and the terms read; `None` past `bound` terms.
    found: Option<(Arc<RoaringBitmap>, usize)>,
    bound: usize,
}

impl SegmentReads {
    fn read(
        store: &Store,
        segments: Arc<Vec<Segment>>,
        filters: &[(TextField, &str)],
        accounts: Option<&[AccountId]>,
        estimate: Estimate,
    ) -> Result<Self, ReadModelError> {
        let mut ranges = Vec::new();
        let mut so_far: Option<u64> = None;
        for (field, needle) in filters {
            let range = TermRange::of(*field, needle, matches_whole_value(*field));
            let candidates = so_far.map(|n| n as usize).or(estimate.account_size);
            let bound = max_terms(candidates.map(|n| n + n / 4 + 64)).min(estimate.affordable);
            let found = store.live_postings(&segments, &range, bound)?;
            if let Some((ordinals, _)) = &found {
                so_far = Some(so_far.map_or(ordinals.len(), |n| n.min(ordinals.len())));
            }
            ranges.push(RangeRead {
                range,
                found,
                bound,
            });
        }
        if let Some(accounts) = accounts {
            // The accounts' sets are read when the selection is too large to check one by one.
            if so_far.is_none_or(|n| n > ACCOUNT_CHECK_LIMIT / 2) {
                for account in accounts {
                    let range = TermRange::exactly(account_term(*account));
                    let found = store.live_postings(&segments, &range, usize::MAX)?;
                    ranges.push(RangeRead {
                        range,
                        found,
                        bound: usize::MAX,
                    });
                }
            }
        }
        Ok(Self { segments, ranges })
    }

    /// The segment postings of `range` within `max_terms` (`Some(None)` past it), if they were
    /// read from `segments`; `None` when they must be read now.
    fn take(
        &mut self,
        segments: &Arc<Vec<Segment>>,
        range: &TermRange,
        max_terms: usize,
    ) -> Option<Option<(Arc<RoaringBitmap>, usize)>> {
        if !Arc::ptr_eq(segments, &self.segments) {
            return None;
        }
        let at = self.ranges.iter().position(|read| read.range == *range)?;
        let RangeRead { found, bound, .. } = self.ranges.swap_remove(at);
        match found {
            Some((ordinals, terms)) => Some((terms <= max_terms).then_some((ordinals, terms))),
            None if max_terms <= bound => Some(None),
            None => None,
        }
    }
}

/// A selection being made under the index's lock, from segment postings read before.
struct Selecting<'a> {
    index: &'a Index,
    store: &'a Store,
    reads: &'a mut SegmentReads,
    work: &'a Work,
}

/// Candidates whose records are to be checked against the filters their ranges were too broad
/// to read.
type ToCheck = (RecordsToLoad, CustomerQuery);

impl Selecting<'_> {
    /// The selection, and the candidates to check (with the lock released) if some filters
    /// are left to check on records.
    fn run(
        &mut self,
        filters: &[(TextField, &str)],
        accounts: Option<&[AccountId]>,
        account_size: Option<usize>,
    ) -> Result<(Option<Arc<RoaringBitmap>>, Option<ToCheck>), ReadModelError> {
        let mut selection: Option<Arc<RoaringBitmap>> = None;
        let mut to_check = Vec::new();
        for &(field, needle) in filters {
            if selection.as_deref().is_some_and(RoaringBitmap::is_empty) {
                return Ok((selection, None));
            }
            let range = TermRange::of(field, needle, matches_whole_value(field));
            let candidates = selection
                .as_ref()
                .map(|so_far| so_far.len() as usize)
                .or(account_size);
            match self.read_range(&range, max_terms(candidates))? {
                Some(found) => {
                    self.work.spend(found.len() as usize / 64 * ORDINAL_COST)?;
                    selection = Some(match selection.take() {
                        Some(so_far) => Arc::new(so_far.as_ref() & found.as_ref()),
                        None => found,
                    });
                }
                None => to_check.push((field, needle.to_owned())),
            }
        }
        if let Some(accounts) = accounts {
            selection = Some(Arc::new(self.confine(selection, accounts)?));
        }
        match (to_check.is_empty(), selection) {
            (false, Some(candidates)) => {
                let ordinals: Vec<u32> = candidates.iter().collect();
                self.work.spend(ordinals.len() * LOAD_COST)?;
                let checked = CustomerQuery {
                    account_id: None,
                    text_filters: to_check,
                    ..CustomerQuery::default()
                };
                let to_load = self.index.records_to_load(&ordinals);
                Ok((None, Some((to_load, checked))))
            }
            (_, selection) => Ok((selection, None)),
        }
    }

    /// `selection` (every live customer when `None`) confined to `accounts`.
    fn confine(
        &mut self,
        selection: Option<Arc<RoaringBitmap>>,
        accounts: &[AccountId],
    ) -> Result<RoaringBitmap, ReadModelError> {
        let directory = &self.index.directory;
        Ok(match selection {
            // Few enough to look each up.
            Some(so_far) if so_far.len() <= ACCOUNT_CHECK_LIMIT => {
                self.work.spend(so_far.len() as usize * ORDINAL_COST)?;
                let mut so_far = Arc::unwrap_or_clone(so_far);
                so_far.retain(|ordinal| directory.is_in(ordinal, accounts));
                so_far
            }
            so_far => {
                let mut in_accounts = RoaringBitmap::new();
                for account in accounts {
                    let range = TermRange::exactly(account_term(*account));
                    let found = self
                        .read_range(&range, usize::MAX)?
                        .expect("an exact range holds one term");
                    in_accounts |= found.as_ref();
                }
                match so_far {
                    Some(so_far) => so_far.as_ref() & in_accounts,
                    None => in_accounts,
                }
            }
        })
    }

    /// The ordinals under every term in `range`, or `None` past `max_terms` terms: the segments'
    /// as read before (or now, if they were not), with the layers' changes on top.
    fn read_range(
        &mut self,
        range: &TermRange,
        max_terms: usize,
    ) -> Result<Option<Arc<RoaringBitmap>>, ReadModelError> {
        let affordable = self.work.left() / TERM_COST;
        let allowed = max_terms.min(affordable);
        let segments = &self.index.segments;
        let found = match self.reads.take(segments, range, allowed) {
            Some(found) => found,
            None => self.store.live_postings(segments, range, allowed)?,
        };
        let found = found.and_then(|(mut ordinals, terms)| {
            let terms = terms + self.index.add_layer_postings(range, &mut ordinals);
            (terms <= allowed).then_some((ordinals, terms))
        });
        match found {
            Some((ordinals, terms)) => {
                self.work.spend(terms * TERM_COST)?;
                Ok(Some(ordinals))
            }
            None if max_terms <= affordable => Ok(None),
            None => Err(ReadModelError::OverBudget),
        }
    }
}
