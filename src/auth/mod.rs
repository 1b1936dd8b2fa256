//! Who is asking, and what they may reach: API keys presented as `Authorization: Bearer <key>`,
//! checked against the key file's hashes, each key scoped to merchant accounts or `admin`.
//!
//! The `accountId` of a customer partitions the registry between merchants: a key scoped to
//! accounts creates, finds and reads only in those. The HTTP layer asks [`Authenticator`] for the
//! [`Caller`] of each request and applies the scope; the key's name becomes the events' `actor`.

pub mod key_file;
pub mod keys_tool;
mod reload;

pub use reload::watch_key_file;

use crate::domain::AccountId;
use key_file::{KeyEntry, KeyFileError};
use parking_lot::RwLock;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The actor of requests served without authentication (`serve --no-auth`).
pub const ANONYMOUS: &str = "anonymous";

/// The longest `Authorization` value looked at; a generated key's header is about 75 bytes.
pub const MAX_CREDENTIALS: usize = 1024;

/// What a key may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every account, and the admin endpoints.
    Admin,
    /// These accounts only (sorted, without repeats, never empty).
    Accounts(Vec<AccountId>),
}

impl Scope {
    /// A scope of `accounts`, sorted and without repeats.
    pub fn accounts(mut accounts: Vec<AccountId>) -> Self {
        accounts.sort_unstable();
        accounts.dedup();
        Scope::Accounts(accounts)
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scope::Admin => f.write_str("admin"),
            Scope::Accounts(accounts) => {
                let listed: Vec<String> = accounts.iter().map(ToString::to_string).collect();
                write!(f, "accounts {}", listed.join(","))
            }
        }
    }
}

/// The authenticated principal of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    name: String,
    scope: Scope,
}

impl Caller {
    /// The caller of every request when authentication is off: may do everything.
    pub fn anonymous() -> Self {
        Self {
            name: ANONYMOUS.to_owned(),
            scope: Scope::Admin,
        }
    }

    /// The key's name: the `actor` of the events this caller causes.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the caller may reach the customers of `account`.
    pub fn may_reach(&self, account: AccountId) -> bool {
        match &self.scope {
            Scope::Admin => true,
            Scope::Accounts(accounts) => accounts.binary_search(&account).is_ok(),
        }
    }

    /// Whether the caller may use the admin endpoints.
    pub fn is_admin(&self) -> bool {
        self.scope == Scope::Admin
    }

    /// The accounts a find by this caller is confined to; `None` for every account.
    pub fn visible_accounts(&self) -> Option<&[AccountId]> {
        match &self.scope {
            Scope::Admin => None,
            Scope::Accounts(accounts) => Some(accounts),
        }
    }
}

/// Why a request has no caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("this endpoint needs an API key: send Authorization: Bearer <key>")]
    Missing,
    /// An `Authorization` header that is not `Bearer <key>`.
    #[error("Authorization must be Bearer <key>")]
    Malformed,
    /// A key the key file does not hold (unknown, or revoked).
    #[error("the API key is not valid (unknown or revoked)")]
    UnknownKey,
}

/// Turns a request's `Authorization` header into its [`Caller`]. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    keys: Option<Arc<KeyRing>>,
}

/// The keys of the key file, replaced whole when the file is read again.
struct KeyRing {
    path: PathBuf,
    entries: RwLock<Arc<Vec<KeyEntry>>>,
}

impl Authenticator {
    /// No authentication: every request is [`Caller::anonymous`].
    pub fn disabled() -> Self {
        Self { keys: None }
    }

    /// Keys from the file at `path`.
    ///
    /// # Errors
    /// The file is missing, unreadable or invalid.
    pub fn from_file(path: &Path) -> Result<Self, KeyFileError> {
        let entries = key_file::load(path)?;
        Ok(Self {
            keys: Some(Arc::new(KeyRing {
                path: path.to_owned(),
                entries: RwLock::new(Arc::new(entries)),
            })),
        })
    }

    /// Whether requests need a key.
    pub fn is_enabled(&self) -> bool {
        self.keys.is_some()
    }

    /// The caller presenting `authorization` (the header's value, if any).
    ///
    /// # Errors
    /// [`AuthError`] when keys are required and none valid is presented.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, AuthError> {
        let Some(keys) = &self.keys else {
            return Ok(Caller::anonymous());
        };
        let presented = bearer_token(authorization.ok_or(AuthError::Missing)?)?;
        let digest = key_file::digest(presented);
        let entries = Arc::clone(&keys.entries.read());
        // Every entry is compared, each in constant time, so how long the check takes says
        // nothing about how close a guess came to any key.
        let mut found = None;
        for entry in entries.iter() {
            if bool::from(entry.sha256.ct_eq(&digest)) {
                found = Some(entry);
            }
        }
        found
            .map(|entry| Caller {
                name: entry.name.clone(),
                scope: entry.scope.clone(),
            })
            .ok_or(AuthError::UnknownKey)
    }

    /// Reads the key file again and replaces the keys; on failure the keys in use stay.
    /// Returns how many keys are now in use.
    ///
    /// # Errors
    /// The file is missing, unreadable or invalid.
    pub fn reload(&self) -> Result<usize, KeyFileError> {
        let Some(keys) = &self.keys else {
            return Ok(0);
        };
        let entries = key_file::load(&keys.path)?;
        let count = entries.len();
        *keys.entries.write() = Arc::new(entries);
        Ok(count)
    }

    /// The key file, when there is one.
    pub fn key_file(&self) -> Option<&Path> {
        self.keys.as_ref().map(|keys| keys.path.as_path())
    }
}

/// The key in `Bearer <key>` (the scheme's name in any case, RFC 9110 §11.1).
fn bearer_token(authorization: &str) -> Result<&str, AuthError> {
    if authorization.len() > MAX_CREDENTIALS {
        return Err(AuthError::Malformed);
    }
    let (scheme, token) = authorization
        .trim()
        .split_once(' ')
        .ok_or(AuthError::Malformed)?;
    let token = token.trim_start();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(AuthError::Malformed);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(id: i64) -> AccountId {
        AccountId::parse(id).unwrap()
    }

    #[test]
    fn keys_from_the_file_name_their_caller_and_scope() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.jsonl");
        let scoped = key_file::add(&path, "eu", Scope::accounts(vec![account(42)])).unwrap();
        let admin = key_file::add(&path, "ops", Scope::Admin).unwrap();
        let auth = Authenticator::from_file(&path).unwrap();
        let caller = auth
            .authenticate(Some(&format!("Bearer {scoped}")))
            .unwrap();
        assert_eq!(caller.name(), "eu");
        assert!(caller.may_reach(account(42)) && !caller.may_reach(account(43)));
        assert!(!caller.is_admin());
        assert_eq!(caller.visible_accounts(), Some(&[account(42)][..]));
        let caller = auth
            .authenticate(Some(&format!("bearer  {admin}")))
            .unwrap();
        assert!(caller.is_admin() && caller.may_reach(account(43)));
        assert_eq!(caller.visible_accounts(), None);
    }

    #[test]
    fn missing_malformed_and_unknown_keys_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.jsonl");
        let key = key_file::add(&path, "eu", Scope::Admin).unwrap();
        let auth = Authenticator::from_file(&path).unwrap();
        assert_eq!(auth.authenticate(None), Err(AuthError::Missing));
        for malformed in [
            "",
            "Bearer",
            "Bearer ",
            &key,
            &format!("Basic {key}"),
            "Bearer a b",
        ] {
            assert_eq!(
                auth.authenticate(Some(malformed)),
                Err(AuthError::Malformed),
                "{malformed:?}"
            );
        }
        let unknown = format!("Bearer {}x", key);
        assert_eq!(
            auth.authenticate(Some(&unknown)),
            Err(AuthError::UnknownKey)
        );
    }

    #[test]
    fn a_reload_revokes_and_a_failed_one_keeps_the_keys_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.jsonl");
        let first = key_file::add(&path, "first", Scope::Admin).unwrap();
        let auth = Authenticator::from_file(&path).unwrap();
        let second = key_file::add(&path, "second", Scope::Admin).unwrap();
        let header = |key: &str| format!("Bearer {key}");
        assert_eq!(
            auth.authenticate(Some(&header(&second))),
            Err(AuthError::UnknownKey)
        );
        assert_eq!(auth.reload().unwrap(), 2);
        assert!(auth.authenticate(Some(&header(&second))).is_ok());
        key_file::revoke(&path, "first").unwrap();
        auth.reload().unwrap();
        assert_eq!(
            auth.authenticate(Some(&header(&first))),
            Err(AuthError::UnknownKey)
        );
        std::fs::write(&path, "not json\n").unwrap();
        assert!(auth.reload().is_err());
        assert!(auth.authenticate(Some(&header(&second))).is_ok());
    }

    #[test]
    fn without_a_key_file_everyone_is_the_anonymous_admin() {
        let auth = Authenticator::disabled();
        let caller = auth.authenticate(None).unwrap();
        assert_eq!(caller.name(), ANONYMOUS);
        assert!(caller.is_admin());
    }
}
