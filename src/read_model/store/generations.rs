//! Generations of record blocks: a serve's flush writes a block that changes committed customers
//! under a new key (its next generation) before the commit, and the commit only records which
//! generation is current. sled's `apply_batch` holds a lock every read of every tree waits on,
//! so a commit that carried the rewritten blocks themselves (~20,000 blocks, ~48 MB after ten
//! seconds of updates at 1M customers) stalled every get and find for ~340 ms
//! (docs/performance.md, issue 22).
//!
//! Stored in the `state` tree: `r ++ block` is generation 0 (the only one a replay writes, and
//! every block of format 4), `r ++ block ++ generation` a later one; `g ++ chunk` holds the
//! current generation of [`CHUNK_BLOCKS`] blocks, as big-endian u32s, committed with the flush.

use super::codec::Malformed;
use super::{be_key, read_u32, RECORD_PREFIX};
use parking_lot::RwLock;
use std::collections::BTreeMap;

const GENERATION_PREFIX: u8 = b'g';
/// Blocks whose generations one `g` entry holds.
const CHUNK_BLOCKS: u32 = 1024;

/// The key of record block `block` at `generation`.
pub fn record_block_key_at(block: u32, generation: u32) -> Vec<u8> {
    let mut key = be_key(RECORD_PREFIX, &block.to_be_bytes());
    if generation > 0 {
        key.extend_from_slice(&generation.to_be_bytes());
    }
    key
}

/// The current generation of every record block, as committed.
#[derive(Default)]
pub struct Generations {
    /// By block; blocks past its end are at generation 0.
    current: RwLock<Vec<u32>>,
}

impl Generations {
    /// The generations `state` records.
    ///
    /// # Errors
    /// [`Malformed`] (as a sled error's neighbour) when an entry is not a chunk of u32s.
    pub fn load(state: &sled::Tree) -> Result<Self, super::ReadModelError> {
        let mut current = Vec::new();
        for entry in state.scan_prefix([GENERATION_PREFIX]) {
            let (key, value) = entry?;
            let chunk = read_u32(&key[1..])?;
            if value.len() % 4 != 0 {
                return Err(Malformed("a generation chunk is not a list of u32s").into());
            }
            let first = (chunk * CHUNK_BLOCKS) as usize;
            current.resize(first, 0);
            current.extend(value.chunks_exact(4).map(|word| {
                u32::from_be_bytes(word.try_into().expect("chunks_exact gives 4 bytes"))
            }));
        }
        Ok(Self {
            current: RwLock::new(current),
        })
    }

    /// Block `block`'s current generation.
    pub fn of(&self, block: u32) -> u32 {
        self.current
            .read()
            .get(block as usize)
            .copied()
            .unwrap_or(0)
    }

    /// The `g` entries that record `changed` (block → its new generation) on top of the current
    /// generations: each chunk they touch, whole.
    pub fn chunks_with(&self, changed: &[(u32, u32)]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let current = self.current.read();
        let mut chunks: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for &(block, generation) in changed {
            let chunk = block / CHUNK_BLOCKS;
            let words = chunks.entry(chunk).or_insert_with(|| {
                let first = (chunk * CHUNK_BLOCKS) as usize;
                let end = (first + CHUNK_BLOCKS as usize).min(current.len().max(first));
                current.get(first..end).unwrap_or_default().to_vec()
            });
            let at = (block % CHUNK_BLOCKS) as usize;
            if words.len() <= at {
                words.resize(at + 1, 0);
            }
            words[at] = generation;
        }
        chunks
            .into_iter()
            .map(|(chunk, words)| {
                let value = words.iter().flat_map(|word| word.to_be_bytes()).collect();
                (be_key(GENERATION_PREFIX, &chunk.to_be_bytes()), value)
            })
            .collect()
    }

    /// Makes `changed` current (once committed).
    pub fn advance(&self, changed: &[(u32, u32)]) {
        let mut current = self.current.write();
        for &(block, generation) in changed {
            let at = block as usize;
            if current.len() <= at {
                current.resize(at + 1, 0);
            }
            current[at] = generation;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_zero_is_the_plain_block_key_and_later_ones_extend_it() {
        assert_eq!(record_block_key_at(7, 0), vec![b'r', 0, 0, 0, 7]);
        assert_eq!(
            record_block_key_at(7, 2),
            vec![b'r', 0, 0, 0, 7, 0, 0, 0, 2]
        );
    }

    #[test]
    fn committed_chunks_read_back_and_untouched_blocks_keep_their_generation() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let state = db.open_tree("state").unwrap();
        let generations = Generations::load(&state).unwrap();
        let first = [(3, 1), (CHUNK_BLOCKS + 5, 1)];
        for (key, value) in generations.chunks_with(&first) {
            state.insert(key, value).unwrap();
        }
        generations.advance(&first);
        let second = [(3, 2), (4, 1)];
        for (key, value) in generations.chunks_with(&second) {
            state.insert(key, value).unwrap();
        }
        generations.advance(&second);
        let reloaded = Generations::load(&state).unwrap();
        for generations in [&generations, &reloaded] {
            assert_eq!(generations.of(3), 2);
            assert_eq!(generations.of(4), 1);
            assert_eq!(generations.of(CHUNK_BLOCKS + 5), 1);
            assert_eq!(generations.of(0), 0);
            assert_eq!(generations.of(10 * CHUNK_BLOCKS), 0);
        }
    }
}
