//! Files that keep what they hold: renames that survive a power cut (a rename is a change to the
//! directory holding the names, so that directory is synced after it: a crash could otherwise
//! bring back the old name, or neither), and files only their owner may read.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Renames `from` to `to`, then syncs the directory holding `to`.
///
/// # Errors
/// The rename's or the sync's I/O error.
pub fn rename(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::rename(from, to)?;
    sync_parent(to)
}

/// Syncs the directory holding `path`, so that a name made or changed in it is on disk.
///
/// # Errors
/// When the directory cannot be opened or synced.
pub fn sync_parent(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()
}

/// Options that create a file readable and writable by its owner only (mode 0600), for files
/// that hold secrets or their digests.
pub fn private_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_durable_rename_moves_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&from, b"x").unwrap();
        rename(&from, &to).unwrap();
        assert!(!from.exists());
        assert_eq!(std::fs::read(&to).unwrap(), b"x");
        assert!(rename(&from, &to).is_err(), "nothing left to move");
    }
}
