//! Snapshots: a read model's committed state (every stored entry, and the log position it
//! reaches) in one file, so that a new replica starts from it and catches up from its offsets
//! instead of replaying the log from offset 0.
//!
//! Layout, every number big-endian:
//! - [`MAGIC`] (8 bytes), then a header: its length (u32) and JSON ([`SnapshotHeader`]: the
//!   store's format, the topic and cluster it projects, the next offset of each partition);
//! - entries: `E`, the tree's index (u8, [`TREES`]), the key's length (u32) and the key, the
//!   value's length (u32) and the value;
//! - `Z` and the number of entries (u64);
//! - the SHA-256 of every byte before it (32 bytes).
//!
//! A restore checks the header against the log it will follow before reading on, imports into a
//! directory of its own and moves it into place only once the checksum matched: a truncated,
//! damaged or foreign snapshot leaves nothing behind.

use super::store::{Store, StoreImport, TREES};
use super::{ReadModel, ReadModelError, FORMAT, READABLE_FORMATS};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::Path;

/// The first bytes of every snapshot: what it is, and the layout's version.
pub const MAGIC: &[u8; 8] = b"CRSNAP\x00\x01";

/// The longest header a restore reads.
const MAX_HEADER: u32 = 1 << 20;

/// The longest key or value a restore reads: far past any block the store writes, and a bound
/// on what a damaged length can make it allocate.
const MAX_PART: u32 = 256 << 20;

/// The longest a snapshot may hold the store still. Flushes wait while a snapshot is read, and
/// past a backlog the projector waits for them: a reader that stops reading (or crawls) must not
/// stall the replica, so the snapshot is abandoned, with an error, after this long.
pub const MAX_HOLD: std::time::Duration = std::time::Duration::from_secs(600);

/// What a snapshot is of, written before its entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotHeader {
    /// The store's format ([`FORMAT`]).
    pub format: String,
    /// The topic the read model projects.
    pub topic: String,
    /// The Kafka cluster's id.
    pub cluster: String,
    /// The next offset of each partition: where the restored replica resumes.
    pub next_offsets: BTreeMap<i32, i64>,
    /// When it was taken.
    pub taken_at: DateTime<Utc>,
}

/// What a snapshot written or restored held.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotSummary {
    /// Its header.
    pub header: SnapshotHeader,
    /// Stored entries.
    pub entries: u64,
    /// Bytes of the file.
    pub bytes: u64,
}

/// Why a snapshot could not be written or restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Reading or writing failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The read model failed.
    #[error(transparent)]
    ReadModel(#[from] ReadModelError),
    /// The file is not a snapshot of this layout.
    #[error("not a customer-registry snapshot (or one of another layout): {0}")]
    NotASnapshot(String),
    /// The file ends before the snapshot does.
    #[error("the snapshot is truncated: it ends before its {0}")]
    Truncated(&'static str),
    /// The checksum does not match what was read.
    #[error("the snapshot is damaged: its checksum does not match its contents")]
    Damaged,
    /// The snapshot is of another log, or another store format.
    #[error(
        "the snapshot is of {setting} {found:?}, not {wanted:?}; take one of this log's replicas"
    )]
    Foreign {
        /// `topic`, `cluster` or `format`.
        setting: &'static str,
        /// What the snapshot holds.
        found: String,
        /// What this replica follows.
        wanted: String,
    },
    /// The read model has not been bound to a log yet (a replica that never started).
    #[error("the read model projects no log yet: start it once before taking a snapshot")]
    Unbound,
    /// The snapshot was read too slowly and was abandoned, so that flushes could go on.
    #[error(
        "the snapshot was abandoned after {0:?}: it was read too slowly, and the read model's \
         flushes cannot wait longer"
    )]
    TooSlow(std::time::Duration),
}

/// Counts and hashes what passes through, on the way to `inner`.
struct Hashing<T> {
    inner: T,
    digest: Sha256,
    bytes: u64,
}

impl<T> Hashing<T> {
    fn new(inner: T) -> Self {
        Self {
            inner,
            digest: Sha256::new(),
            bytes: 0,
        }
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buffer: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buffer)?;
        self.digest.update(&buffer[..written]);
        self.bytes += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.digest.update(&buffer[..read]);
        self.bytes += read as u64;
        Ok(read)
    }
}

impl ReadModel {
    /// Writes a snapshot of what this read model has committed to `out`. Flushes wait while it
    /// is written (the projector keeps applying in memory meanwhile, until its backlog of
    /// unflushed changes is full), so it holds one commit's state and the offsets that state
    /// reaches. Abandoned after [`MAX_HOLD`].
    ///
    /// # Errors
    /// [`SnapshotError::Unbound`] for a read model that projects no log yet,
    /// [`SnapshotError::TooSlow`] past [`MAX_HOLD`], [`SnapshotError::Io`] when `out` fails,
    /// [`SnapshotError::ReadModel`] when sled fails.
    pub fn write_snapshot(&self, out: impl Write) -> Result<SnapshotSummary, SnapshotError> {
        write_snapshot(&self.shared.store, out)
    }
}

fn write_snapshot(store: &Store, out: impl Write) -> Result<SnapshotSummary, SnapshotError> {
    let _still = store.hold_still();
    let held_since = std::time::Instant::now();
    let (Some(topic), Some(cluster)) = (store.setting("topic")?, store.setting("cluster")?) else {
        return Err(SnapshotError::Unbound);
    };
    let header = SnapshotHeader {
        format: store.format()?,
        topic,
        cluster,
        next_offsets: store.next_offsets()?,
        taken_at: Utc::now(),
    };
    let mut out = Hashing::new(io::BufWriter::with_capacity(1 << 16, out));
    out.write_all(MAGIC)?;
    let encoded = serde_json::to_vec(&header).expect("a header serialises");
    out.write_all(
        &u32::try_from(encoded.len())
            .expect("a small header")
            .to_be_bytes(),
    )?;
    out.write_all(&encoded)?;
    let mut entries = 0u64;
    for entry in store.entries() {
        let (tree, key, value) = entry?;
        out.write_all(b"E")?;
        out.write_all(&[tree])?;
        for part in [&key, &value] {
            let length = u32::try_from(part.len()).expect("sled keeps values under 4 GiB");
            out.write_all(&length.to_be_bytes())?;
            out.write_all(part)?;
        }
        entries += 1;
        if entries % 1024 == 0 && held_since.elapsed() > MAX_HOLD {
            return Err(SnapshotError::TooSlow(MAX_HOLD));
        }
    }
    out.write_all(b"Z")?;
    out.write_all(&entries.to_be_bytes())?;
    let digest = out.digest.clone().finalize();
    let bytes = out.bytes + digest.len() as u64;
    let mut inner = out.inner;
    inner.write_all(&digest)?;
    inner.flush()?;
    Ok(SnapshotSummary {
        header,
        entries,
        bytes,
    })
}

/// Restores the snapshot `input` into `dir` (which must not exist), after checking that it is
/// of `topic` on `cluster` in this build's format. Nothing is left in `dir` unless the whole
/// snapshot was read and its checksum matched.
///
/// # Errors
/// [`SnapshotError::NotASnapshot`], [`SnapshotError::Truncated`], [`SnapshotError::Damaged`]
/// or [`SnapshotError::Foreign`] for a file that cannot be restored here, and the I/O and store
/// errors.
pub fn restore_snapshot(
    input: impl Read,
    dir: &Path,
    topic: &str,
    cluster: &str,
) -> Result<SnapshotSummary, SnapshotError> {
    if dir.exists() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} exists already: a snapshot restores into nothing",
                dir.display()
            ),
        )
        .into());
    }
    let name = dir
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    // What a restore that crashed left: nothing else writes these names.
    if let Some(parent) = dir.parent().filter(|parent| parent.exists()) {
        for entry in std::fs::read_dir(parent)?.flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(&format!("{name}.restore-"))
            {
                std::fs::remove_dir_all(entry.path())?;
            }
        }
    }
    let staging = dir.with_file_name(format!("{name}.restore-{}", uuid::Uuid::now_v7().simple()));
    let restored = import(input, &staging, topic, cluster);
    match restored {
        Ok(summary) => {
            crate::durable::rename(&staging, dir)?;
            Ok(summary)
        }
        Err(error) => {
            let _ = std::fs::remove_dir_all(&staging);
            Err(error)
        }
    }
}

/// Reads and checks the whole snapshot `input` (layout, checksum), importing nothing: what a
/// tool does with a snapshot it just received.
///
/// # Errors
/// [`SnapshotError::NotASnapshot`], [`SnapshotError::Truncated`] or [`SnapshotError::Damaged`]
/// for a file that is not a whole snapshot, [`SnapshotError::Io`] when it cannot be read.
pub fn verify_snapshot(input: impl Read) -> Result<SnapshotSummary, SnapshotError> {
    read_snapshot(input, None, |_| Ok(()))
}

fn import(
    input: impl Read,
    staging: &Path,
    topic: &str,
    cluster: &str,
) -> Result<SnapshotSummary, SnapshotError> {
    let check = |header: &SnapshotHeader| {
        if !READABLE_FORMATS.contains(&header.format.as_str()) {
            return Err(SnapshotError::Foreign {
                setting: "format",
                found: header.format.clone(),
                wanted: FORMAT.to_owned(),
            });
        }
        for (setting, found, wanted) in [
            ("topic", &header.topic, topic),
            ("cluster", &header.cluster, cluster),
        ] {
            if found != wanted {
                return Err(SnapshotError::Foreign {
                    setting,
                    found: found.clone(),
                    wanted: wanted.to_owned(),
                });
            }
        }
        Ok(())
    };
    read_snapshot(input, Some(staging), check)
}

/// Reads `input` through, checking its header with `check` before any entry; imports the
/// entries into a store in `staging` when given.
fn read_snapshot(
    input: impl Read,
    staging: Option<&Path>,
    check: impl FnOnce(&SnapshotHeader) -> Result<(), SnapshotError>,
) -> Result<SnapshotSummary, SnapshotError> {
    let mut input = Hashing::new(io::BufReader::with_capacity(1 << 16, input));
    let mut magic = [0u8; 8];
    read_exact(&mut input, &mut magic, "header")?;
    if &magic != MAGIC {
        return Err(SnapshotError::NotASnapshot(
            "its first bytes are not CRSNAP".into(),
        ));
    }
    let length = read_u32(&mut input, "header")?;
    if length > MAX_HEADER {
        return Err(SnapshotError::NotASnapshot(format!(
            "a header of {length} bytes"
        )));
    }
    let mut encoded = vec![0u8; length as usize];
    read_exact(&mut input, &mut encoded, "header")?;
    let header: SnapshotHeader = serde_json::from_slice(&encoded)
        .map_err(|error| SnapshotError::NotASnapshot(format!("its header: {error}")))?;
    check(&header)?;
    let mut store = staging.map(StoreImport::create).transpose()?;
    let mut entries = 0u64;
    let (mut key, mut value) = (Vec::new(), Vec::new());
    loop {
        let mut tag = [0u8; 2];
        read_exact(&mut input, &mut tag[..1], "end")?;
        match tag[0] {
            b'E' => {
                read_exact(&mut input, &mut tag[1..], "entries")?;
                if usize::from(tag[1]) >= TREES.len() {
                    return Err(SnapshotError::Damaged);
                }
                read_part(&mut input, &mut key)?;
                read_part(&mut input, &mut value)?;
                if let Some(store) = &mut store {
                    store.insert(tag[1], &key, &value)?;
                }
                entries += 1;
            }
            b'Z' => break,
            _ => return Err(SnapshotError::Damaged),
        }
    }
    let mut count = [0u8; 8];
    read_exact(&mut input, &mut count, "end")?;
    let computed = input.digest.clone().finalize();
    let mut recorded = [0u8; 32];
    input
        .inner
        .read_exact(&mut recorded)
        .map_err(|_| SnapshotError::Truncated("checksum"))?;
    if computed.as_slice() != recorded || u64::from_be_bytes(count) != entries {
        return Err(SnapshotError::Damaged);
    }
    let mut rest = [0u8; 1];
    if input.inner.read(&mut rest)? != 0 {
        return Err(SnapshotError::Damaged);
    }
    if let Some(store) = store {
        store.finish()?;
    }
    Ok(SnapshotSummary {
        header,
        entries,
        bytes: input.bytes + 32,
    })
}

fn read_exact(
    input: &mut impl Read,
    buffer: &mut [u8],
    part: &'static str,
) -> Result<(), SnapshotError> {
    input
        .read_exact(buffer)
        .map_err(|error| match error.kind() {
            io::ErrorKind::UnexpectedEof => SnapshotError::Truncated(part),
            _ => SnapshotError::Io(error),
        })
}

fn read_u32(input: &mut impl Read, part: &'static str) -> Result<u32, SnapshotError> {
    let mut bytes = [0u8; 4];
    read_exact(input, &mut bytes, part)?;
    Ok(u32::from_be_bytes(bytes))
}

/// A length-prefixed key or value, into `buffer`. A length past what the rest of a damaged file
/// could hold is read as far as the file goes, and found truncated or damaged there.
fn read_part(input: &mut impl Read, buffer: &mut Vec<u8>) -> Result<(), SnapshotError> {
    let length = read_u32(input, "entries")?;
    if length > MAX_PART {
        return Err(SnapshotError::Damaged);
    }
    let length = length as usize;
    buffer.clear();
    let read = input
        .take(length as u64)
        .read_to_end(buffer)
        .map_err(SnapshotError::Io)?;
    if read < length {
        return Err(SnapshotError::Truncated("entries"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AccountId, Customer, CustomerCreated, CustomerDetails, RegistryEvent};
    use crate::read_model::{open, LogRecord, RecordChange};

    /// A read model of `customers` customers, committed and bound to `topic` on `cluster`.
    fn read_model_with(dir: &Path, customers: usize) -> ReadModel {
        let (model, mut writer) = open(dir).unwrap();
        model.bind_to_log("customers.events", "cluster-1").unwrap();
        let records: Vec<LogRecord> = (0..customers)
            .map(|n| {
                let customer =
                    Customer::register(CustomerDetails::for_account(AccountId::parse(42).unwrap()));
                LogRecord {
                    partition: (n % 3) as i32,
                    offset: (n / 3) as i64,
                    change: RecordChange::Event(Box::new(RegistryEvent::CustomerCreated(
                        CustomerCreated::new(customer),
                    ))),
                }
            })
            .collect();
        writer.apply_batch(&records).unwrap();
        writer.flush_all().unwrap();
        model
    }

    fn snapshot_of(model: &ReadModel) -> Vec<u8> {
        let mut bytes = Vec::new();
        model.write_snapshot(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn a_restored_snapshot_holds_the_same_customers_and_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let model = read_model_with(&dir.path().join("a"), 100);
        let bytes = snapshot_of(&model);
        let target = dir.path().join("b");
        let summary =
            restore_snapshot(bytes.as_slice(), &target, "customers.events", "cluster-1").unwrap();
        assert_eq!(summary.bytes, bytes.len() as u64);
        assert_eq!(summary.header.next_offsets, model.next_offsets().unwrap());
        let (restored, _) = open(&target).unwrap();
        assert_eq!(
            restored.next_offsets().unwrap(),
            model.next_offsets().unwrap()
        );
        let customers = |model: &ReadModel| {
            model
                .stored_customers()
                .collect::<Result<Vec<_>, _>>()
                .unwrap()
        };
        assert_eq!(customers(&restored), customers(&model));
        assert_eq!(restored.len(), 100);
        restored
            .bind_to_log("customers.events", "cluster-1")
            .unwrap();
    }

    #[test]
    fn a_truncated_damaged_or_foreign_snapshot_is_refused_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let model = read_model_with(&dir.path().join("a"), 40);
        let bytes = snapshot_of(&model);
        let target = dir.path().join("b");
        let refused = |bytes: &[u8], topic: &str| {
            let error = restore_snapshot(bytes, &target, topic, "cluster-1").unwrap_err();
            assert!(!target.exists(), "{error}");
            let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
            assert_eq!(leftovers, 1, "only the source read model: {error}");
            error
        };
        for cut in [3, 20, bytes.len() / 2, bytes.len() - 33, bytes.len() - 1] {
            let error = refused(&bytes[..cut], "customers.events");
            assert!(
                matches!(
                    error,
                    SnapshotError::Truncated(_) | SnapshotError::NotASnapshot(_)
                ),
                "cut at {cut}: {error}"
            );
        }
        for at in [
            bytes.len() / 3,
            bytes.len() / 2,
            bytes.len() - 40,
            bytes.len() - 5,
        ] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x55;
            let error = refused(&damaged, "customers.events");
            assert!(
                !matches!(error, SnapshotError::Io(_) | SnapshotError::ReadModel(_)),
                "flipped at {at}: {error}"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            refused(&longer, "customers.events"),
            SnapshotError::Damaged
        ));
        let error = refused(&bytes, "other.topic");
        assert!(
            matches!(
                error,
                SnapshotError::Foreign {
                    setting: "topic",
                    ..
                }
            ),
            "{error}"
        );
        assert!(matches!(
            refused(b"hello world", "customers.events"),
            SnapshotError::Truncated(_) | SnapshotError::NotASnapshot(_)
        ));
    }

    #[test]
    fn a_read_model_bound_to_no_log_has_no_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let (model, _writer) = open(dir.path()).unwrap();
        assert!(matches!(
            model.write_snapshot(Vec::new()),
            Err(SnapshotError::Unbound)
        ));
    }
}
