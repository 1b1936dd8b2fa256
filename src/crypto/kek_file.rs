//! The key-encryption key file: one JSON object a line, each a KEK's id, its 32 random bytes in
//! hex and when it was added. The newest (last) KEK wraps new data keys; every older one still
//! unwraps the data keys it wrapped, so a KEK is rotated by adding one. The file is created
//! readable by its owner only (mode 0600), and refused when anyone but its owner and its group
//! may read it, or anyone but its owner may write it (a Kubernetes Secret is mounted 0440 for
//! the pod's group).
//!
//! ```text
//! {"id":"kek-3f9a1c02d4e5b6a7","key":"9f2c…","createdAt":"2026-12-06T14:02:11.120Z"}
//! ```

use crate::durable::private_options;
use crate::hex;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Bytes in a KEK: an AES-256 key.
pub const KEK_BYTES: usize = 32;

/// What every KEK id starts with, so that one is told from other ids in a wrapped key or a log.
const ID_PREFIX: &str = "kek-";

/// One KEK as the file holds it. Its `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Kek {
    /// The id wrapped data keys name it by.
    pub id: String,
    /// The key.
    pub key: [u8; KEK_BYTES],
    /// When it was added.
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek")
            .field("id", &self.id)
            .field("key", &"<redacted>")
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// Why the KEK file cannot be read or added to. No variant holds a key.
#[derive(Debug, thiserror::Error)]
pub enum KekFileError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A line is not a valid KEK.
    #[error("{path}, line {line}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What is wrong with it (never the key).
        reason: String,
    },
    /// Others than its owner and group may read the file, or others than its owner write it.
    #[error(
        "{path}: open to others than its owner (mode {mode:o}); a KEK file must be 0600 (or \
         0440 for a group that needs it): chmod 600 it, and consider its keys exposed"
    )]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file holds no KEK.
    #[error("{0}: holds no key-encryption key; add one with `customer-registry kek add --file`")]
    Empty(PathBuf),
    /// The system's random source failed.
    #[error("no random bytes for a new KEK: {0}")]
    Random(String),
}

/// The line form of a KEK.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct KekLine {
    id: String,
    key: String,
    created_at: String,
}

/// Every KEK of the file at `path`, oldest first. Blank lines are skipped.
///
/// # Errors
/// The file is unreadable or readable by others, holds no KEK, a line is not a valid KEK (its
/// number says which), or two KEKs share an id.
pub fn load(path: &Path) -> Result<Vec<Kek>, KekFileError> {
    let io = |source| KekFileError::Io {
        path: path.to_owned(),
        source,
    };
    let metadata = fs::metadata(path).map_err(io)?;
    refuse_exposed(path, &metadata)?;
    let keks = parse(path, &fs::read_to_string(path).map_err(io)?)?;
    if keks.is_empty() {
        return Err(KekFileError::Empty(path.to_owned()));
    }
    Ok(keks)
}

/// Appends a new random KEK to the file at `path` (created, mode 0600, when missing) and returns
/// its id. It wraps every data key minted from now on; the older ones still unwrap theirs.
///
/// # Errors
/// The file exists but is invalid or readable by others, or it cannot be written.
pub fn add(path: &Path) -> Result<String, KekFileError> {
    let io = |source| KekFileError::Io {
        path: path.to_owned(),
        source,
    };
    let text = match fs::metadata(path) {
        Ok(metadata) => {
            refuse_exposed(path, &metadata)?;
            fs::read_to_string(path).map_err(io)?
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => return Err(io(error)),
    };
    let existing = parse(path, &text)?;
    let mut key = [0; KEK_BYTES];
    let mut id_bytes = [0; 8];
    getrandom::fill(&mut key).map_err(|error| KekFileError::Random(error.to_string()))?;
    getrandom::fill(&mut id_bytes).map_err(|error| KekFileError::Random(error.to_string()))?;
    let id = format!("{ID_PREFIX}{}", hex::encode(&id_bytes));
    if existing.iter().any(|kek| kek.id == id) {
        // 64 random bits: a repeat means the random source is broken, not bad luck.
        return Err(KekFileError::Random(format!(
            "{id} repeats an id the file holds"
        )));
    }
    let line = KekLine {
        id: id.clone(),
        key: hex::encode(&key),
        created_at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
    };
    let mut file = private_options()
        .append(true)
        .create(true)
        .open(path)
        .map_err(io)?;
    let separator = if !text.is_empty() && !text.ends_with('\n') {
        "\n"
    } else {
        ""
    };
    let rendered = serde_json::to_string(&line).expect("a KEK line always serialises");
    writeln!(file, "{separator}{rendered}").map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(id)
}

/// Refuses a file that others than its owner and group may read, or others than its owner write.
fn refuse_exposed(path: &Path, metadata: &fs::Metadata) -> Result<(), KekFileError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o027 != 0 {
            return Err(KekFileError::Exposed {
                path: path.to_owned(),
                mode,
            });
        }
    }
    Ok(())
}

fn parse(path: &Path, text: &str) -> Result<Vec<Kek>, KekFileError> {
    let mut keks: Vec<Kek> = Vec::new();
    for (at, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let invalid = |reason: String| KekFileError::Invalid {
            path: path.to_owned(),
            line: at + 1,
            reason,
        };
        let kek = parse_line(line).map_err(invalid)?;
        if keks.iter().any(|earlier| earlier.id == kek.id) {
            return Err(invalid(format!("the id {} is given twice", kek.id)));
        }
        keks.push(kek);
    }
    Ok(keks)
}

fn parse_line(line: &str) -> Result<Kek, String> {
    // serde_json's own messages may quote a value: only its kind and column are told.
    let line: KekLine = serde_json::from_str(line).map_err(|error| {
        format!(
            "not a KEK (id, key, createdAt): a {:?} error at column {}",
            error.classify(),
            error.column()
        )
    })?;
    let id_ok = line.id.strip_prefix(ID_PREFIX).is_some_and(|rest| {
        !rest.is_empty() && rest.len() <= 64 && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    });
    if !id_ok {
        return Err(format!("an id is {ID_PREFIX} then letters and digits"));
    }
    let key = hex::decode::<KEK_BYTES>(&line.key)
        .ok_or_else(|| format!("the key of {} is not {KEK_BYTES} bytes in hex", line.id))?;
    let created_at = DateTime::parse_from_rfc3339(&line.created_at)
        .map_err(|_| format!("the createdAt of {} is not an RFC 3339 time", line.id))?
        .with_timezone(&Utc);
    Ok(Kek {
        id: line.id,
        key,
        created_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn each_add_appends_a_new_kek_and_the_newest_comes_last() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keks.jsonl");
        let first = add(&path).unwrap();
        let second = add(&path).unwrap();
        assert_ne!(first, second);
        assert!(first.starts_with("kek-"), "{first}");
        let keks = load(&path).unwrap();
        let ids: Vec<&str> = keks.iter().map(|kek| kek.id.as_str()).collect();
        assert_eq!(ids, [first.as_str(), second.as_str()]);
        assert_ne!(keks[0].key, keks[1].key);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(!format!("{:?}", keks[0]).contains(&hex::encode(&keks[0].key)));
    }

    #[test]
    fn a_file_others_may_read_is_refused_and_so_is_an_empty_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keks.jsonl");
        add(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            load(&path),
            Err(KekFileError::Exposed { mode: 0o644, .. })
        ));
        assert!(matches!(add(&path), Err(KekFileError::Exposed { .. })));
        let empty = dir.path().join("empty.jsonl");
        private_options()
            .write(true)
            .create(true)
            .open(&empty)
            .unwrap();
        assert!(matches!(load(&empty), Err(KekFileError::Empty(_))));
    }

    #[test]
    fn invalid_lines_are_refused_by_number_without_echoing_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keks.jsonl");
        let id = add(&path).unwrap();
        let secret = "ab".repeat(31);
        let good = fs::read_to_string(&path).unwrap();
        for (bad, says) in [
            (
                format!(r#"{{"id":"kek-1","key":"{secret}","createdAt":"2026-12-06T00:00:00Z"}}"#),
                "32 bytes",
            ),
            (
                format!(r#"{{"id":"k1","key":"{secret}ab","createdAt":"2026-12-06T00:00:00Z"}}"#),
                "an id is",
            ),
            (
                format!(r#"{{"id":"kek-2","key":"{secret}ab","createdAt":"yesterday"}}"#),
                "RFC 3339",
            ),
            (
                format!(r#"{{"id":"kek-3","key":"{secret}ab"}}"#),
                "not a KEK",
            ),
            (good.lines().next().unwrap().to_owned(), "given twice"),
        ] {
            fs::write(&path, format!("{good}\n{bad}\n")).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
            let error = load(&path).unwrap_err().to_string();
            assert!(error.contains("line 3") && error.contains(says), "{error}");
            assert!(!error.contains(&secret), "{error}");
        }
        assert!(good.contains(&id));
    }
}
