//! The flusher: a thread of the writer's that writes frozen layers to the store, merges segments,
//! and commits each flush, so the projector never waits on the disk.
//!
//! A flush of layer F writes, in this order:
//! 1. record and column blocks: blocks that leave committed ordinals as they are directly,
//!    record blocks that change committed ordinals under their next generation (nothing reads it
//!    before the commit), column blocks that do into the commit;
//! 2. F's postings as a new segment, then whatever merges the policy asks for;
//! 3. one atomic commit: F's log position, the next ordinal, the segments added and removed, the
//!    stale sets F grew, the record blocks' new generations and the column blocks of step 1.
//!
//! Then it publishes (readers switch from F to the store in one step, under the index lock) and
//! deletes merged-away segments once no reader holds a segment list that names them (readers
//! read segments with the lock released). A crash before step 3 leaves the committed state as it
//! was, plus orphan blocks nothing names; the projector reapplies F's records from the committed
//! position; segments a crash left undeleted are deleted at the next open.
//!
//! A replay's flusher ([`super::FlushPolicy::replay`]) writes every block of step 1 at once: its
//! read model is read by no one until the replay ends and is thrown away if it stops, so nothing
//! needs the blocks that change committed customers to wait for the commit, and holding them
//! there (with sled's copy of the commit) was most of a rebuild's memory once the log held
//! updates. For the same reason its flushes merge nothing but the last ([`Flush::merge`]): tiers
//! merged as a replay goes rewrite every posting several times (at 1.3M events with updates,
//! more than half of the flusher's time), where one merge at the end rewrites each once.

use super::directory::ColumnEntry;
use super::memtable::Memtable;
use super::store::codec::{
    encode_column_block, encode_record, encode_record_block, CHUNK_ORDINALS,
};
use super::store::{column_block_key, Commit, Segment, Store, COLUMN_BLOCK, RECORD_BLOCK};
use super::{ReadModelError, Shared};
use parking_lot::{Condvar, Mutex};
use roaring::RoaringBitmap;
use std::collections::BTreeMap;
use std::collections::HashSet;
use std::sync::mpsc;
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

/// Segments in one tier of the merge policy: a tier spans sizes within a factor of this, and
/// this many segments of a tier are merged into one of the next.
const MERGE_FANOUT: usize = 4;
/// The smallest tier's upper size bound.
const MERGE_BASE_BYTES: u64 = 256 * 1024;
/// A segment whose stale ordinals are at least this share of the ordinals it spans is rewritten
/// alone, without them: the largest segment, which no tier of others ever merges, would
/// otherwise keep every posting of every customer changed since it was written, for good.
const REWRITE_STALE_SHARE: (u64, u64) = (1, 4);

/// How the flusher writes: the writer's [`super::FlushPolicy`], as far as it concerns flushes.
#[derive(Debug, Clone, Copy)]
pub struct FlushWay {
    /// Every block at once, none held for the commit: a replay's (see the module doc).
    pub blocks_at_once: bool,
    /// A test hook: the pause after writing a flush's blocks and segments, before its commit.
    pub pause_before_commit: Duration,
}

/// Whether a flush is under way, and how the last one ended.
#[derive(Default)]
struct FlushState {
    in_flight: bool,
    failure: Option<String>,
}

/// A frozen layer to flush, and whether its flush merges segments as the tiers ask.
pub struct Flush {
    /// The layer.
    pub frozen: Arc<Memtable>,
    /// Whether to merge after writing its segment: every flush of a serve's, and only the last
    /// of a replay's (see the module doc).
    pub merge: bool,
}

/// The writer's flusher thread and the channel that feeds it.
pub struct Flusher {
    jobs: Option<mpsc::Sender<Flush>>,
    thread: Option<JoinHandle<()>>,
    state: Arc<(Mutex<FlushState>, Condvar)>,
}

impl Flusher {
    /// Starts the thread, flushing `way`.
    pub fn start(shared: Arc<Shared>, way: FlushWay) -> Self {
        let (jobs, receiver) = mpsc::channel::<Flush>();
        let state = Arc::new((Mutex::new(FlushState::default()), Condvar::new()));
        let thread_state = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("read-model-flusher".into())
            .spawn(move || {
                let mut retired = Retired::default();
                for job in receiver {
                    let outcome = flush(&shared, &job, way).and_then(|replaced| {
                        retired.add(replaced);
                        retired.drop_unread(&shared.store)
                    });
                    let (lock, done) = &*thread_state;
                    let mut state = lock.lock();
                    state.in_flight = false;
                    if let Err(error) = outcome {
                        tracing::error!(%error, "flushing the read model failed");
                        state.failure = Some(error.to_string());
                    }
                    done.notify_all();
                }
                // What readers still held is deleted at the next open if not now.
                if let Err(error) = retired.drop_unread(&shared.store) {
                    tracing::warn!(%error, "deleting merged-away segments failed");
                }
            })
            .expect("the flusher thread starts");
        Self {
            jobs: Some(jobs),
            thread: Some(thread),
            state,
        }
    }

    /// Whether a flush is under way.
    pub fn busy(&self) -> bool {
        self.state.0.lock().in_flight
    }

    /// Hands `job` to the thread. Call only when not [`Flusher::busy`].
    pub fn submit(&self, job: Flush) {
        self.state.0.lock().in_flight = true;
        if let Some(jobs) = &self.jobs {
            // The thread only ends when this sender is dropped, in `stop`.
            let _ = jobs.send(job);
        }
    }

    /// Waits until no flush is under way.
    ///
    /// # Errors
    /// [`ReadModelError::Flush`] when a flush failed.
    pub fn wait(&self) -> Result<(), ReadModelError> {
        let (lock, done) = &*self.state;
        let mut state = lock.lock();
        while state.in_flight {
            done.wait(&mut state);
        }
        self.failure_in(&state)
    }

    /// How the last flush ended.
    ///
    /// # Errors
    /// [`ReadModelError::Flush`] when one failed: the read model cannot take more.
    pub fn check(&self) -> Result<(), ReadModelError> {
        self.failure_in(&self.state.0.lock())
    }

    fn failure_in(&self, state: &FlushState) -> Result<(), ReadModelError> {
        match &state.failure {
            Some(failure) => Err(ReadModelError::Flush(failure.clone())),
            None => Ok(()),
        }
    }

    /// Waits for the flush under way and ends the thread.
    pub fn stop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Segments merged away whose blocks are not deleted yet, and the segment lists flushes replaced
/// that readers may still hold.
#[derive(Default)]
struct Retired {
    lists: Vec<Weak<Vec<Segment>>>,
    segments: Vec<u64>,
}

impl Retired {
    /// Notes what a flush replaced: the index's former segment list, and the segments it merged
    /// away.
    fn add(&mut self, (list, merged): (Arc<Vec<Segment>>, Vec<u64>)) {
        self.lists.push(Arc::downgrade(&list));
        self.segments.extend(merged);
    }

    /// Deletes the blocks of retired segments no reader can still be reading: a reader holds a
    /// list only from taking it under the index lock to the end of its find, and no reader can
    /// take a replaced list, so one that no reader holds stays so.
    fn drop_unread(&mut self, store: &Store) -> Result<(), ReadModelError> {
        self.lists.retain(|list| list.strong_count() > 0);
        let read: HashSet<u64> = self
            .lists
            .iter()
            .filter_map(Weak::upgrade)
            .flat_map(|list| {
                list.iter()
                    .map(|segment| segment.meta.id)
                    .collect::<Vec<_>>()
            })
            .collect();
        let (still_read, unread): (Vec<u64>, Vec<u64>) =
            self.segments.iter().partition(|id| read.contains(id));
        if !unread.is_empty() {
            let _still = store.hold_still();
            store.drop_segments(&unread)?;
        }
        self.segments = still_read;
        Ok(())
    }
}

/// Writes `job`'s layer to the store and commits it; see the module doc. Returns the segment
/// list it replaced, and the segments it merged away (to delete once no reader holds a list
/// naming them).
fn flush(
    shared: &Shared,
    job: &Flush,
    way: FlushWay,
) -> Result<(Arc<Vec<Segment>>, Vec<u64>), ReadModelError> {
    let frozen = job.frozen.as_ref();
    let pause_before_commit = way.pause_before_commit;
    let started = std::time::Instant::now();
    fail::fail_point!("read-model-flush", |_| Err(ReadModelError::Flush(
        "injected failure before the first block".into()
    )));
    let store = &shared.store;
    // From the first block written to the last segment dropped: a snapshot sees none of it.
    let _still = store.hold_still();
    // The blocks and the index are written side by side: neither reads what the other writes.
    let (blocks, index) = std::thread::scope(|scope| {
        let blocks = scope.spawn(|| {
            // Blocks that change committed customers wait for the commit (a replay's do not,
            // see the module doc): record blocks as new generations, column blocks in it.
            let generations = write_records(store, frozen, !way.blocks_at_once)?;
            let mut with_commit = (!way.blocks_at_once).then(Vec::new);
            write_column(store, frozen, with_commit.as_mut())?;
            Ok::<_, ReadModelError>((generations, with_commit.unwrap_or_default()))
        });
        let index = write_index(shared, frozen, job.merge);
        let blocks = blocks.join().expect("writing blocks does not panic");
        (blocks, index)
    });
    let (segments, mut commit) = index?;
    (commit.record_generations, commit.blocks) = blocks?;
    commit.next_offsets = frozen.next_offsets().clone();
    commit.next_ordinal = frozen.next_ordinal();
    if !pause_before_commit.is_zero() {
        tracing::warn!(
            ?pause_before_commit,
            "flush written, pausing before its commit (a fault-injection hook for tests)"
        );
        std::thread::sleep(pause_before_commit);
    }
    fail::fail_point!("read-model-flush-commit", |_| Err(ReadModelError::Flush(
        "injected failure before the commit".into()
    )));
    let committing = std::time::Instant::now();
    store.commit(&commit)?;
    tracing::debug!(
        changes = frozen.changes(),
        segments = segments.len(),
        merged = commit.removed.len(),
        new_generations = commit.record_generations.len(),
        commit_blocks = commit.blocks.len(),
        commit_ms = committing.elapsed().as_millis() as u64,
        ms = started.elapsed().as_millis() as u64,
        "read model flushed"
    );
    let replaced = {
        let mut index = shared.index.write();
        index.frozen = None;
        index.committed_offsets = frozen.next_offsets().clone();
        std::mem::replace(&mut index.segments, Arc::new(segments))
    };
    let removed: Vec<u64> = commit
        .removed
        .iter()
        .map(|segment| segment.meta.id)
        .collect();
    Ok((replaced, removed))
}

/// Writes `frozen`'s postings as a segment and, when `merge`, merges what the policy asks for;
/// returns the index as it will be, and a commit of the segments added and removed and the stale
/// sets grown.
fn write_index(
    shared: &Shared,
    frozen: &Memtable,
    merge: bool,
) -> Result<(Vec<Segment>, Commit), ReadModelError> {
    let store = &shared.store;
    let mut commit = Commit::default();
    let mut ids = store.segment_ids()?;
    let mut segments: Vec<Segment> = shared.index.read().segments.as_ref().clone();
    for segment in &mut segments {
        let (low, high) = segment.meta.ordinals;
        let mut voided = frozen.superseded().clone();
        voided.remove_range(..low);
        voided.remove_range(high.saturating_add(1)..);
        let added = &voided - &segment.stale;
        if !added.is_empty() {
            segment.stale |= voided;
            commit
                .stale
                .push((segment.meta.id, chunks_of(&segment.stale, &added)));
        }
    }
    let mut writer = store.segment_writer(ids.take());
    frozen.for_each_posting(&mut |term, ordinals| writer.push(term, ordinals))?;
    if let Some(meta) = writer.finish()? {
        commit.added.push(meta.clone());
        segments.push(Segment {
            meta,
            stale: Default::default(),
        });
    }
    while let Some(group) = merge.then(|| merge_group(&segments)).flatten() {
        let (inputs, kept): (Vec<Segment>, Vec<Segment>) = segments
            .into_iter()
            .partition(|segment| group.contains(&segment.meta.id));
        segments = kept;
        if let Some(meta) = store.merge_segments(ids.take(), &inputs)? {
            commit.added.push(meta.clone());
            segments.push(Segment {
                meta,
                stale: Default::default(),
            });
        }
        commit.stale.retain(|(id, _)| !group.contains(id));
        commit.added.retain(|added| !group.contains(&added.id));
        // Segments written by this very flush are in no manifest yet: removing them only marks
        // their blocks for deletion.
        commit.removed.extend(inputs);
    }
    commit.next_segment = ids.next();
    Ok((segments, commit))
}

/// The ordinals of `stale` in the chunks (of [`CHUNK_ORDINALS`]) that `added` touches: a stale
/// set is stored a chunk a key, so a flush writes those chunks again, whole, and leaves the rest
/// (it used to write the segment's whole stale set each time).
fn chunks_of(stale: &RoaringBitmap, added: &RoaringBitmap) -> RoaringBitmap {
    let mut chunks: Vec<u32> = added
        .iter()
        .map(|ordinal| ordinal / CHUNK_ORDINALS)
        .collect();
    chunks.dedup();
    let mut touched = RoaringBitmap::new();
    for chunk in chunks {
        let start = chunk * CHUNK_ORDINALS;
        let end = start.saturating_add(CHUNK_ORDINALS - 1);
        touched.extend(stale.range(start..=end));
    }
    touched
}

/// Rewrites every record block `frozen` changes; one that changes committed ordinals under its
/// next generation when `anew`. Returns the generations written (block → generation).
fn write_records(
    store: &Store,
    frozen: &Memtable,
    anew: bool,
) -> Result<Vec<(u32, u32)>, ReadModelError> {
    let changes = frozen.records().iter().map(|(ordinal, record)| {
        let mut bytes = Vec::with_capacity(256);
        encode_record(record, &mut bytes);
        (*ordinal, Some(bytes))
    });
    let stored = |block| -> Result<Vec<Option<Vec<u8>>>, ReadModelError> {
        Ok(match store.record_block(block)? {
            Some(stored) => stored
                .slots()?
                .into_iter()
                .map(|slot| slot.map(<[u8]>::to_vec))
                .collect(),
            None => Vec::new(),
        })
    };
    let blocks = Blocks {
        len: RECORD_BLOCK,
        encode: |slots: &[Option<Vec<u8>>]| encode_record_block(slots),
    };
    let mut generations = Vec::new();
    blocks.rewrite(
        frozen.first_ordinal(),
        changes,
        stored,
        |block, changes_committed, value| {
            if anew && changes_committed {
                generations.push((block, store.write_record_block_anew(block, value)?));
                Ok(())
            } else {
                store.write_record_block(block, value)
            }
        },
    )?;
    Ok(generations)
}

/// Rewrites every column block `frozen` changes.
fn write_column(
    store: &Store,
    frozen: &Memtable,
    mut committed_blocks: Option<&mut Vec<(Vec<u8>, Vec<u8>)>>,
) -> Result<(), ReadModelError> {
    let changes = frozen
        .column()
        .iter()
        .map(|(ordinal, entry)| (*ordinal, Some(*entry)));
    let blocks = Blocks {
        len: COLUMN_BLOCK,
        encode: |slots: &[Option<ColumnEntry>]| store.pack(encode_column_block(slots)),
    };
    blocks.rewrite(
        frozen.first_ordinal(),
        changes,
        |block| store.column_block(block),
        |block, changes_committed, value| {
            let key = column_block_key(block);
            match committed_blocks.as_deref_mut() {
                Some(with_commit) if changes_committed => {
                    with_commit.push((key, value));
                    Ok(())
                }
                _ => store.write_block(&key, value),
            }
        },
    )
}

/// Blocks of `len` slots, one per ordinal, encoded by `encode(slots)`.
struct Blocks<E> {
    len: u32,
    encode: E,
}

impl<E> Blocks<E> {
    /// Rewrites each block `changes` (ordinal → new slot) touch: its stored slots below
    /// `committed` (past it, a crashed flush's orphans), then the changes; hands each to
    /// `place` with whether it changes a committed ordinal.
    fn rewrite<T: Clone>(
        &self,
        committed: u32,
        changes: impl Iterator<Item = (u32, Option<T>)>,
        stored: impl Fn(u32) -> Result<Vec<Option<T>>, ReadModelError>,
        mut place: impl FnMut(u32, bool, Vec<u8>) -> Result<(), ReadModelError>,
    ) -> Result<(), ReadModelError>
    where
        E: Fn(&[Option<T>]) -> Vec<u8>,
    {
        let mut by_block: BTreeMap<u32, Vec<(u32, Option<T>)>> = BTreeMap::new();
        for (ordinal, slot) in changes {
            by_block
                .entry(ordinal / self.len)
                .or_default()
                .push((ordinal, slot));
        }
        for (block, changes) in by_block {
            let first = block * self.len;
            let mut slots: Vec<Option<T>> = vec![None; self.len as usize];
            if first < committed {
                for (at, slot) in stored(block)?
                    .into_iter()
                    .take(self.len as usize)
                    .enumerate()
                {
                    if first + (at as u32) < committed {
                        slots[at] = slot;
                    }
                }
            }
            let mut changes_committed = false;
            for (ordinal, slot) in changes {
                changes_committed |= ordinal < committed;
                slots[(ordinal - first) as usize] = slot;
            }
            while slots.last().is_some_and(Option::is_none) {
                slots.pop();
            }
            place(block, changes_committed, (self.encode)(&slots))?;
        }
        Ok(())
    }
}

/// The segments to merge next: every segment of the smallest tier that holds
/// [`MERGE_FANOUT`] or more, where a segment's tier is how many times its size is
/// [`MERGE_FANOUT`] times [`MERGE_BASE_BYTES`]; else one segment that is mostly stale (see
/// [`REWRITE_STALE_SHARE`]), rewritten alone.
fn merge_group(segments: &[Segment]) -> Option<Vec<u64>> {
    tier_group(segments).or_else(|| {
        let (part, whole) = REWRITE_STALE_SHARE;
        segments
            .iter()
            .find(|segment| {
                let (low, high) = segment.meta.ordinals;
                let spanned = u64::from(high - low) + 1;
                segment.stale.len() * whole >= spanned * part && !segment.stale.is_empty()
            })
            .map(|segment| vec![segment.meta.id])
    })
}

/// [`merge_group`]'s tiers.
fn tier_group(segments: &[Segment]) -> Option<Vec<u64>> {
    let tier = |bytes: u64| {
        let mut tier = 0;
        let mut bound = MERGE_BASE_BYTES;
        while bytes > bound {
            bound = bound.saturating_mul(MERGE_FANOUT as u64);
            tier += 1;
        }
        tier
    };
    let mut tiers: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for segment in segments {
        tiers
            .entry(tier(segment.meta.bytes))
            .or_default()
            .push(segment.meta.id);
    }
    tiers.into_values().find(|ids| ids.len() >= MERGE_FANOUT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read_model::store::SegmentMeta;

    fn segment(id: u64, bytes: u64) -> Segment {
        Segment {
            meta: SegmentMeta {
                id,
                ordinals: (0, 0),
                bytes,
            },
            stale: Default::default(),
        }
    }

    #[test]
    fn a_segment_mostly_stale_is_rewritten_alone() {
        let mut largest = segment(1, 100_000_000);
        largest.meta.ordinals = (0, 999);
        largest.stale = (0..249).collect();
        let small = segment(2, 100_000);
        assert_eq!(merge_group(&[largest.clone(), small.clone()]), None);
        largest.stale.insert(500);
        assert_eq!(merge_group(&[largest, small]), Some(vec![1]));
    }

    #[test]
    fn a_flush_writes_again_only_the_stale_chunks_it_touches() {
        let far = 5 * CHUNK_ORDINALS;
        let stale: RoaringBitmap = [1, 2, CHUNK_ORDINALS + 7, far, far + 9]
            .into_iter()
            .collect();
        let added: RoaringBitmap = [far + 9].into_iter().collect();
        assert_eq!(
            chunks_of(&stale, &added).iter().collect::<Vec<_>>(),
            vec![far, far + 9]
        );
    }

    #[test]
    fn the_smallest_full_tier_merges_first() {
        let small = |id| segment(id, 100_000);
        let large = |id| segment(id, 10_000_000);
        assert_eq!(merge_group(&[small(1), small(2), small(3)]), None);
        assert_eq!(
            merge_group(&[
                large(1),
                small(2),
                large(3),
                small(4),
                small(5),
                large(6),
                large(7),
                small(8)
            ]),
            Some(vec![2, 4, 5, 8])
        );
        assert_eq!(
            merge_group(&[large(1), large(3), large(6), large(7)]),
            Some(vec![1, 3, 6, 7])
        );
    }
}
