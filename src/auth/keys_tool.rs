//! `customer-registry keys add|list|revoke`: the key file edited from the command line.

use super::key_file::{self, KeyFileError};
use super::Scope;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What a `keys` subcommand asks (`config::KeysCommand` gives it from the command line).
#[derive(Debug, Clone)]
pub enum KeysAction {
    /// Add a key named `name` with `scope` to `file` (created when missing).
    Add {
        /// The key file.
        file: PathBuf,
        /// The key's name.
        name: String,
        /// What it may reach.
        scope: Scope,
    },
    /// List the keys of `file`, as JSON Lines when `json`.
    List {
        /// The key file.
        file: PathBuf,
        /// One JSON object a key instead of a table.
        json: bool,
    },
    /// Remove the key named `name` from `file`.
    Revoke {
        /// The key file.
        file: PathBuf,
        /// The key's name.
        name: String,
    },
}

/// Runs a `keys` subcommand, writing what it shows to `out`.
///
/// # Errors
/// [`KeyFileError`] when the file cannot be read or written, or the name is invalid, taken
/// (`add`) or unknown (`revoke`).
pub fn run(action: &KeysAction, out: &mut impl Write) -> Result<(), KeyFileError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| KeyFileError::Io { path, source }
    };
    match action {
        KeysAction::Add { file, name, scope } => {
            let shown_scope = scope.to_string();
            let key = key_file::add(file, name, scope.clone())?;
            // The key alone on the last line, so a script can take it with `tail -n 1`.
            writeln!(
                out,
                "added key {name:?} ({shown_scope}) to {}; it is shown once, here:\n{key}",
                file.display()
            )
            .map_err(io(file))
        }
        KeysAction::List { file, json } => {
            let entries = key_file::load(file)?;
            for entry in &entries {
                let line = if *json {
                    let scope = match &entry.scope {
                        Scope::Admin => serde_json::json!({"admin": true}),
                        Scope::Accounts(accounts) => serde_json::json!({"accounts": accounts}),
                    };
                    serde_json::json!({"name": entry.name, "scope": scope}).to_string()
                } else {
                    format!("{:<width$}  {}", entry.name, entry.scope, width = 24)
                };
                writeln!(out, "{line}").map_err(io(file))?;
            }
            Ok(())
        }
        KeysAction::Revoke { file, name } => {
            key_file::revoke(file, name)?;
            writeln!(out, "revoked key {name:?} in {}", file.display()).map_err(io(file))
        }
    }
}
