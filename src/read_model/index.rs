//! What readers see: the directory, the layers of changes not yet flushed, and the committed
//! segments, read together as one consistent state under one lock. The lock guards memory only:
//! what readers need from the store (segment postings, records) they read with it released, from
//! a segment list or record blocks that a flush replaces whole rather than changes.

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
    /// The committed index, beneath both: replaced whole by each flush, so a reader may hold
    /// it past the lock (the flusher deletes a merged-away segment's blocks once no reader holds
    /// a list that names it).
    pub segments: Arc<Vec<Segment>>,
    /// The log position the store (or the frozen layer, once flushed) reaches.
    pub committed_offsets: BTreeMap<i32, i64>,
}

impl Index {
    /// The layers, top first.
    fn layers(&self) -> impl Iterator<Item = &Memtable> {
        std::iter::once(&self.active).chain(self.frozen.as_deref())
    }

    /// The log position everything applied reaches.
    pub fn applied_offsets(&self) -> &BTreeMap<i32, i64> {
        self.active.next_offsets()
    }

    /// Adds to `ordinals` (read from [`Index::segments`]) what the layers in memory change: drops
    /// the ordinals they supersede, adds those they index under a term in `range`; returns the
    /// terms read. `ordinals` is copied only when a layer changes it (they may be kept shared).
    pub fn add_layer_postings(
        &self,
        range: &TermRange,
        ordinals: &mut Arc<RoaringBitmap>,
    ) -> usize {
        let mut terms = 0;
        let mut added = RoaringBitmap::new();
        // The frozen layer first, then the active one on top of it.
        let layers: Vec<&Memtable> = self.layers().collect();
        for layer in layers.into_iter().rev() {
            if !layer.superseded().is_empty() {
                *Arc::make_mut(ordinals) -= layer.superseded();
            }
            terms += layer.add_postings_in(range, &mut added);
            if !added.is_empty() {
                *Arc::make_mut(ordinals) |= &added;
                added.clear();
            }
        }
        terms
    }

    /// The records of `ordinals` that the layers in memory hold, taken now, and the ordinals
    /// whose records are in the store, to read with [`RecordsToLoad::load`] once this index's
    /// lock is released: a store read may wait on the disk, and the projector's writes (and,
    /// behind them, every read) must not wait on it.
    pub fn records_to_load(&self, ordinals: &[u32]) -> RecordsToLoad {
        let slots = ordinals
            .iter()
            .map(|&ordinal| {
                let held = self.layers().find_map(|layer| layer.record(ordinal));
                (ordinal, held.map(Arc::clone))
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
    /// Per ordinal asked for, in order: the ordinal, and its record if a layer held it.
    slots: Vec<(u32, Option<Arc<CustomerRecord>>)>,
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
        let mut records = Vec::with_capacity(self.slots.len());
        self.for_each(store, |_, record, stored| {
            if !stored || keep(&record) {
                records.push(record);
            }
        })?;
        Ok(records)
    }

    /// Every record, with its ordinal, in the order asked for.
    ///
    /// # Errors
    /// [`ReadModelError`] when the store fails, a record is malformed, or an ordinal has none.
    pub fn load_numbered(
        self,
        store: &Store,
    ) -> Result<Vec<(u32, Arc<CustomerRecord>)>, ReadModelError> {
        let mut records = Vec::with_capacity(self.slots.len());
        self.for_each(store, |ordinal, record, _| records.push((ordinal, record)))?;
        Ok(records)
    }

    /// The ordinals whose record passes `check`, each record held or read now.
    ///
    /// # Errors
    /// [`ReadModelError`] when the store fails, a record is malformed, or an ordinal has none.
    pub fn ordinals_where(
        self,
        store: &Store,
        check: impl Fn(&CustomerRecord) -> bool,
    ) -> Result<RoaringBitmap, ReadModelError> {
        let mut kept = RoaringBitmap::new();
        self.for_each(store, |ordinal, record, _| {
            if check(&record) {
                kept.insert(ordinal);
            }
        })?;
        Ok(kept)
    }

    /// Calls `visit` with each ordinal, its record, and whether it was read from the store (not
    /// taken from a layer), in the order asked for, reading each stored block once.
    fn for_each(
        self,
        store: &Store,
        mut visit: impl FnMut(u32, Arc<CustomerRecord>, bool),
    ) -> Result<(), ReadModelError> {
        let mut blocks: BTreeMap<u32, Option<RecordBlock>> = BTreeMap::new();
        for (ordinal, held) in self.slots {
            if let Some(record) = held {
                visit(ordinal, record, false);
                continue;
            }
            let block = match blocks.entry(ordinal / RECORD_BLOCK) {
                std::collections::btree_map::Entry::Occupied(read) => read.into_mut(),
                std::collections::btree_map::Entry::Vacant(free) => {
                    let number = *free.key();
                    free.insert(store.record_block(number)?)
                }
            };
            let record = match block {
                Some(block) => block.record(ordinal)?,
                None => None,
            };
            visit(
                ordinal,
                Arc::new(record.ok_or_else(|| missing(ordinal))?),
                true,
            );
        }
        Ok(())
    }

    /// Records already loaded, with their ordinals: a plan whose records were read to make it.
    pub fn loaded(records: Vec<(u32, Arc<CustomerRecord>)>) -> Self {
        let slots = records
            .into_iter()
            .map(|(ordinal, record)| (ordinal, Some(record)))
            .collect();
        Self { slots }
    }
}

fn missing(ordinal: u32) -> ReadModelError {
    ReadModelError::Corrupt(format!("ordinal {ordinal} is live but has no record"))
}
