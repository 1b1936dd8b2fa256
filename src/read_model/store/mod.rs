//! The store: the read model on disk, in sled. The only module that knows sled, its trees and the
//! layout of their keys; everything above it works on ordinals, records and postings.
//!
//! Trees (layout drawn in docs/performance.md):
//! - `state`: everything a flush commits, in one atomic `apply_batch` where it changes what is
//!   already committed:
//!   - `r` ++ block (u32) [++ generation (u32)] → a block of [`RECORD_BLOCK`] customer records,
//!     by ordinal; `g` ++ chunk (u32) → which generation of each block is current (see
//!     `generations.rs`: a block that changes committed customers is written under its next
//!     generation before the commit, not in it);
//!   - `c` ++ block (u32) → a block of [`COLUMN_BLOCK`] column entries (each ordinal's order key,
//!     or that its customer was removed);
//!   - `o` ++ partition (i32) → the next offset to apply; `n` → the next ordinal; `i` → the next
//!     segment id;
//!   - `m` ++ segment id (u64) → a segment of the index (its ordinal range and size);
//!   - `x` ++ segment id ++ chunk (u32) → ordinals the segment still names but no longer holds
//!     (their customers were replaced or removed after it was written);
//!   - `z` ++ segment id → a segment merged away, whose blocks are still to be deleted;
//!   - `f` ++ segment id → the segment's prefix filter (`filter.rs`), written and deleted with
//!     its blocks.
//! - `segments`: segment id (u64) ++ the last entry key of a block → a block of index entries:
//!   term key ++ chunk (u32) → the ordinals of that chunk under that term.
//! - `rejected_events`: partition (i32) ++ offset (i64) → a rejected record, as JSON.
//! - `meta`: `topic`, `cluster` (the log this read model projects) and `format`.
//!
//! Keys of blocks that are new (ordinals past the committed ones, segments not yet in the
//! manifest) are written before the commit; nothing reads them until it lands, and a crash leaves
//! them as orphans that the next flush overwrites or [`Store::open`] deletes.

pub mod codec;
mod entries;
mod filter;
mod generations;
mod segment;
mod unions;

pub use entries::{StoreImport, TREES};

use filter::Filters;
use generations::{record_block_key_at, Generations};
use segment::PostingCache;
use unions::RangeUnions;

use super::directory::ColumnEntry;
use super::record::CustomerRecord;
use super::rejected::RejectedEvent;
use super::ReadModelError;
use codec::{for_each_chunk, Malformed};
use roaring::RoaringBitmap;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The layout of the stored trees and values. Format 3: records, order keys and the index as
/// blocks and posting lists. Format 4, the same layout, is projected by a build that reads
/// `code` (contract v1.3): a format 3 read model may hold creates with a code projected by an
/// older build that dropped it, so it is rebuilt rather than trusted. Format 5 adds generations
/// of record blocks (`generations.rs`): a format 4 read model is one whose blocks are all at
/// generation 0, and is taken as format 5 (see [`READABLE_FORMATS`]); a build of format 4 must
/// not open a format 5 one (it would read superseded blocks). Format 6 packs index and column
/// blocks (`codec/packing.rs`); a format 5 read model is read and written unpacked, and stays
/// format 5, so that the build before can still open it. `serve` refuses a read model of any
/// other format; `rebuild` makes one of format 6.
pub const FORMAT: &str = "6";

/// The format of read models whose blocks are not packed: read and written so.
pub const UNPACKED_FORMAT: &str = "5";

/// The formats this build reads: [`FORMAT`], [`UNPACKED_FORMAT`], and format 4, which it reads
/// as [`UNPACKED_FORMAT`] and marks so.
pub const READABLE_FORMATS: [&str; 3] = [FORMAT, UNPACKED_FORMAT, "4"];

/// Customer records per record block.
pub const RECORD_BLOCK: u32 = 16;
/// Column entries per column block.
pub const COLUMN_BLOCK: u32 = 128;
/// sled's page cache. Its nodes are few and large in this layout; a smaller cache bounds the
/// memory the service needs (docs/performance.md).
const CACHE_BYTES: u64 = 256 * 1024 * 1024;
/// sled's page cache for a replay, which writes far more than it reads back: at 1M customers,
/// 32 MiB took ~150 MiB off a rebuild's peak RSS against 256 MiB (docs/performance.md, issue 22).
const REPLAY_CACHE_BYTES: u64 = 32 * 1024 * 1024;

pub(super) const RECORD_PREFIX: u8 = b'r';
const COLUMN_PREFIX: u8 = b'c';
const OFFSET_PREFIX: u8 = b'o';
const NEXT_ORDINAL_KEY: &[u8] = b"n";
const NEXT_SEGMENT_KEY: &[u8] = b"i";
const SEGMENT_PREFIX: u8 = b'm';
const STALE_PREFIX: u8 = b'x';
const GARBAGE_PREFIX: u8 = b'z';

/// sled failed. Opaque: nothing above the store names sled.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct StorageError(#[from] sled::Error);

impl From<sled::Error> for ReadModelError {
    fn from(error: sled::Error) -> Self {
        ReadModelError::Storage(StorageError(error))
    }
}

impl From<Malformed> for ReadModelError {
    fn from(error: Malformed) -> Self {
        ReadModelError::Corrupt(error.to_string())
    }
}

/// A segment of the index: an immutable run of postings, written by one flush or merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentMeta {
    /// Its id; ids are never reused.
    pub id: u64,
    /// The smallest and largest ordinal it names.
    pub ordinals: (u32, u32),
    /// Bytes of its blocks, for the merge policy.
    pub bytes: u64,
}

impl SegmentMeta {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        out.extend_from_slice(&self.ordinals.0.to_be_bytes());
        out.extend_from_slice(&self.ordinals.1.to_be_bytes());
        out.extend_from_slice(&self.bytes.to_be_bytes());
        out
    }

    fn decode(id: u64, bytes: &[u8]) -> Result<Self, Malformed> {
        let bytes: [u8; 16] = bytes
            .try_into()
            .map_err(|_| Malformed("a segment entry is not 16 bytes"))?;
        let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        Ok(Self {
            id,
            ordinals: (word(0), word(4)),
            bytes: u64::from_be_bytes(bytes[8..].try_into().expect("8 bytes")),
        })
    }
}

/// A segment with the ordinals it no longer holds.
#[derive(Debug, Clone)]
pub struct Segment {
    /// What it is.
    pub meta: SegmentMeta,
    /// Ordinals whose postings in it are void.
    pub stale: RoaringBitmap,
}

/// What was committed last: where a reopened read model starts.
pub struct Committed {
    /// The next offset of each partition.
    pub next_offsets: BTreeMap<i32, i64>,
    /// Every ordinal below this one was assigned.
    pub next_ordinal: u32,
    /// The index.
    pub segments: Vec<Segment>,
    /// Each assigned ordinal's column entry (`None` where a crash left a hole, which cannot
    /// happen below `next_ordinal`, but is not trusted).
    pub column: Vec<Option<ColumnEntry>>,
}

/// Everything one flush commits.
#[derive(Default)]
pub struct Commit {
    /// The log position the committed state reaches.
    pub next_offsets: BTreeMap<i32, i64>,
    /// Ordinals assigned so far.
    pub next_ordinal: u32,
    /// Segments written and joining the index.
    pub added: Vec<SegmentMeta>,
    /// Segments leaving the index (merged away), with their stale sets.
    pub removed: Vec<Segment>,
    /// Segments staying in the index whose stale sets grew: their new sets.
    pub stale: Vec<(u64, RoaringBitmap)>,
    /// Column blocks that change committed ordinals: written with the commit.
    pub blocks: Vec<(Vec<u8>, Vec<u8>)>,
    /// Record blocks written under a new generation ([`Store::write_record_block_anew`]):
    /// block → that generation, made current by the commit.
    pub record_generations: Vec<(u32, u32)>,
    /// The id after the last segment id handed out.
    pub next_segment: u64,
}

/// The read model's sled database.
#[derive(Clone)]
pub struct Store {
    /// Held by each flush from its first write to its last, and by a snapshot while it reads
    /// the store: a snapshot sees one commit's state, never half a flush.
    still: Arc<parking_lot::Mutex<()>>,
    postings_cache: Arc<PostingCache>,
    unions: Arc<RangeUnions>,
    generations: Arc<Generations>,
    filters: Arc<Filters>,
    db: sled::Db,
    /// The directory sled keeps its files in.
    dir: PathBuf,
    state: sled::Tree,
    segments: sled::Tree,
    rejected: sled::Tree,
    meta: sled::Tree,
    /// Whether index and column blocks are packed (format 6 on).
    packs_blocks: bool,
}

pub(super) fn be_key(prefix: u8, number: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + number.len());
    key.push(prefix);
    key.extend_from_slice(number);
    key
}

/// The key of column block `block`.
pub fn column_block_key(block: u32) -> Vec<u8> {
    be_key(COLUMN_PREFIX, &block.to_be_bytes())
}

fn stale_key(segment: u64, chunk: u32) -> Vec<u8> {
    let mut key = be_key(STALE_PREFIX, &segment.to_be_bytes());
    key.extend_from_slice(&chunk.to_be_bytes());
    key
}

pub(super) fn read_u32(bytes: &[u8]) -> Result<u32, Malformed> {
    bytes
        .try_into()
        .map(u32::from_be_bytes)
        .map_err(|_| Malformed("a number is not 4 bytes"))
}

fn read_u64(bytes: &[u8]) -> Result<u64, Malformed> {
    bytes
        .try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| Malformed("a number is not 8 bytes"))
}

/// How long opening waits for a lock held by a handle that is going away.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(1);

impl Store {
    /// Opens (or creates) the store in `dir`, deleting what a crashed flush or merge left.
    ///
    /// # Errors
    /// [`ReadModelError::Locked`] when another process holds it, [`ReadModelError::Storage`]
    /// when sled fails.
    pub fn open(dir: &Path) -> Result<Self, ReadModelError> {
        Self::open_with_cache(dir, CACHE_BYTES)
    }

    /// [`Store::open`] for a replay: a smaller cache.
    ///
    /// # Errors
    /// As [`Store::open`].
    pub fn open_for_replay(dir: &Path) -> Result<Self, ReadModelError> {
        Self::open_with_cache(dir, REPLAY_CACHE_BYTES)
    }

    fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<Self, ReadModelError> {
        // sled lets go of its lock from a thread of its own once the last handle is dropped: a
        // store this process closed a moment ago (a restore, just before the serve opens it)
        // can still be locked for a few milliseconds.
        let patience = std::time::Instant::now() + LOCK_PATIENCE;
        let db = loop {
            let opened = sled::Config::new()
                .path(dir)
                .cache_capacity(cache_bytes)
                .open()
                .map_err(|error| match error {
                    // sled reports a held lock only in its message ("could not acquire lock").
                    sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
                        ReadModelError::Locked(dir.display().to_string())
                    }
                    other => other.into(),
                });
            match opened {
                Err(ReadModelError::Locked(_)) if std::time::Instant::now() < patience => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                opened => break opened?,
            }
        };
        let state = db.open_tree("state")?;
        let mut store = Self {
            still: Arc::default(),
            postings_cache: Arc::default(),
            unions: Arc::default(),
            generations: Arc::new(Generations::load(&state)?),
            filters: Arc::default(),
            state,
            segments: db.open_tree("segments")?,
            rejected: db.open_tree("rejected_events")?,
            meta: db.open_tree("meta")?,
            db,
            dir: dir.to_path_buf(),
            packs_blocks: false,
        };
        if store.meta.get("format")?.is_none() && store.is_fresh()? {
            store.meta.insert("format", FORMAT)?;
        }
        store.packs_blocks = store.format()? == FORMAT;
        store.collect_garbage()?;
        Ok(store)
    }

    /// Whether nothing was ever written here, by this build or an older one.
    fn is_fresh(&self) -> Result<bool, ReadModelError> {
        if !self.state.is_empty() || !self.meta.is_empty() {
            return Ok(false);
        }
        // Builds before format 3 kept customers in a tree of that name.
        Ok(
            !self.db.tree_names().iter().any(|name| name == b"customers")
                || self.db.open_tree("customers")?.is_empty(),
        )
    }

    /// The format the stored layout is in (`1` when unrecorded: builds before formats were).
    ///
    /// # Errors
    /// [`ReadModelError::Storage`] when sled fails.
    pub fn format(&self) -> Result<String, ReadModelError> {
        Ok(self.meta.get("format")?.map_or_else(
            || "1".to_owned(),
            |format| String::from_utf8_lossy(&format).into_owned(),
        ))
    }

    /// A setting recorded in `meta` (`topic`, `cluster`).
    ///
    /// # Errors
    /// [`ReadModelError::Storage`] when sled fails.
    pub fn setting(&self, name: &str) -> Result<Option<String>, ReadModelError> {
        Ok(self
            .meta
            .get(name)?
            .map(|value| String::from_utf8_lossy(&value).into_owned()))
    }

    /// Records a setting in `meta`.
    ///
    /// # Errors
    /// [`ReadModelError::Storage`] when sled fails.
    pub fn record_setting(&self, name: &str, value: &str) -> Result<(), ReadModelError> {
        self.meta.insert(name, value.as_bytes())?;
        Ok(())
    }

    /// Deletes segments the manifest no longer (or never did) name: merged away, or written by
    /// a flush that crashed before its commit.
    fn collect_garbage(&self) -> Result<(), ReadModelError> {
        let next_segment = self.next_segment_id()?;
        let orphans: Vec<sled::IVec> = self
            .segments
            .range(next_segment.to_be_bytes()..)
            .keys()
            .collect::<Result<_, _>>()?;
        for key in orphans {
            self.segments.remove(key)?;
        }
        self.delete_filters_from(next_segment)?;
        let garbage: Vec<(sled::IVec, u64)> = self
            .state
            .scan_prefix([GARBAGE_PREFIX])
            .keys()
            .map(|key| {
                let key = key?;
                let id = read_u64(&key[1..])?;
                Ok::<_, ReadModelError>((key, id))
            })
            .collect::<Result<_, _>>()?;
        for (key, id) in garbage {
            self.delete_segment_blocks(id)?;
            self.state.remove(key)?;
        }
        Ok(())
    }

    fn next_segment_id(&self) -> Result<u64, ReadModelError> {
        Ok(self
            .state
            .get(NEXT_SEGMENT_KEY)?
            .map(|bytes| read_u64(&bytes))
            .transpose()?
            .unwrap_or(0))
    }

    /// Keeps flushes from writing the store while the guard lives (a flush waits for it, and a
    /// snapshot waits for a flush under way).
    pub fn hold_still(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.still.lock()
    }

    /// Bytes the store's files take on disk, its directory walked. (sled's own count fails
    /// while its blob directory is missing, and a metrics scrape then showed 0.) A file sled
    /// removes during the walk counts as nothing.
    ///
    /// # Errors
    /// [`ReadModelError::Storage`] when the directory cannot be read.
    pub fn size_on_disk(&self) -> Result<u64, ReadModelError> {
        fn bytes_under(dir: &Path) -> std::io::Result<u64> {
            let mut total = 0;
            for entry in std::fs::read_dir(dir)? {
                let Ok(entry) = entry else { continue };
                match entry.metadata() {
                    Ok(meta) if meta.is_dir() => total += bytes_under(&entry.path()).unwrap_or(0),
                    Ok(meta) => total += meta.len(),
                    Err(_) => {}
                }
            }
            Ok(total)
        }
        bytes_under(&self.dir).map_err(|error| sled::Error::Io(error).into())
    }

    /// What the last commit left: offsets, ordinals, segments and the column.
    ///
    /// # Errors
    /// [`ReadModelError`] when sled fails or stored bytes are malformed.
    pub fn committed(&self) -> Result<Committed, ReadModelError> {
        let next_offsets = self.next_offsets()?;
        let next_ordinal = self
            .state
            .get(NEXT_ORDINAL_KEY)?
            .map(|bytes| read_u32(&bytes))
            .transpose()?
            .unwrap_or(0);
        let mut segments = Vec::new();
        for entry in self.state.scan_prefix([SEGMENT_PREFIX]) {
            let (key, value) = entry?;
            let id = read_u64(&key[1..])?;
            let mut stale = codec::OrdinalSink::default();
            for entry in self
                .state
                .scan_prefix(be_key(STALE_PREFIX, &id.to_be_bytes()))
            {
                let (key, value) = entry?;
                stale.add(read_u32(&key[9..])?, &value)?;
            }
            segments.push(Segment {
                meta: SegmentMeta::decode(id, &value)?,
                stale: stale.into_bitmap(),
            });
        }
        let mut column = Vec::with_capacity(next_ordinal as usize);
        let mut unpacked = Vec::new();
        for entry in self.state.scan_prefix([COLUMN_PREFIX]) {
            let (key, value) = entry?;
            let block = read_u32(&key[1..])?;
            if block * COLUMN_BLOCK >= next_ordinal {
                break;
            }
            column.resize((block * COLUMN_BLOCK) as usize, None);
            column.extend(codec::decode_column_block(
                self.unpack(&value, &mut unpacked)?,
            )?);
        }
        column.resize(next_ordinal as usize, None);
        Ok(Committed {
            next_offsets,
            next_ordinal,
            segments,
            column,
        })
    }

    /// The next offset to apply, per partition that has had a record applied or skipped and
    /// committed.
    ///
    /// # Errors
    /// [`ReadModelError`] when sled fails or an entry is malformed.
    pub fn next_offsets(&self) -> Result<BTreeMap<i32, i64>, ReadModelError> {
        self.state
            .scan_prefix([OFFSET_PREFIX])
            .map(|entry| {
                let (key, value) = entry?;
                let partition = read_u32(&key[1..])? as i32;
                Ok((partition, read_u64(&value)? as i64))
            })
            .collect()
    }

    /// Record block `block` as stored, at its current generation.
    ///
    /// # Errors
    /// [`ReadModelError::Storage`] when sled fails.
    pub fn record_block(&self, block: u32) -> Result<Option<RecordBlock>, ReadModelError> {
        fail::fail_point!("store-read", |_| Err(sled::Error::Io(
            std::io::Error::other("injected read failure")
        )
        .into()));
        loop {
            let generation = self.generations.of(block);
            if let Some(bytes) = self.state.get(record_block_key_at(block, generation))? {
                return Ok(Some(RecordBlock(bytes)));
            }
            // A commit made a newer generation current, and deleted this one, between the two
            // reads: read the newer one.
            if self.generations.of(block) == generation {
                return Ok(None);
            }
        }
    }

    /// Writes record block `block` in place, at its current generation: for a block whose
    /// committed records it leaves as they are (it adds ordinals not yet committed), or in a
    /// replay (see [`Store::write_block`]).
    ///
    /// # Errors
    /// [`ReadModelError::Storage`] when sled fails.
    pub fn write_record_block(&self, block: u32, value: Vec<u8>) -> Result<(), ReadModelError> {
        let key = record_block_key_at(block, self.generations.of(block));
        self.write_block(&key, value)
    }

    /// Writes record block `block` under its next generation, which nothing reads until a
    /// commit names it in [`Commit::record_generations`]; returns that generation. A crash
    /// before the commit leaves it an orphan, which the block's next rewrite overwrites.
    ///
    /// # Errors
    /// [`ReadModelError::Storage`] when sled fails.
    pub fn write_record_block_anew(
        &self,
        block: u32,
        value: Vec<u8>,
    ) -> Result<u32, ReadModelError> {
        let generation = self.generations.of(block) + 1;
        self.write_block(&record_block_key_at(block, generation), value)?;
        Ok(generation)
    }

    /// Column block `block` as stored.
    ///
    /// # Errors
    /// [`ReadModelError`] when sled fails or the block is malformed.
    pub fn column_block(&self, block: u32) -> Result<Vec<Option<ColumnEntry>>, ReadModelError> {
        match self.state.get(column_block_key(block))? {
            Some(bytes) => Ok(codec::decode_column_block(
                self.unpack(&bytes, &mut Vec::new())?,
            )?),
            None => Ok(Vec::new()),
        }
    }

    /// `block` (an index or column block) as this store keeps it: packed from format 6 on.
    pub fn pack(&self, block: Vec<u8>) -> Vec<u8> {
        if self.packs_blocks {
            codec::pack_block(&block)
        } else {
            block
        }
    }

    /// The index or column block `stored` holds, unpacked into `buffer` when this store packs
    /// blocks.
    ///
    /// # Errors
    /// [`ReadModelError::Corrupt`] when a packed block does not unpack.
    pub fn unpack<'a>(
        &self,
        stored: &'a [u8],
        buffer: &'a mut Vec<u8>,
    ) -> Result<&'a [u8], ReadModelError> {
        if !self.packs_blocks {
            return Ok(stored);
        }
        buffer.clear();
        codec::unpack_block_into(stored, buffer)?;
        Ok(buffer)
    }

    /// Writes a block of records or column entries for ordinals not yet committed (outside any
    /// commit: nothing reads it until the commit that covers it lands).
    ///
    /// # Errors
    /// [`ReadModelError::Storage`] when sled fails.
    pub fn write_block(&self, key: &[u8], value: Vec<u8>) -> Result<(), ReadModelError> {
        self.state.insert(key, value)?;
        Ok(())
    }

    /// Allocates the ids of segments about to be written (committed with them).
    ///
    /// # Errors
    /// [`ReadModelError`] when sled fails.
    pub fn segment_ids(&self) -> Result<SegmentIds, ReadModelError> {
        Ok(SegmentIds {
            next: self.next_segment_id()?,
        })
    }

    /// Commits a flush: everything in `commit` lands at once, or (after a crash) none of it.
    /// Segments it removes are marked for [`Store::drop_segments`].
    ///
    /// # Errors
    /// [`ReadModelError::Storage`] when sled fails.
    pub fn commit(&self, commit: &Commit) -> Result<(), ReadModelError> {
        let mut batch = sled::Batch::default();
        for (key, value) in &commit.blocks {
            batch.insert(key.as_slice(), value.as_slice());
        }
        for (partition, next) in &commit.next_offsets {
            batch.insert(
                be_key(OFFSET_PREFIX, &partition.to_be_bytes()),
                &next.to_be_bytes(),
            );
        }
        batch.insert(NEXT_ORDINAL_KEY, &commit.next_ordinal.to_be_bytes());
        batch.insert(NEXT_SEGMENT_KEY, &commit.next_segment.to_be_bytes());
        for segment in &commit.added {
            batch.insert(
                be_key(SEGMENT_PREFIX, &segment.id.to_be_bytes()),
                segment.encode(),
            );
        }
        let mut buffer = Vec::new();
        for (id, stale) in &commit.stale {
            for_each_chunk(stale, &mut buffer, |chunk, ordinals| {
                let mut value = Vec::new();
                codec::encode_posting(chunk, ordinals, &mut value);
                batch.insert(stale_key(*id, chunk), value);
                Ok::<_, ReadModelError>(())
            })?;
        }
        for segment in &commit.removed {
            let id = segment.meta.id;
            batch.remove(be_key(SEGMENT_PREFIX, &id.to_be_bytes()));
            for_each_chunk(&segment.stale, &mut buffer, |chunk, _| {
                batch.remove(stale_key(id, chunk));
                Ok::<_, ReadModelError>(())
            })?;
            batch.insert(be_key(GARBAGE_PREFIX, &id.to_be_bytes()), &[]);
        }
        for (key, value) in self.generations.chunks_with(&commit.record_generations) {
            batch.insert(key, value);
        }
        self.state.apply_batch(batch)?;
        self.generations.advance(&commit.record_generations);
        // The generations superseded, and one a crash between an earlier commit and these
        // removals may have left. A reader still about to read one reads the current one
        // instead (`record_block`).
        for &(block, generation) in &commit.record_generations {
            for old in generation.saturating_sub(2)..generation {
                self.state.remove(record_block_key_at(block, old))?;
            }
        }
        Ok(())
    }

    /// Deletes the blocks of segments a commit removed, once no reader can still be reading them.
    ///
    /// # Errors
    /// [`ReadModelError::Storage`] when sled fails.
    pub fn drop_segments(&self, ids: &[u64]) -> Result<(), ReadModelError> {
        for id in ids {
            self.delete_segment_blocks(*id)?;
            self.state
                .remove(be_key(GARBAGE_PREFIX, &id.to_be_bytes()))?;
        }
        Ok(())
    }

    fn delete_segment_blocks(&self, id: u64) -> Result<(), ReadModelError> {
        let keys: Vec<sled::IVec> = self
            .segments
            .range(id.to_be_bytes()..(id + 1).to_be_bytes())
            .keys()
            .collect::<Result<_, _>>()?;
        for key in keys {
            self.segments.remove(key)?;
        }
        self.delete_filter(id)
    }

    /// Records that a record was rejected (again: the same record writes the same key).
    ///
    /// # Errors
    /// [`ReadModelError::Storage`] when sled fails.
    pub fn put_rejected(&self, rejected: &RejectedEvent) -> Result<(), ReadModelError> {
        let mut key = [0u8; 12];
        key[..4].copy_from_slice(&rejected.partition.to_be_bytes());
        key[4..].copy_from_slice(&rejected.offset.to_be_bytes());
        let value = serde_json::to_vec(rejected).expect("a rejection always serialises");
        self.rejected.insert(key, value)?;
        Ok(())
    }

    /// Every rejected record, by partition then offset.
    ///
    /// # Errors
    /// [`ReadModelError`] when sled fails or an entry cannot be read.
    pub fn rejected_events(&self) -> Result<Vec<RejectedEvent>, ReadModelError> {
        self.rejected_events_page(0, usize::MAX)
            .map(|(page, _)| page)
    }

    /// `limit` rejections from the `offset`-th, in log order, and how many there are in all.
    /// Only the page is decoded; the rest are counted by key.
    ///
    /// # Errors
    /// [`ReadModelError`] when sled fails or a stored rejection is unreadable.
    pub fn rejected_events_page(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<RejectedEvent>, usize), ReadModelError> {
        let mut page = Vec::new();
        let mut total = 0;
        for value in self.rejected.iter().values() {
            let value = value?;
            if total >= offset && page.len() < limit {
                page.push(serde_json::from_slice(&value).map_err(|error| {
                    ReadModelError::Corrupt(format!("a rejected event is unreadable: {error}"))
                })?);
            }
            total += 1;
        }
        Ok((page, total))
    }

    /// Writes everything written so far to disk, blocking the calling thread.
    ///
    /// # Errors
    /// [`ReadModelError::Storage`] when sled cannot flush.
    pub fn flush(&self) -> Result<(), ReadModelError> {
        self.db.flush()?;
        Ok(())
    }
}

/// A stored block of records, as read.
pub struct RecordBlock(sled::IVec);

impl RecordBlock {
    /// The record of `ordinal`, if the block holds it.
    ///
    /// # Errors
    /// [`ReadModelError::Corrupt`] when the block or the record is malformed.
    pub fn record(&self, ordinal: u32) -> Result<Option<CustomerRecord>, ReadModelError> {
        match codec::record_block_slot(&self.0, (ordinal % RECORD_BLOCK) as usize)? {
            Some(bytes) => Ok(Some(codec::decode_record(bytes)?)),
            None => Ok(None),
        }
    }

    /// Every slot's bytes (`None` for an empty slot).
    ///
    /// # Errors
    /// [`ReadModelError::Corrupt`] when the block is malformed.
    pub fn slots(&self) -> Result<Vec<Option<&[u8]>>, ReadModelError> {
        Ok(codec::decode_record_block(&self.0)?)
    }
}

/// Hands out segment ids; the last one handed out is committed with the segments.
pub struct SegmentIds {
    next: u64,
}

impl SegmentIds {
    /// A fresh id.
    pub fn take(&mut self) -> u64 {
        self.next += 1;
        self.next - 1
    }

    /// The id after the last one taken: what the commit records.
    pub fn next(&self) -> u64 {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read_model::terms::TermRange;

    fn postings(ordinals: &[u32]) -> RoaringBitmap {
        ordinals.iter().copied().collect()
    }

    fn write_segment<O: IntoIterator<Item = u32>>(
        store: &Store,
        id: u64,
        postings: impl IntoIterator<Item = (impl AsRef<[u8]>, O)>,
    ) -> Option<SegmentMeta> {
        let mut writer = store.segment_writer(id);
        for (term, ordinals) in postings {
            writer.push(term.as_ref(), ordinals).unwrap();
        }
        writer.finish().unwrap()
    }

    fn held(store: &Store, segment: u64, term: &[u8]) -> Vec<u32> {
        let (found, _) = store
            .postings_in(segment, &TermRange::exactly(term.to_vec()), usize::MAX)
            .unwrap()
            .unwrap();
        found.iter().collect()
    }

    #[test]
    fn a_segment_reads_back_by_term_across_blocks_and_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let terms: Vec<(Vec<u8>, RoaringBitmap)> = (0..2_000u32)
            .map(|n| {
                (
                    format!("\x02term{n:05}\x00").into_bytes(),
                    postings(&[n, n + 70_000]),
                )
            })
            .chain([(b"\x03dense\x00".to_vec(), (0..100_000).collect())])
            .collect();
        let meta = write_segment(
            &store,
            7,
            terms.iter().map(|(term, set)| (term, set.iter())),
        )
        .unwrap();
        assert_eq!(meta.ordinals, (0, 99_999));
        assert_eq!(held(&store, 7, b"\x02term01234\x00"), vec![1_234, 71_234]);
        assert_eq!(held(&store, 7, b"\x03dense\x00").len(), 100_000);
        assert_eq!(held(&store, 7, b"\x02term\x00"), Vec::<u32>::new());
        assert_eq!(held(&store, 6, b"\x03dense\x00"), Vec::<u32>::new());
        // Read twice: the second answer comes from the cache.
        assert_eq!(held(&store, 7, b"\x03dense\x00").len(), 100_000);
        let prefix = TermRange::of(crate::domain::TextField::LastName, "term019", false);
        let (found, read) = store.postings_in(7, &prefix, usize::MAX).unwrap().unwrap();
        assert_eq!((read, found.len()), (100, 200));
        assert!(store.postings_in(7, &prefix, 99).unwrap().is_none());
        // A wide range (4,000 listed ordinals): its second and third reads come from the cache,
        // which still honours the bound on terms.
        let wide = TermRange::of(crate::domain::TextField::LastName, "term", false);
        let first = store.postings_in(7, &wide, usize::MAX).unwrap().unwrap();
        assert_eq!((first.1, first.0.len()), (2_000, 4_000));
        assert_eq!(store.postings_cache.keeps_range(7, &wide), (1, true));
        assert_eq!(store.postings_cache.keeps_range(6, &wide), (1, false));
        assert_eq!(store.postings_cache.keeps_range(7, &prefix), (1, false));
        assert_eq!(
            store.postings_in(7, &wide, usize::MAX).unwrap(),
            Some(first)
        );
        assert!(store.postings_in(7, &wide, 1_999).unwrap().is_none());
        // A dense term kept decoded is answered without reading its blocks: with every block
        // gone, it still reads back, and a term not kept finds nothing.
        store.segments.clear().unwrap();
        assert_eq!(held(&store, 7, b"\x03dense\x00").len(), 100_000);
        assert_eq!(held(&store, 7, b"\x02term01234\x00"), Vec::<u32>::new());
    }

    #[test]
    fn ranges_that_read_many_blocks_are_kept_decoded() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // A dense term, a block a chunk; and one whose first chunk is a list, the rest bitsets.
        let chunk = super::codec::CHUNK_ORDINALS;
        let dense: RoaringBitmap = (0..chunk * 4).collect();
        let mixed: RoaringBitmap = [0, 1, 2].into_iter().chain(chunk..chunk * 5).collect();
        write_segment(
            &store,
            8,
            [
                (&b"\x07dense\x00"[..], dense.iter()),
                (&b"\x07mixed\x00"[..], mixed.iter()),
            ],
        )
        .unwrap();
        let city = |needle| TermRange::of(crate::domain::TextField::City, needle, false);
        let read = |range: &TermRange| store.postings_in(8, range, usize::MAX).unwrap().unwrap();
        // The dense term kept decoded by an exact read; a prefix over it still read its blocks.
        assert_eq!(
            held(&store, 8, b"\x07dense\x00").len(),
            dense.len() as usize
        );
        let mixed_term = TermRange::exactly(b"\x07mixed\x00".to_vec());
        assert_eq!(read(&city("den")), (dense.clone(), 1));
        assert_eq!(read(&mixed_term), (mixed.clone(), 1));
        assert_eq!(store.postings_cache.keeps_range(8, &city("den")), (2, true));
        assert_eq!(store.postings_cache.keeps_range(8, &mixed_term), (2, true));
        let exact_dense = TermRange::exactly(b"\x07dense\x00".to_vec());
        assert_eq!(
            store.postings_cache.keeps_range(8, &exact_dense),
            (2, false)
        );
        // With every block gone, both still read back.
        store.segments.clear().unwrap();
        assert_eq!(read(&city("den")), (dense, 1));
        assert_eq!(read(&mixed_term), (mixed, 1));
        assert!(store
            .postings_in(8, &city("mix"), usize::MAX)
            .unwrap()
            .unwrap()
            .0
            .is_empty());
    }

    #[test]
    fn merging_unions_terms_and_drops_stale_ordinals() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a: &[u8] = b"\x02a\x00";
        let b: &[u8] = b"\x02b\x00";
        let first =
            write_segment(&store, 1, [(a, postings(&[1, 2])), (b, postings(&[3]))]).unwrap();
        let second = write_segment(&store, 2, [(a, postings(&[5]))]).unwrap();
        let inputs = [
            Segment {
                meta: first,
                stale: postings(&[2, 3]),
            },
            Segment {
                meta: second,
                stale: RoaringBitmap::new(),
            },
        ];
        store.merge_segments(3, &inputs).unwrap().unwrap();
        assert_eq!(held(&store, 3, a), vec![1, 5]);
        assert_eq!(
            held(&store, 3, b),
            Vec::<u32>::new(),
            "a term left with no ordinal is gone"
        );
    }

    #[test]
    fn a_merge_on_two_threads_writes_what_one_thread_would() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // Terms long enough for the prefix filter; some in every input, stale ordinals in two.
        let term = |n: u32| format!("\x02customer-term-{n:05}\x00").into_bytes();
        let inputs: Vec<Segment> = (0..3u32)
            .map(|input| {
                let postings = (0..3_000u32)
                    .filter(|n| n % 3 == input || n % 7 == 0)
                    .map(|n| (term(n), [n * 3 + input, 100_000 + n]));
                Segment {
                    meta: write_segment(&store, u64::from(input) + 1, postings).unwrap(),
                    stale: if input == 2 {
                        RoaringBitmap::new()
                    } else {
                        (0..110_000).filter(|ordinal| ordinal % 5 == 0).collect()
                    },
                }
            })
            .collect();
        assert!(store.middle_term(&inputs).unwrap().is_some());
        let one = store
            .merge_split_from(10, &inputs, u64::MAX)
            .unwrap()
            .unwrap();
        let two = store.merge_split_from(11, &inputs, 0).unwrap().unwrap();
        assert_eq!(one.ordinals, two.ordinals);
        for n in 0..3_000 {
            assert_eq!(
                held(&store, 11, &term(n)),
                held(&store, 10, &term(n)),
                "term {n}"
            );
        }
        let every = TermRange::of(crate::domain::TextField::LastName, "customer-term", false);
        let read = store.postings_in(10, &every, usize::MAX).unwrap();
        assert!(read.as_ref().is_some_and(|(_, terms)| *terms > 2_000));
        assert_eq!(store.postings_in(11, &every, usize::MAX).unwrap(), read);
    }

    /// The bytes of record block `block` as read, if any.
    fn block_bytes(store: &Store, block: u32) -> Option<Vec<u8>> {
        store
            .record_block(block)
            .unwrap()
            .map(|read| read.0.to_vec())
    }

    #[test]
    fn a_block_written_anew_is_read_only_once_committed_and_its_old_generation_goes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.write_record_block(3, b"first".to_vec()).unwrap();
        let generation = store
            .write_record_block_anew(3, b"second".to_vec())
            .unwrap();
        assert_eq!(generation, 1);
        assert_eq!(
            block_bytes(&store, 3).as_deref(),
            Some(&b"first"[..]),
            "nothing reads a generation before its commit"
        );
        store
            .commit(&Commit {
                record_generations: vec![(3, generation)],
                ..Commit::default()
            })
            .unwrap();
        assert_eq!(block_bytes(&store, 3).as_deref(), Some(&b"second"[..]));
        assert!(
            store
                .state
                .get(record_block_key_at(3, 0))
                .unwrap()
                .is_none(),
            "the superseded generation is deleted"
        );
        // A block left as it is in place stays at its generation.
        store.write_record_block(3, b"third".to_vec()).unwrap();
        assert_eq!(block_bytes(&store, 3).as_deref(), Some(&b"third"[..]));
        let keys: Vec<Vec<u8>> = store
            .state
            .scan_prefix([RECORD_PREFIX])
            .keys()
            .map(|key| key.unwrap().to_vec())
            .collect();
        assert_eq!(keys, vec![record_block_key_at(3, 1)]);
        drop(store);
        let reopened = loop {
            match Store::open(dir.path()) {
                Err(ReadModelError::Locked(_)) => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                opened => break opened.unwrap(),
            }
        };
        assert_eq!(block_bytes(&reopened, 3).as_deref(), Some(&b"third"[..]));
    }

    #[test]
    fn a_segment_without_a_terms_prefix_is_skipped_and_one_with_it_answers() {
        use crate::domain::TextField;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let email = |n: u32| format!("\x04customer{n:07}@example.com\x00").into_bytes();
        let terms: Vec<Vec<u8>> = (0..500).map(email).collect();
        write_segment(
            &store,
            4,
            terms
                .iter()
                .zip(0..)
                .map(|(term, n)| (term.as_slice(), postings(&[n]))),
        )
        .unwrap();
        let present = email(250);
        assert_eq!(held(&store, 4, &present), vec![250]);
        let absent = email(9_999);
        assert!(!store
            .segment_may_hold(4, &absent[..filter::PREFIX_BYTES])
            .unwrap());
        assert_eq!(held(&store, 4, &absent), Vec::<u32>::new());
        // A prefix shorter than the filter's reads the segment.
        let short = TermRange::of(TextField::Email, "customer000", false);
        let (found, terms) = store.postings_in(4, &short, usize::MAX).unwrap().unwrap();
        assert_eq!((found.len(), terms), (500, 500));
        // As does a whole email's prefix, one key or under it.
        let under = TermRange::of(TextField::Email, "customer0000250@example.c", false);
        let (found, _) = store.postings_in(4, &under, usize::MAX).unwrap().unwrap();
        assert_eq!(found.iter().collect::<Vec<_>>(), vec![250]);
    }

    #[test]
    fn what_a_crashed_flush_wrote_is_deleted_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let term: &[u8] = b"\x02a\x00";
        {
            let store = Store::open(dir.path()).unwrap();
            let mut ids = store.segment_ids().unwrap();
            let kept = write_segment(&store, ids.take(), [(term, postings(&[1]))]).unwrap();
            let commit = Commit {
                next_ordinal: 2,
                added: vec![kept],
                next_segment: ids.next(),
                ..Commit::default()
            };
            store.commit(&commit).unwrap();
            // Written by a flush that never committed.
            write_segment(&store, ids.take(), [(term, postings(&[9]))]);
            store.flush().unwrap();
        }
        let store = loop {
            match Store::open(dir.path()) {
                Err(ReadModelError::Locked(_)) => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                opened => break opened.unwrap(),
            }
        };
        let committed = store.committed().unwrap();
        assert_eq!(committed.segments.len(), 1);
        assert_eq!(held(&store, 0, term), vec![1]);
        assert_eq!(
            held(&store, 1, term),
            Vec::<u32>::new(),
            "the orphan is gone"
        );
        assert!(store.state.get(filter::filter_key(0)).unwrap().is_some());
        assert!(
            store.state.get(filter::filter_key(1)).unwrap().is_none(),
            "and its filter"
        );
        assert_eq!(
            store.segment_ids().unwrap().take(),
            1,
            "and its id is free again"
        );
    }
}
