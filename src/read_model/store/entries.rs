//! The store as a stream of entries, and a store filled from one: what a snapshot carries. Only
//! this module and its parent know sled's trees; a snapshot names a tree by its index in
//! [`TREES`].

use super::Store;
use crate::read_model::ReadModelError;
use std::path::Path;

/// The trees a snapshot carries, in the order it carries them.
pub const TREES: [&str; 4] = ["state", "segments", "rejected_events", "meta"];

/// One stored entry: its tree (an index into [`TREES`]), key and value.
pub type Entry = (u8, sled::IVec, sled::IVec);

impl Store {
    /// Every entry of every tree, tree by tree, in key order. Consistent only while nothing
    /// writes the store: hold it still ([`Store::hold_still`]) meanwhile.
    pub fn entries(&self) -> impl Iterator<Item = Result<Entry, ReadModelError>> + '_ {
        let trees = [&self.state, &self.segments, &self.rejected, &self.meta];
        trees.into_iter().zip(0u8..).flat_map(|(tree, index)| {
            tree.iter().map(move |entry| {
                entry
                    .map(|(key, value)| (index, key, value))
                    .map_err(Into::into)
            })
        })
    }
}

/// A store being filled from a snapshot, in a directory of its own.
pub struct StoreImport {
    db: sled::Db,
    trees: Vec<sled::Tree>,
    batches: Vec<sled::Batch>,
    pending: usize,
}

/// Entries written to sled at once while importing.
const IMPORT_BATCH: usize = 4_096;

impl StoreImport {
    /// An empty store in `dir`, which must not exist yet.
    ///
    /// # Errors
    /// [`ReadModelError::Storage`] when sled cannot create it.
    pub fn create(dir: &Path) -> Result<Self, ReadModelError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(super::CACHE_BYTES)
            .open()?;
        let trees = TREES
            .iter()
            .map(|name| db.open_tree(name))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            db,
            trees,
            batches: TREES.iter().map(|_| sled::Batch::default()).collect(),
            pending: 0,
        })
    }

    /// Adds one entry.
    ///
    /// # Errors
    /// [`ReadModelError::Corrupt`] for a tree index past [`TREES`], [`ReadModelError::Storage`]
    /// when sled fails.
    pub fn insert(&mut self, tree: u8, key: &[u8], value: &[u8]) -> Result<(), ReadModelError> {
        let batch = self
            .batches
            .get_mut(usize::from(tree))
            .ok_or_else(|| ReadModelError::Corrupt(format!("no tree has index {tree}")))?;
        batch.insert(key, value);
        self.pending += 1;
        if self.pending >= IMPORT_BATCH {
            self.write_batches()?;
        }
        Ok(())
    }

    fn write_batches(&mut self) -> Result<(), ReadModelError> {
        for (tree, batch) in self.trees.iter().zip(self.batches.iter_mut()) {
            tree.apply_batch(std::mem::take(batch))?;
        }
        self.pending = 0;
        Ok(())
    }

    /// Writes what is pending and makes the store durable.
    ///
    /// # Errors
    /// [`ReadModelError::Storage`] when sled fails.
    pub fn finish(mut self) -> Result<(), ReadModelError> {
        self.write_batches()?;
        self.db.flush()?;
        Ok(())
    }
}
