//! How `find` answers, on postings: so a query costs what it selects and returns, and a query
//! that would cost more than a bound is refused rather than run.
//!
//! 1. **Select.** A `code` filter looks its customer up (see [`code_selection`]). Otherwise each
//!    whole-value filter's term, then each prefix filter's term range (the union
//!    of every term under it), intersected; then the account (or the accounts an API key is
//!    confined to): looked up ordinal by ordinal in the directory when few remain, else
//!    intersected with the accounts' sets. A prefix whose range
//!    holds more terms than checking the candidates so far (or the account's customers) would
//!    cost is instead checked on their records. No filter at all selects every live customer.
//! 2. **Count.** `X-Total-Count` is the selection's cardinality.
//! 3. **Order.** The page is the `offset`th to `offset + limit`th of the selection in answer order
//!    (`createdAt`, then `id`). Ordinals are not in that order (see `directory.rs`), so either the
//!    answer order is walked, testing each ordinal against the selection, until the page is full
//!    (cheap when the selection is a large share of the registry), or the selection's order keys
//!    are gathered and the page picked from them (cheap when it is small); the cheaper is chosen.
//! 4. **Load** the page's records, each stored block read once.
//!
//! Every step spends from a work bound ([`Work`]); a find that would exceed it fails with
//! [`ReadModelError::OverBudget`], which the API answers with 422 `query_too_broad`.

use super::fold::matches_whole_value;
use super::index::{Index, RecordsToLoad};
use super::query::CustomerQuery;
use super::store::Store;
use super::terms::{account_term, TermRange};
use super::ReadModelError;
use crate::domain::{AccountId, Customer, CustomerCode, CustomerId};
use roaring::RoaringBitmap;
use std::cell::Cell;
use std::sync::Arc;

/// One page of a `find`, and how many customers match in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The customers of the page, in answer order.
    pub customers: Vec<Customer>,
    /// Every customer the query matches, over all pages.
    pub total: usize,
}

/// Work units, each about 10 ns on this project's reference machine (measured with the criterion
/// benches): an ordinal tested or an order key read is 1.
const ORDINAL_COST: usize = 1;
/// A term read from a posting range: a block entry decoded and merged.
const TERM_COST: usize = 25;
/// A record loaded: a block read and a record decoded.
const LOAD_COST: usize = 150;
/// A code's customer id derived (a SHA-1) and looked up in the directory.
const CODE_LOOKUP_COST: usize = 40;

/// The work a find may do where it runs on an async worker (about half a millisecond): past it,
/// it moves to the blocking pool.
pub const INLINE_WORK: usize = 50_000;
/// The work any find may do (about 100 ms): past it, the find is refused as too broad.
pub const MAX_WORK: usize = 10_000_000;

/// The work a find has left to spend.
pub struct Work {
    left: Cell<usize>,
}

impl Work {
    /// A bound of `units`.
    pub fn limited_to(units: usize) -> Self {
        Self {
            left: Cell::new(units),
        }
    }

    fn left(&self) -> usize {
        self.left.get()
    }

    fn spend(&self, units: usize) -> Result<(), ReadModelError> {
        let left = self.left.get();
        if left < units {
            return Err(ReadModelError::OverBudget);
        }
        self.left.set(left - units);
        Ok(())
    }
}

/// Plans the answer to `query` from `index` and `store` within `work`: the selection and the
/// page's ordinals, under the index's lock; [`Planned::load`] reads the records after it.
///
/// # Errors
/// [`ReadModelError::OverBudget`] when it would need more work; [`ReadModelError`] when the store
/// fails.
pub fn find(
    index: &Index,
    store: &Store,
    query: &CustomerQuery,
    work: &Work,
) -> Result<Planned, ReadModelError> {
    let selection = select(index, store, query, work)?;
    let total = selection
        .as_ref()
        .map_or(index.directory.live().len(), RoaringBitmap::len) as usize;
    if query.offset >= total {
        // Nothing to page to: answered without touching the order, however large `offset` is.
        return Ok(Planned {
            to_load: index.records_to_load(&[]),
            total,
        });
    }
    let ordinals = page_in_order(index, selection.as_ref(), query, total, work)?;
    work.spend(ordinals.len() * LOAD_COST)?;
    Ok(Planned {
        to_load: index.records_to_load(&ordinals),
        total,
    })
}

/// A page planned under the index's lock: the records to load once it is released.
pub struct Planned {
    to_load: RecordsToLoad,
    total: usize,
}

impl Planned {
    /// The page of `query`, reading from the store what the layers in memory did not hold. A
    /// customer deleted, or changed so that `query` no longer selects it, since the page was
    /// planned is left out (the page is then one shorter; `total` is as planned).
    ///
    /// # Errors
    /// [`ReadModelError`] when the store fails or a record cannot be read.
    pub fn load(self, store: &Store, query: &CustomerQuery) -> Result<Page, ReadModelError> {
        let records = self.to_load.load_where(store, |record| {
            !record.deleted && query.matches(&record.customer)
        })?;
        let customers = records
            .into_iter()
            // A record read from the store is this find's own: taken, not copied.
            .map(|record| {
                Arc::try_unwrap(record)
                    .map_or_else(|shared| shared.customer.clone(), |own| own.customer)
            })
            .collect();
        Ok(Page {
            customers,
            total: self.total,
        })
    }
}

/// A selection this small checks its account in the directory, one ordinal at a time, rather
/// than intersecting with the account's whole set. (Tiny in tests, so that the oracle's small
/// registries take both ways.)
const ACCOUNT_CHECK_LIMIT: u64 = if cfg!(test) { 3 } else { 8_192 };

/// The ordinals `query` selects; `None` for every live customer.
fn select(
    index: &Index,
    store: &Store,
    query: &CustomerQuery,
    work: &Work,
) -> Result<Option<RoaringBitmap>, ReadModelError> {
    let directory = &index.directory;
    let accounts = query.accounts();
    let account_size = accounts.as_ref().map(|accounts| {
        accounts
            .iter()
            .map(|account| directory.account_size(*account))
            .sum::<usize>()
    });
    if account_size == Some(0) {
        return Ok(Some(RoaringBitmap::new()));
    }
    if let Some(code) = &query.code {
        return code_selection(index, store, query, code, accounts.as_deref(), work).map(Some);
    }
    let mut selection: Option<RoaringBitmap> = None;
    // Whole values first (one term each), then prefixes, longest (most selective) first.
    let mut filters: Vec<_> = query.text_filters.iter().collect();
    filters
        .sort_by_key(|(field, needle)| (!matches_whole_value(*field), usize::MAX - needle.len()));
    let mut to_check = Vec::new();
    for (field, needle) in filters {
        if selection.as_ref().is_some_and(RoaringBitmap::is_empty) {
            return Ok(selection);
        }
        let range = TermRange::of(*field, needle, matches_whole_value(*field));
        // Reading the range may cost at most what checking the candidates' records would: the
        // selection so far, else the account's customers.
        let candidates = selection
            .as_ref()
            .map(|so_far| so_far.len() as usize)
            .or(account_size);
        let max_terms = candidates.map_or(usize::MAX, |n| n * LOAD_COST / TERM_COST);
        match read_range(index, store, &range, work, max_terms)? {
            Some(found) => {
                work.spend(found.len() as usize / 64 * ORDINAL_COST)?;
                selection = Some(match selection.take() {
                    Some(so_far) => so_far & found,
                    None => found,
                });
            }
            None => to_check.push((*field, needle.as_str())),
        }
    }
    if let Some(accounts) = accounts {
        selection = Some(match selection.take() {
            // Few enough to look each up.
            Some(mut so_far) if so_far.len() <= ACCOUNT_CHECK_LIMIT => {
                work.spend(so_far.len() as usize * ORDINAL_COST)?;
                so_far.retain(|ordinal| directory.is_in(ordinal, &accounts));
                so_far
            }
            so_far => {
                let mut in_accounts = RoaringBitmap::new();
                for account in accounts {
                    let range = TermRange::exactly(account_term(account));
                    in_accounts |= read_range(index, store, &range, work, usize::MAX)?
                        .expect("an exact range holds one term");
                }
                match so_far {
                    Some(so_far) => so_far & in_accounts,
                    None => in_accounts,
                }
            }
        });
    }
    if let (false, Some(candidates)) = (to_check.is_empty(), &mut selection) {
        let ordinals: Vec<u32> = candidates.iter().collect();
        work.spend(ordinals.len() * LOAD_COST)?;
        let records = index.records(store, &ordinals)?;
        let checked = CustomerQuery {
            account_id: None,
            text_filters: to_check
                .into_iter()
                .map(|(field, needle)| (field, needle.to_owned()))
                .collect(),
            ..CustomerQuery::default()
        };
        for (ordinal, record) in ordinals.into_iter().zip(records) {
            if !checked.matches(&record.customer) {
                candidates.remove(ordinal);
            }
        }
    }
    Ok(selection)
}

/// The customers `query` selects when it has a `code`. Codes are not indexed: a code given at
/// create names its customer (its id derives from account and code), and a customer created
/// without one has its id as its code. So the candidates are, in each account the find may see
/// (`accounts`, else every account), the customer the code's id names, plus the customer whose
/// id the code is written as; each is then checked against the whole query.
fn code_selection(
    index: &Index,
    store: &Store,
    query: &CustomerQuery,
    code: &CustomerCode,
    accounts: Option<&[AccountId]>,
    work: &Work,
) -> Result<RoaringBitmap, ReadModelError> {
    let directory = &index.directory;
    let mut candidates = Vec::new();
    let mut look_up = |id: CustomerId| -> Result<(), ReadModelError> {
        work.spend(CODE_LOOKUP_COST)?;
        if let Some(ordinal) = directory.ordinal_of(id) {
            if directory.live().contains(ordinal) && !candidates.contains(&ordinal) {
                candidates.push(ordinal);
            }
        }
        Ok(())
    };
    match accounts {
        Some(accounts) => {
            for account in accounts {
                look_up(code.customer_id(*account))?;
            }
        }
        None => {
            for account in directory.accounts() {
                look_up(code.customer_id(account))?;
            }
        }
    }
    if let Ok(id) = code.as_str().parse::<CustomerId>() {
        look_up(id)?;
    }
    work.spend(candidates.len() * LOAD_COST)?;
    let records = index.records(store, &candidates)?;
    Ok(candidates
        .into_iter()
        .zip(records)
        .filter(|(_, record)| query.matches(&record.customer))
        .map(|(ordinal, _)| ordinal)
        .collect())
}

/// The ordinals under every term in `range`, or `None` past `max_terms` terms.
fn read_range(
    index: &Index,
    store: &Store,
    range: &TermRange,
    work: &Work,
    max_terms: usize,
) -> Result<Option<RoaringBitmap>, ReadModelError> {
    let affordable = work.left() / TERM_COST;
    match index.postings(store, range, max_terms.min(affordable))? {
        Ok((found, terms)) => {
            work.spend(terms * TERM_COST)?;
            Ok(Some(found))
        }
        Err(_) if max_terms <= affordable => Ok(None),
        Err(_) => Err(ReadModelError::OverBudget),
    }
}

/// The ordinals of the page, in answer order.
fn page_in_order(
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
/// deep page of 9M selected customers, ~288 MB). Each pass counts the selected customers in
/// buckets of `createdAt` over the range still in play, then keeps the buckets holding the
/// wanted ranks; once the range holds few enough (or is one millisecond wide), its keys are
/// gathered and sorted.
fn narrow_to_page(
    index: &Index,
    selection: &RoaringBitmap,
    offset: usize,
    wanted: usize,
    work: &Work,
) -> Result<Vec<u32>, ReadModelError> {
    let directory = &index.directory;
    let order = directory.answer_order();
    let created = |ordinal: u32| directory.key(ordinal).created_millis;
    // The answer order's ends bound every live customer's `createdAt`.
    let (Some(first), Some(last)) = (order.iter_from(0).next(), order.last()) else {
        return Ok(Vec::new());
    };
    let (mut low, mut high) = (created(first), created(last));
    // Selected customers created before `low`, and from `low` to `high`.
    let (mut before, mut within) = (0, selection.len() as usize);
    while within > GATHER_AT_MOST.max(wanted - offset) && low < high {
        work.spend(selection.len() as usize * ORDINAL_COST)?;
        let width = (i128::from(high) - i128::from(low)) / NARROWING_BUCKETS as i128 + 1;
        let bucket_of = |millis: i64| ((i128::from(millis) - i128::from(low)) / width) as usize;
        // On the heap: 512 KiB would not belong on a worker thread's stack.
        let mut counts: Vec<usize> = std::iter::repeat_n(0, NARROWING_BUCKETS).collect();
        for millis in selection.iter().map(created) {
            if (low..=high).contains(&millis) {
                counts[bucket_of(millis)] += 1;
            }
        }
        // The buckets holding the first and the last wanted rank.
        let (first_rank, last_rank) = (offset - before, wanted - 1 - before);
        let (mut seen, mut from) = (0, None);
        let mut to = NARROWING_BUCKETS - 1;
        for (bucket, &count) in counts.iter().enumerate() {
            if from.is_none() && seen + count > first_rank {
                from = Some((bucket, seen));
            }
            if seen + count > last_rank {
                to = bucket;
                break;
            }
            seen += count;
        }
        let (from, skipped) = from.expect("the wanted ranks lie within the range");
        let narrowed_low =
            i64::try_from(i128::from(low) + from as i128 * width).expect("within the range");
        let narrowed_high = i64::try_from(i128::from(low) + (to as i128 + 1) * width - 1)
            .map_or(high, |end| end.min(high));
        let narrowed = (narrowed_low, narrowed_high) != (low, high);
        (low, high) = (narrowed_low, narrowed_high);
        before += skipped;
        within = counts[from..=to].iter().sum();
        if !narrowed {
            break;
        }
    }
    work.spend(selection.len() as usize * ORDINAL_COST)?;
    let mut keyed: Vec<_> = selection
        .iter()
        .filter_map(|ordinal| {
            let key = directory.key(ordinal);
            (low..=high)
                .contains(&key.created_millis)
                .then_some((key, ordinal))
        })
        .collect();
    keyed.sort_unstable();
    Ok(keyed
        .into_iter()
        .skip(offset - before)
        .take(wanted - offset)
        .map(|(_, ordinal)| ordinal)
        .collect())
}
