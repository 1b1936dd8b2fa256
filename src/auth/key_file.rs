//! The API key file: one JSON object a line, each a key's name, the SHA-256 of the key (never the
//! key itself) and its scope. `customer-registry keys add|list|revoke` edit it; `serve` reads it.
//!
//! ```text
//! {"name":"billing-eu","sha256":"9f2c…","accounts":[42,43]}
//! {"name":"ops","sha256":"41ab…","admin":true}
//! ```
//!
//! A key is 32 random bytes (256 bits), so a plain SHA-256 of it cannot be reversed by guessing:
//! no salt or slow hash is needed, unlike for passwords people choose.

use super::Scope;
use crate::domain::AccountId;
use crate::durable::private_options;
use crate::hex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What every generated key starts with, so a leaked one is recognisable (secret scanners).
pub const KEY_PREFIX: &str = "crk_";

/// Random bytes in a generated key.
const KEY_BYTES: usize = 32;

/// The longest key name: names become the `actor` of events.
pub const MAX_NAME_LEN: usize = 64;

/// One key as the file holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    /// Who holds the key; the `actor` of the events its requests cause.
    pub name: String,
    /// SHA-256 of the key.
    pub sha256: [u8; 32],
    /// What the key may reach.
    pub scope: Scope,
}

/// Why the key file cannot be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A line is not a valid entry.
    #[error("{path}, line {line}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// `keys add` for a name the file already has.
    #[error("{path} already has a key named {name:?}; revoke it first or choose another name")]
    NameTaken {
        /// The file.
        path: PathBuf,
        /// The name.
        name: String,
    },
    /// `keys revoke` for a name the file does not have.
    #[error("{path} has no key named {name:?}")]
    NoSuchName {
        /// The file.
        path: PathBuf,
        /// The name.
        name: String,
    },
    /// A name that breaks the naming rule.
    #[error("{0}")]
    BadName(String),
    /// No random bytes could be had from the system.
    #[error("cannot generate a key: {0}")]
    Random(String),
}

/// A line of the file, as serde reads and writes it.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    name: String,
    sha256: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    accounts: Option<Vec<AccountId>>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    admin: bool,
}

/// Checks a key name: 1 to [`MAX_NAME_LEN`] letters, digits, `-`, `_`, `.` or `@`; not
/// `anonymous`, the actor of requests served without authentication.
///
/// # Errors
/// What the name breaks.
pub fn check_name(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@');
    if name.is_empty() || name.len() > MAX_NAME_LEN || !name.chars().all(allowed) {
        return Err(format!(
            "a key name is 1 to {MAX_NAME_LEN} letters, digits, '-', '_', '.' or '@', not {:?}",
            crate::domain::shown(name, MAX_NAME_LEN)
        ));
    }
    if name == super::ANONYMOUS {
        return Err(format!(
            "{:?} is the actor of unauthenticated requests",
            super::ANONYMOUS
        ));
    }
    Ok(())
}

/// The SHA-256 of a presented key.
pub fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Every entry of the file at `path`. Blank lines are skipped.
///
/// # Errors
/// The file is unreadable, or a line is not a valid entry (its number says which), or two
/// entries share a name or a key.
pub fn load(path: &Path) -> Result<Vec<KeyEntry>, KeyFileError> {
    let text = fs::read_to_string(path).map_err(|source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text)
}

/// The entries of `text`, the contents of the file at `path`.
fn parse(path: &Path, text: &str) -> Result<Vec<KeyEntry>, KeyFileError> {
    let mut entries: Vec<KeyEntry> = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let invalid = |reason: String| KeyFileError::Invalid {
            path: path.to_owned(),
            line: index + 1,
            reason,
        };
        let entry = parse_line(line).map_err(invalid)?;
        if entries.iter().any(|seen| seen.name == entry.name) {
            return Err(invalid(format!("a second key named {:?}", entry.name)));
        }
        if entries.iter().any(|seen| seen.sha256 == entry.sha256) {
            return Err(invalid("the same key as an earlier line".into()));
        }
        entries.push(entry);
    }
    Ok(entries)
}

fn parse_line(line: &str) -> Result<KeyEntry, String> {
    let line: Line = serde_json::from_str(line).map_err(|error| error.to_string())?;
    check_name(&line.name)?;
    let sha256 = hex::decode::<32>(&line.sha256).ok_or("sha256 must be 64 hexadecimal digits")?;
    let scope = match (line.accounts, line.admin) {
        (Some(_), true) => return Err("a key has accounts or admin, not both".into()),
        (None, false) => return Err("a key needs accounts or admin".into()),
        (Some(accounts), false) if accounts.is_empty() => {
            return Err("accounts must name at least one account".into())
        }
        (Some(accounts), false) => Scope::accounts(accounts),
        (None, true) => Scope::Admin,
    };
    Ok(KeyEntry {
        name: line.name,
        sha256,
        scope,
    })
}

fn render(entry: &KeyEntry) -> String {
    let (accounts, admin) = match &entry.scope {
        Scope::Admin => (None, true),
        Scope::Accounts(accounts) => (Some(accounts.clone()), false),
    };
    let line = Line {
        name: entry.name.clone(),
        sha256: hex::encode(&entry.sha256),
        accounts,
        admin,
    };
    serde_json::to_string(&line).expect("a key entry always serialises")
}

/// Generates a key for `name` with `scope`, appends its hash to the file at `path` (created,
/// readable by its owner only, when missing) and returns the key: the only time it is shown.
///
/// # Errors
/// The name is invalid or taken, the file is invalid, or it cannot be written.
pub fn add(path: &Path, name: &str, scope: Scope) -> Result<String, KeyFileError> {
    check_name(name).map_err(KeyFileError::BadName)?;
    let io = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    // Read once: for the names it holds, and whether its last line lacks its newline.
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => return Err(io(error)),
    };
    let existing = parse(path, &text)?;
    if existing.iter().any(|entry| entry.name == name) {
        return Err(KeyFileError::NameTaken {
            path: path.to_owned(),
            name: name.to_owned(),
        });
    }
    let mut random = [0; KEY_BYTES];
    getrandom::fill(&mut random).map_err(|error| KeyFileError::Random(error.to_string()))?;
    let key = format!("{KEY_PREFIX}{}", hex::encode(&random));
    let entry = KeyEntry {
        name: name.to_owned(),
        sha256: digest(&key),
        scope,
    };
    let mut file = private_options()
        .append(true)
        .create(true)
        .open(path)
        .map_err(io)?;
    // A file whose last line lacks its newline still gets the entry on a line of its own.
    let needs_newline = !text.is_empty() && !text.ends_with('\n');
    let separator = if needs_newline { "\n" } else { "" };
    writeln!(file, "{separator}{}", render(&entry)).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(key)
}

/// Removes the key named `name` from the file at `path`, replacing the file atomically.
///
/// # Errors
/// No such name, an invalid file, or one that cannot be rewritten.
pub fn revoke(path: &Path, name: &str) -> Result<(), KeyFileError> {
    let entries = load(path)?;
    if !entries.iter().any(|entry| entry.name == name) {
        return Err(KeyFileError::NoSuchName {
            path: path.to_owned(),
            name: name.to_owned(),
        });
    }
    let kept: String = entries
        .iter()
        .filter(|entry| entry.name != name)
        .map(|entry| render(entry) + "\n")
        .collect();
    let io = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    // Left over from an interrupted revoke, it may have other permissions: made afresh.
    match fs::remove_file(&temporary) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(io(error)),
        _ => {}
    }
    let mut file = private_options()
        .write(true)
        .create_new(true)
        .open(&temporary)
        .map_err(io)?;
    file.write_all(kept.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    crate::durable::rename(&temporary, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(id: i64) -> AccountId {
        AccountId::parse(id).unwrap()
    }

    #[test]
    fn added_keys_are_stored_as_hashes_and_listed_with_their_scopes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.jsonl");
        let billing = add(
            &path,
            "billing",
            Scope::accounts(vec![account(43), account(42)]),
        )
        .unwrap();
        let ops = add(&path, "ops", Scope::Admin).unwrap();
        assert!(billing.starts_with(KEY_PREFIX) && billing.len() == KEY_PREFIX.len() + 64);
        assert_ne!(billing, ops);
        let text = fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&billing) && !text.contains(&ops), "{text}");
        let entries = load(&path).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].name, "billing");
        assert_eq!(entries[0].sha256, digest(&billing));
        assert_eq!(
            entries[0].scope,
            Scope::Accounts(vec![account(42), account(43)])
        );
        assert_eq!(entries[1].scope, Scope::Admin);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn names_are_unique_and_revocation_removes_one_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.jsonl");
        add(&path, "a", Scope::Admin).unwrap();
        add(&path, "b", Scope::Admin).unwrap();
        assert!(matches!(
            add(&path, "a", Scope::Admin),
            Err(KeyFileError::NameTaken { .. })
        ));
        revoke(&path, "a").unwrap();
        let names: Vec<_> = load(&path).unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["b"]);
        assert!(matches!(
            revoke(&path, "a"),
            Err(KeyFileError::NoSuchName { .. })
        ));
    }

    #[test]
    fn invalid_lines_are_refused_with_their_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.jsonl");
        let hash = "ab".repeat(32);
        for (bad, why) in [
            (r#"{"name":"x","sha256":"ab"}"#.to_owned(), "64 hexadecimal"),
            (
                format!(r#"{{"name":"x","sha256":"{hash}"}}"#),
                "accounts or admin",
            ),
            (
                format!(r#"{{"name":"x","sha256":"{hash}","accounts":[]}}"#),
                "at least one",
            ),
            (
                format!(r#"{{"name":"x","sha256":"{hash}","accounts":[1],"admin":true}}"#),
                "not both",
            ),
            (
                format!(r#"{{"name":"x","sha256":"{hash}","accounts":[0]}}"#),
                "accountId 0",
            ),
            (
                format!(r#"{{"name":"a b","sha256":"{hash}","admin":true}}"#),
                "key name",
            ),
            (
                format!(r#"{{"name":"x","sha256":"{hash}","admin":true,"key":"k"}}"#),
                "unknown field",
            ),
        ] {
            fs::write(&path, format!("\n{bad}\n")).unwrap();
            let error = load(&path).unwrap_err().to_string();
            assert!(error.contains("line 2") && error.contains(why), "{error}");
        }
        let one = format!(r#"{{"name":"x","sha256":"{hash}","admin":true}}"#);
        let same_key = format!(r#"{{"name":"y","sha256":"{hash}","admin":true}}"#);
        fs::write(&path, format!("{one}\n{same_key}\n")).unwrap();
        assert!(load(&path).unwrap_err().to_string().contains("same key"));
        fs::write(&path, format!("{one}\n{one}\n")).unwrap();
        assert!(load(&path).unwrap_err().to_string().contains("second key"));
    }

    #[test]
    fn anonymous_and_odd_names_are_refused() {
        for bad in ["", "anonymous", "with space", "é", &"n".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        for good in ["ops", "billing-eu.v2", "svc_account@prod", &"n".repeat(64)] {
            assert!(check_name(good).is_ok(), "{good:?}");
        }
    }
}
