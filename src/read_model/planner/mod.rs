//! How `find` answers, on postings: so a query costs what it selects and returns, and a query
//! that would cost more than a bound is refused rather than run.
//!
//! 1. **Select** (`select.rs`). A `code` filter looks its customer up (see [`find_by_code`]).
//!    Otherwise each whole-value filter's term, then each prefix filter's term range (the union
//!    of every term under it), intersected; then the account (or the accounts an API key is
//!    confined to): looked up ordinal by ordinal in the directory when few remain, else
//!    intersected with the accounts' sets. A prefix whose range holds more terms than checking
//!    the candidates so far (or the account's customers) would cost is instead checked on their
//!    records. No filter at all selects every live customer.
//! 2. **Count.** `X-Total-Count` is the selection's cardinality.
//! 3. **Order** (`order.rs`). The page is the `offset`th to `offset + limit`th of the selection in answer order
//!    (`createdAt`, then `id`). Ordinals are not in that order (see `directory.rs`), so either the
//!    answer order is walked, testing each ordinal against the selection, until the page is full
//!    (cheap when the selection is a large share of the registry), or the selection's order keys
//!    are gathered and the page picked from them (cheap when it is small); the cheaper is chosen.
//! 4. **Load** the page's records, each stored block read once.
//!
//! The index's lock is held only while memory is read: segment postings and records are read
//! from the store with it released (a find waiting on the disk would otherwise hold up the
//! projector's writes, and every read queued behind them).
//!
//! Every step spends from a work bound ([`Work`]); a find that would exceed it fails with
//! [`ReadModelError::OverBudget`], which the API answers with 422 `query_too_broad`.

pub(super) mod order;
mod select;

use super::directory::{Directory, OrderKey};
use super::index::{Index, RecordsToLoad};
use super::query::CustomerQuery;
use super::store::Store;
use super::ReadModelError;
use crate::domain::{AccountId, Customer, CustomerCode, CustomerId};
use order::page_in_order;
use parking_lot::RwLock;
use roaring::RoaringBitmap;
use select::select;
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

/// Plans the answer to `query` within `work`: the selection and the page's ordinals. The
/// index's lock is held only while memory is read; segment postings and records are read from
/// the store with it released (see [`select`]), so a find waiting on the disk never holds
/// up the projector's writes, nor the reads queued behind them. [`Planned::load`] reads the
/// page's records.
///
/// # Errors
/// [`ReadModelError::OverBudget`] when it would need more work; [`ReadModelError`] when the store
/// fails.
pub fn find(
    index: &RwLock<Index>,
    store: &Store,
    query: &CustomerQuery,
    work: &Work,
) -> Result<Planned, ReadModelError> {
    if let Some(code) = &query.code {
        return find_by_code(index, store, query, code, work);
    }
    let selection = select(index, store, query, work)?;
    let index = index.read();
    let total = selection
        .as_deref()
        .map_or(index.directory.live().len(), RoaringBitmap::len) as usize;
    if query.offset >= total {
        // Nothing to page to: answered without touching the order, however large `offset` is.
        return Ok(Planned {
            to_load: index.records_to_load(&[]),
            total,
        });
    }
    let ordinals = page_in_order(&index, selection.as_deref(), query, total, work)?;
    work.spend(ordinals.len() * LOAD_COST)?;
    Ok(Planned {
        to_load: index.records_to_load(&ordinals),
        total,
    })
}

/// A page planned: the records to load once the index's lock is released.
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

/// The page of a find with a `code`. Codes are not indexed: a code given at create names its
/// customer (its id derives from account and code), and a customer created without one has its
/// id as its code. So the candidates are, in each account the find may see (its accounts, else
/// every account), the customer the code's id names, plus the customer whose id the code is
/// written as; their records are read once, checked against the whole query, and ordered.
fn find_by_code(
    index: &RwLock<Index>,
    store: &Store,
    query: &CustomerQuery,
    code: &CustomerCode,
    work: &Work,
) -> Result<Planned, ReadModelError> {
    let to_load = {
        let index = index.read();
        let candidates = code_candidates(&index.directory, code, query.accounts(), work)?;
        work.spend(candidates.len() * LOAD_COST)?;
        index.records_to_load(&candidates)
    };
    let mut selected = to_load.load_numbered(store)?;
    selected.retain(|(_, record)| !record.deleted && query.matches(&record.customer));
    selected.sort_unstable_by_key(|(_, record)| OrderKey::of(&record.customer));
    let total = selected.len();
    let page = selected
        .into_iter()
        .skip(query.offset)
        .take(query.limit)
        .collect();
    Ok(Planned {
        to_load: RecordsToLoad::loaded(page),
        total,
    })
}

/// The live customers a find by `code` may select (see [`find_by_code`]).
fn code_candidates(
    directory: &Directory,
    code: &CustomerCode,
    accounts: Option<Vec<AccountId>>,
    work: &Work,
) -> Result<Vec<u32>, ReadModelError> {
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
                look_up(code.customer_id(account))?;
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
    Ok(candidates)
}
