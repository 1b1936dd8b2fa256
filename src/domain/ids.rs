//! The identifiers a customer is known by: its own id and its merchant account's.

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// A customer's identifier, assigned by the server: a UUIDv7 (time-ordered), or a UUIDv5 derived
/// from the account and the create's `code` or, without one, its `Idempotency-Key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CustomerId(Uuid);

impl CustomerId {
    /// A fresh time-ordered id.
    pub fn new_v7() -> Self {
        Self(Uuid::now_v7())
    }

    /// The id's 16 bytes, as stored in read-model keys.
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    /// Whether `text` is this id's text form (hyphenated, lower case), without allocating.
    pub fn is_written_as(&self, text: &str) -> bool {
        let mut buffer = Uuid::encode_buffer();
        text == self.0.hyphenated().encode_lower(&mut buffer)
    }

    /// Rebuilds an id from the 16 bytes of a read-model key.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(Uuid::from_bytes(bytes))
    }
}

impl fmt::Display for CustomerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for CustomerId {
    type Err = uuid::Error;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(text).map(Self)
    }
}

/// The merchant account a customer belongs to: a positive 32-bit integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct AccountId(u32);

impl AccountId {
    /// The largest account id: the seed's `Integer` is a signed 32-bit value.
    pub const MAX: i64 = i32::MAX as i64;

    /// Accepts 1..=2147483647.
    ///
    /// # Errors
    /// Returns the rejected value when it is zero, negative or past [`AccountId::MAX`].
    pub fn parse(value: i64) -> Result<Self, i64> {
        if (1..=Self::MAX).contains(&value) {
            Ok(Self(value as u32))
        } else {
            Err(value)
        }
    }

    /// The id as a number.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl<'de> Deserialize<'de> for AccountId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = i64::deserialize(deserializer)?;
        Self::parse(value).map_err(|value| {
            serde::de::Error::custom(format!("accountId {value} is not in 1..={}", Self::MAX))
        })
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
