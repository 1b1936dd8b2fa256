//! `customer-registry keys add|list|revoke`: the key file edited from the command line.

use super::key_file::{self, KeyFileError};
use super::Scope;
use crate::config::KeysCommand;
use std::io::Write;

/// Runs a `keys` subcommand, writing what it shows to `out`.
///
/// # Errors
/// [`KeyFileError`] when the file cannot be read or written, or the name is invalid, taken
/// (`add`) or unknown (`revoke`).
pub fn run(command: &KeysCommand, out: &mut impl Write) -> Result<(), KeyFileError> {
    let io = |path: &std::path::Path| {
        let path = path.to_owned();
        move |source| KeyFileError::Io { path, source }
    };
    match command {
        KeysCommand::Add(settings) => {
            let scope = if settings.admin {
                Scope::Admin
            } else {
                Scope::accounts(settings.accounts.clone())
            };
            let shown_scope = scope.to_string();
            let key = key_file::add(&settings.file, &settings.name, scope)?;
            // The key alone on the last line, so a script can take it with `tail -n 1`.
            writeln!(
                out,
                "added key {:?} ({shown_scope}) to {}; it is shown once, here:\n{key}",
                settings.name,
                settings.file.display()
            )
            .map_err(io(&settings.file))
        }
        KeysCommand::List(settings) => {
            let entries = key_file::load(&settings.file)?;
            for entry in &entries {
                let line = if settings.json {
                    let scope = match &entry.scope {
                        Scope::Admin => serde_json::json!({"admin": true}),
                        Scope::Accounts(accounts) => serde_json::json!({"accounts": accounts}),
                    };
                    serde_json::json!({"name": entry.name, "scope": scope}).to_string()
                } else {
                    format!("{:<width$}  {}", entry.name, entry.scope, width = 24)
                };
                writeln!(out, "{line}").map_err(io(&settings.file))?;
            }
            Ok(())
        }
        KeysCommand::Revoke(settings) => {
            key_file::revoke(&settings.file, &settings.name)?;
            writeln!(
                out,
                "revoked key {:?} in {}",
                settings.name,
                settings.file.display()
            )
            .map_err(io(&settings.file))
        }
    }
}
