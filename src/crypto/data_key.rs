//! Data keys and the keyring of KEKs that wraps them. Each customer has a data key of its own
//! (256 random bits) that seals its personal fields; destroying the key is what erases them.
//! A data key is stored only wrapped: sealed with AES-256-GCM under the newest KEK, the
//! customer's id as associated data, so that a wrapped key cannot be moved to another customer.
//!
//! Sealed bytes, of a wrapped key and of a field alike: a random 96-bit nonce, then the
//! ciphertext with its 16-byte tag. Random nonces are safe well past what one key seals (one
//! data key seals a customer's fields; a KEK wraps one key a customer).

use super::kek_file::{self, Kek, KekFileError};
use crate::domain::CustomerId;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use std::path::Path;
use zeroize::Zeroizing;

/// Bytes in a nonce.
const NONCE_BYTES: usize = 12;

/// Bytes a seal adds to what it seals: the nonce and the tag.
pub const SEAL_OVERHEAD: usize = NONCE_BYTES + 16;

/// What a wrapped data key's associated data starts with: the purpose and its version, so that
/// no other sealed value under a KEK can pass for a data key.
const WRAP_CONTEXT: &[u8] = b"customer-registry data key v1\0";

/// Why a key cannot be made, wrapped or unwrapped, or a value sealed or opened. No variant
/// holds key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The system's random source failed.
    #[error("no random bytes: {0}")]
    Random(String),
    /// The wrapped key names a KEK the keyring does not hold.
    #[error("the key-encryption key {0} is not in the KEK file (removed, or another file)")]
    UnknownKek(String),
    /// The sealed bytes are not what the key and the associated data sealed: another key,
    /// another context, or tampered bytes.
    #[error("the sealed value does not open with this key and context")]
    Inauthentic,
}

/// A customer's data key: 256 random bits, zeroed when dropped, never shown.
pub struct DataKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

impl DataKey {
    /// A fresh random key.
    ///
    /// # Errors
    /// [`CryptoError::Random`] when the system's random source fails.
    pub fn mint() -> Result<Self, CryptoError> {
        let mut key = Zeroizing::new([0; 32]);
        getrandom::fill(key.as_mut()).map_err(|error| CryptoError::Random(error.to_string()))?;
        Ok(Self(key))
    }

    /// `plaintext` sealed under this key, bound to `context` (associated data: what the value
    /// is and whose, so that it cannot be moved elsewhere).
    ///
    /// # Errors
    /// [`CryptoError::Random`] when no nonce can be drawn.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, CryptoError> {
        seal(&self.0, plaintext, context)
    }

    /// What [`DataKey::seal`] sealed with this key and `context`.
    ///
    /// # Errors
    /// [`CryptoError::Inauthentic`] for another key, another context, or altered bytes.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        open(&self.0, sealed, context)
    }
}

/// A data key as stored: the id of the KEK that wrapped it, and the sealed key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// The KEK that unwraps it.
    pub kek_id: String,
    /// The key sealed under that KEK, bound to its customer.
    pub sealed: Vec<u8>,
}

/// The KEKs of a KEK file: the newest wraps, any unwraps what it wrapped.
pub struct Keyring {
    keks: Vec<Kek>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keks.iter().map(|kek| kek.id.as_str()).collect();
        f.debug_struct("Keyring").field("keks", &ids).finish()
    }
}

impl Keyring {
    /// The keyring of the KEK file at `path`.
    ///
    /// # Errors
    /// What [`kek_file::load`] refuses.
    pub fn load(path: &Path) -> Result<Self, KekFileError> {
        Ok(Self {
            keks: kek_file::load(path)?,
        })
    }

    /// `key`, wrapped for `customer` under the newest KEK.
    ///
    /// # Errors
    /// [`CryptoError::Random`] when no nonce can be drawn.
    pub fn wrap(&self, key: &DataKey, customer: CustomerId) -> Result<WrappedKey, CryptoError> {
        let newest = self.keks.last().expect("a loaded KEK file holds a KEK");
        Ok(WrappedKey {
            kek_id: newest.id.clone(),
            sealed: seal(&newest.key, key.0.as_ref(), &wrap_context(customer))?,
        })
    }

    /// The data key that `sealed`, wrapped under the KEK `kek_id`, holds for `customer`.
    ///
    /// # Errors
    /// [`CryptoError::UnknownKek`] when its KEK is not in the file, [`CryptoError::Inauthentic`]
    /// when it was wrapped for another customer or altered.
    pub fn unwrap(
        &self,
        kek_id: &str,
        sealed: &[u8],
        customer: CustomerId,
    ) -> Result<DataKey, CryptoError> {
        let kek = self
            .keks
            .iter()
            .find(|kek| kek.id == kek_id)
            .ok_or_else(|| CryptoError::UnknownKek(kek_id.to_owned()))?;
        let opened = open(&kek.key, sealed, &wrap_context(customer))?;
        let bytes: [u8; 32] = opened
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::Inauthentic)?;
        Ok(DataKey(Zeroizing::new(bytes)))
    }
}

fn wrap_context(customer: CustomerId) -> Vec<u8> {
    [WRAP_CONTEXT, customer.as_bytes()].concat()
}

fn seal(key: &[u8; 32], plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let mut nonce = [0; NONCE_BYTES];
    getrandom::fill(&mut nonce).map_err(|error| CryptoError::Random(error.to_string()))?;
    let cipher = Aes256Gcm::new(key.into());
    let payload = Payload {
        msg: plaintext,
        aad: context,
    };
    let ciphertext = cipher
        .encrypt(&Nonce::from(nonce), payload)
        .expect("AES-GCM seals any value shorter than 64 GiB");
    Ok([nonce.as_slice(), &ciphertext].concat())
}

fn open(key: &[u8; 32], sealed: &[u8], context: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(CryptoError::Inauthentic);
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
    let nonce: [u8; NONCE_BYTES] = nonce.try_into().expect("split at the nonce's length");
    let cipher = Aes256Gcm::new(key.into());
    let payload = Payload {
        msg: ciphertext,
        aad: context,
    };
    cipher
        .decrypt(&Nonce::from(nonce), payload)
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Inauthentic)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring(dir: &Path) -> (std::path::PathBuf, Keyring) {
        let path = dir.join("keks.jsonl");
        kek_file::add(&path).unwrap();
        let keyring = Keyring::load(&path).unwrap();
        (path, keyring)
    }

    #[test]
    fn a_wrapped_key_unwraps_for_its_customer_only() {
        let dir = tempfile::tempdir().unwrap();
        let (_, keyring) = keyring(dir.path());
        let (customer, other) = (CustomerId::new_v7(), CustomerId::new_v7());
        let key = DataKey::mint().unwrap();
        let wrapped = keyring.wrap(&key, customer).unwrap();
        assert_eq!(wrapped.sealed.len(), 32 + SEAL_OVERHEAD);
        let unwrapped = keyring
            .unwrap(&wrapped.kek_id, &wrapped.sealed, customer)
            .unwrap();
        assert_eq!(unwrapped.0.as_ref(), key.0.as_ref());
        assert!(matches!(
            keyring.unwrap(&wrapped.kek_id, &wrapped.sealed, other),
            Err(CryptoError::Inauthentic)
        ));
        let mut altered = wrapped.clone();
        altered.sealed[20] ^= 1;
        assert!(matches!(
            keyring.unwrap(&altered.kek_id, &altered.sealed, customer),
            Err(CryptoError::Inauthentic)
        ));
        let shown = format!("{key:?} {keyring:?} {unwrapped:?}");
        assert!(!shown.contains(&format!("{:?}", key.0.as_ref())), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }

    #[test]
    fn after_a_rotation_the_newest_kek_wraps_and_the_older_still_unwraps() {
        let dir = tempfile::tempdir().unwrap();
        let (path, before) = keyring(dir.path());
        let customer = CustomerId::new_v7();
        let key = DataKey::mint().unwrap();
        let old = before.wrap(&key, customer).unwrap();
        let newest = kek_file::add(&path).unwrap();
        let after = Keyring::load(&path).unwrap();
        let new = after.wrap(&key, customer).unwrap();
        assert_eq!(new.kek_id, newest);
        assert_ne!(old.kek_id, new.kek_id);
        for wrapped in [&old, &new] {
            assert_eq!(
                after
                    .unwrap(&wrapped.kek_id, &wrapped.sealed, customer)
                    .unwrap()
                    .0
                    .as_ref(),
                key.0.as_ref()
            );
        }
        assert!(
            matches!(before.unwrap(&new.kek_id, &new.sealed, customer), Err(CryptoError::UnknownKek(id)) if id == newest)
        );
    }

    #[test]
    fn a_sealed_value_opens_with_its_key_and_context_only() {
        let key = DataKey::mint().unwrap();
        let sealed = key.seal("Émile".as_bytes(), b"event-1/firstName").unwrap();
        assert_eq!(sealed.len(), "Émile".len() + SEAL_OVERHEAD);
        assert_eq!(
            key.open(&sealed, b"event-1/firstName").unwrap().as_slice(),
            "Émile".as_bytes()
        );
        assert_ne!(
            sealed,
            key.seal("Émile".as_bytes(), b"event-1/firstName").unwrap(),
            "fresh nonce"
        );
        assert!(matches!(
            key.open(&sealed, b"event-2/firstName"),
            Err(CryptoError::Inauthentic)
        ));
        let other = DataKey::mint().unwrap();
        assert!(matches!(
            other.open(&sealed, b"event-1/firstName"),
            Err(CryptoError::Inauthentic)
        ));
        assert!(matches!(
            key.open(&sealed[..10], b"event-1/firstName"),
            Err(CryptoError::Inauthentic)
        ));
    }
}
