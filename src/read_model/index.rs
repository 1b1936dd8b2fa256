//! What readers see: the directory, the layers of changes not yet flushed, and the committed
//! segments, read together as one consistent state under one lock.

use super::directory::Directory;
use super::memtable::Memtable;
use super::record::CustomerRecord;
use super::store::{RecordBlock, Segment, Store, RECORD_BLOCK};
use super::terms::TermRange;
use super::ReadModelError;
use roaring::RoaringBitmap;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The read model's state in memory, over the store.
pub struct Index {
    /// Which ordinal each customer holds, and the answer order.
    pub directory: Directory,
    /// Changes applied since the last freeze.
    pub active: Memtable,
    /// Changes being flushed, beneath `active`.
    pub frozen: Option<Arc<Memtable>>,
    /// The committed index, beneath both.
    pub segments: Vec<Segment>,
    /// The log position the store (or the frozen layer, once flushed) reaches.
    pub committed_offsets: BTreeMap<i32, i64>,
}

/// A term range could not be read within the terms allowed.
#[derive(Debug)]
pub struct TooManyTerms;

impl Index {
    /// The layers, top first.
    fn layers(&self) -> impl Iterator<Item = &Memtable> {
        std::iter::once(&self.active).chain(self.frozen.as_deref())
    }

    /// The log position everything applied reaches.
    pub fn applied_offsets(&self) -> &BTreeMap<i32, i64> {
        self.active.next_offsets()
    }

    /// Every live ordinal indexed under a term in `range`, reading at most `max_terms` terms;
    /// returns the ordinals and the terms read.
    ///
    /// # Errors
    /// [`TooManyTerms`] (inside `Ok(Err(..))`) past `max_terms`; [`ReadModelError`] when the
    /// store fails.
    pub fn postings(
        &self,
        store: &Store,
        range: &TermRange,
        max_terms: usize,
    ) -> Result<Result<(RoaringBitmap, usize), TooManyTerms>, ReadModelError> {
        let mut terms = 0;
        let mut ordinals = RoaringBitmap::new();
        for segment in &self.segments {
            let Some((found, read)) =
                store.postings_in(segment.meta.id, range, max_terms - terms)?
            else {
                return Ok(Err(TooManyTerms));
            };
            terms += read;
            ordinals |= found - &segment.stale;
        }
        // The frozen layer first, then the active one on top of it.
        let layers: Vec<&Memtable> = self.layers().collect();
        for layer in layers.into_iter().rev() {
            ordinals -= layer.superseded();
            terms += layer.add_postings_in(range, &mut ordinals);
            if terms > max_terms {
                return Ok(Err(TooManyTerms));
            }
        }
        Ok(Ok((ordinals, terms)))
    }

    /// The record of `ordinal`, from the topmost layer that has it, else from the store.
    ///
    /// # Errors
    /// [`ReadModelError`] when the store fails or the stored record is malformed.
    pub fn record(
        &self,
        store: &Store,
        ordinal: u32,
    ) -> Result<Option<Arc<CustomerRecord>>, ReadModelError> {
        for layer in self.layers() {
            if let Some(record) = layer.record(ordinal) {
                return Ok(Some(Arc::clone(record)));
            }
        }
        Ok(store.record(ordinal)?.map(Arc::new))
    }

    /// The records of `ordinals`, in that order, reading each stored block once however many
    /// of them it holds.
    ///
    /// # Errors
    /// [`ReadModelError`] when the store fails, a record is malformed, or an ordinal has none.
    pub fn records(
        &self,
        store: &Store,
        ordinals: &[u32],
    ) -> Result<Vec<Arc<CustomerRecord>>, ReadModelError> {
        self.records_to_load(ordinals).load(store)
    }

    /// The records of `ordinals` that the layers in memory hold, taken now, and the ordinals
    /// whose records are in the store, to read with [`RecordsToLoad::load`] once this index's
    /// lock is released: a store read may wait on the disk, and the projector's writes (and,
    /// behind them, every read) must not wait on it.
    pub fn records_to_load(&self, ordinals: &[u32]) -> RecordsToLoad {
        let slots = ordinals
            .iter()
            .map(|&ordinal| {
                self.layers()
                    .find_map(|layer| layer.record(ordinal))
                    .map_or(Err(ordinal), |record| Ok(Arc::clone(record)))
            })
            .collect();
        RecordsToLoad { slots }
    }
}

/// Records of a page: those taken from the layers in memory, and the ordinals still to read from
/// the store.
///
/// Reading the store after the index's lock is released is safe: ordinals are never reused, an
/// ordinal missing from every layer had its newest record in the store when the lock was held,
/// and a flush replaces a stored block whole, atomically. A record read later is the one the
/// store held then, or a newer one: never older than what the index showed. Newer may mean
/// deleted, or no longer what a find selected it for: [`RecordsToLoad::load_where`] leaves those
/// out.
pub struct RecordsToLoad {
    /// Per ordinal asked for, in order: its record, or its ordinal to read from the store.
    slots: Vec<Result<Arc<CustomerRecord>, u32>>,
}

impl RecordsToLoad {
    /// The records, in the order asked for, reading each stored block once.
    ///
    /// # Errors
    /// [`ReadModelError`] when the store fails, a record is malformed, or an ordinal has none.
    pub fn load(self, store: &Store) -> Result<Vec<Arc<CustomerRecord>>, ReadModelError> {
        self.load_where(store, |_| true)
    }

    /// [`RecordsToLoad::load`], leaving out a record read from the store that fails `keep`: it
    /// changed after the lock was released (a find's selection was made before).
    ///
    /// # Errors
    /// [`ReadModelError`] when the store fails, a record is malformed, or an ordinal has none.
    pub fn load_where(
        self,
        store: &Store,
        keep: impl Fn(&CustomerRecord) -> bool,
    ) -> Result<Vec<Arc<CustomerRecord>>, ReadModelError> {
        let mut blocks: BTreeMap<u32, Option<RecordBlock>> = BTreeMap::new();
        let mut records = Vec::with_capacity(self.slots.len());
        for slot in self.slots {
            let ordinal = match slot {
                Ok(record) => {
                    records.push(record);
                    continue;
                }
                Err(ordinal) => ordinal,
            };
            let block = match blocks.entry(ordinal / RECORD_BLOCK) {
                std::collections::btree_map::Entry::Occupied(held) => held.into_mut(),
                std::collections::btree_map::Entry::Vacant(free) => {
                    let number = *free.key();
                    free.insert(store.record_block(number)?)
                }
            };
            let record = match block {
                Some(block) => block.record(ordinal)?,
                None => None,
            };
            let record = record.ok_or_else(|| missing(ordinal))?;
            if keep(&record) {
                records.push(Arc::new(record));
            }
        }
        Ok(records)
    }
}

fn missing(ordinal: u32) -> ReadModelError {
    ReadModelError::Corrupt(format!("ordinal {ordinal} is live but has no record"))
}
