//! The records of the keys topic (`<topic>.keys`) and their wire form: a data key record per key
//! (Kafka key `<customerId>/<keyId>`), a tombstone when a key is destroyed (the same key, no
//! value), and an erased marker per erased customer (Kafka key `<customerId>`), which is never
//! removed. The contract is in `events/README.md`.

use super::data_key::WrappedKey;
use crate::domain::CustomerId;
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;

/// Which of a customer's data keys: 64 random bits, 16 lower-case hex digits on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub u64);

impl KeyId {
    /// A fresh random id.
    ///
    /// # Errors
    /// A sentence when the system's random source fails.
    pub fn random() -> Result<Self, String> {
        let mut bytes = [0; 8];
        getrandom::fill(&mut bytes).map_err(|error| error.to_string())?;
        Ok(Self(u64::from_be_bytes(bytes)))
    }

    /// Reads the wire form.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != 16
            || !text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return None;
        }
        u64::from_str_radix(text, 16).ok().map(Self)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// One record of the keys topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRecord {
    /// A data key of `customer`'s, wrapped under a KEK.
    DataKey {
        /// Whose.
        customer: CustomerId,
        /// Which.
        key_id: KeyId,
        /// The key, wrapped.
        wrapped: WrappedKey,
        /// When it was made.
        minted_at: DateTime<Utc>,
    },
    /// The data key was destroyed (a tombstone).
    Destroyed {
        /// Whose.
        customer: CustomerId,
        /// Which.
        key_id: KeyId,
    },
    /// Every key of `customer`'s is destroyed, and none may be made again.
    Erased {
        /// Whose.
        customer: CustomerId,
        /// When.
        erased_at: DateTime<Utc>,
        /// The erasure request.
        request_id: String,
    },
}

/// Why a record of the keys topic is not one this build reads. Never holds key material.
#[derive(Debug, thiserror::Error)]
#[error("keys topic record: {0}")]
pub struct KeyRecordError(String);

/// The JSON value of a data key record or an erased marker, as written.
#[derive(Serialize)]
#[serde(tag = "type", rename_all_fields = "camelCase")]
enum Value {
    DataKey {
        customer_id: CustomerId,
        key_id: String,
        kek_id: String,
        wrapped_key: String,
        minted_at: String,
    },
    KeysErased {
        customer_id: CustomerId,
        erased_at: String,
        request_id: String,
    },
}

/// The JSON value of a record as read: the members of either kind in one flat struct, so that
/// one pass reads it (an internally tagged enum buffers every member before it can choose its
/// variant, which made reading the keys topic at start-up cost twice as much); members a later
/// version adds are ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReadValue<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    customer_id: CustomerId,
    #[serde(borrow)]
    key_id: Option<Cow<'a, str>>,
    kek_id: Option<String>,
    #[serde(borrow)]
    wrapped_key: Option<Cow<'a, str>>,
    #[serde(borrow)]
    minted_at: Option<Cow<'a, str>>,
    #[serde(borrow)]
    erased_at: Option<Cow<'a, str>>,
    request_id: Option<String>,
}

fn millis(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl KeyRecord {
    /// The record's Kafka key.
    pub fn kafka_key(&self) -> String {
        match self {
            KeyRecord::DataKey {
                customer, key_id, ..
            }
            | KeyRecord::Destroyed { customer, key_id } => format!("{customer}/{key_id}"),
            KeyRecord::Erased { customer, .. } => customer.to_string(),
        }
    }

    /// The record's Kafka value; `None` for a tombstone.
    pub fn value(&self) -> Option<Vec<u8>> {
        let value = match self {
            KeyRecord::DataKey {
                customer,
                key_id,
                wrapped,
                minted_at,
            } => Value::DataKey {
                customer_id: *customer,
                key_id: key_id.to_string(),
                kek_id: wrapped.kek_id.clone(),
                wrapped_key: base64::engine::general_purpose::STANDARD.encode(&wrapped.sealed),
                minted_at: millis(*minted_at),
            },
            KeyRecord::Destroyed { .. } => return None,
            KeyRecord::Erased {
                customer,
                erased_at,
                request_id,
            } => Value::KeysErased {
                customer_id: *customer,
                erased_at: millis(*erased_at),
                request_id: request_id.clone(),
            },
        };
        Some(serde_json::to_vec(&value).expect("plain data always serialises"))
    }

    /// The record with Kafka key `key` and value `value`.
    ///
    /// # Errors
    /// [`KeyRecordError`] when they are not a record this build reads, or disagree.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Self, KeyRecordError> {
        let fail = |what: &str| KeyRecordError(what.to_owned());
        let key = std::str::from_utf8(key).map_err(|_| fail("the key is not UTF-8"))?;
        let (customer, key_id) = match key.split_once('/') {
            Some((customer, key_id)) => (customer, Some(key_id)),
            None => (key, None),
        };
        let customer: CustomerId = customer
            .parse()
            .map_err(|_| fail("the key does not start with a customer id"))?;
        let key_id = key_id
            .map(|text| {
                KeyId::parse(text).ok_or_else(|| fail("the key's key id is not 16 hex digits"))
            })
            .transpose()?;
        let Some(value) = value else {
            let key_id = key_id.ok_or_else(|| fail("a tombstone must name a key"))?;
            return Ok(KeyRecord::Destroyed { customer, key_id });
        };
        let value: ReadValue = serde_json::from_slice(value)
            .map_err(|_| fail("the value is not a DataKey or KeysErased record"))?;
        let time = |text: Option<Cow<'_, str>>| {
            text.and_then(|text| DateTime::parse_from_rfc3339(&text).ok())
                .map(|time| time.with_timezone(&Utc))
                .ok_or_else(|| fail("a time is missing or not RFC 3339"))
        };
        if value.customer_id != customer {
            return Err(fail("the value does not match its key"));
        }
        match (value.kind.as_ref(), key_id) {
            ("DataKey", Some(key_id))
                if value.key_id.as_deref().and_then(KeyId::parse) == Some(key_id) =>
            {
                let (Some(kek_id), Some(wrapped_key)) = (value.kek_id, value.wrapped_key) else {
                    return Err(fail("a DataKey record lacks kekId or wrappedKey"));
                };
                let sealed = base64::engine::general_purpose::STANDARD
                    .decode(wrapped_key.as_bytes())
                    .map_err(|_| fail("wrappedKey is not base64"))?;
                Ok(KeyRecord::DataKey {
                    customer,
                    key_id,
                    wrapped: WrappedKey { kek_id, sealed },
                    minted_at: time(value.minted_at)?,
                })
            }
            ("KeysErased", None) => Ok(KeyRecord::Erased {
                customer,
                erased_at: time(value.erased_at)?,
                request_id: value
                    .request_id
                    .ok_or_else(|| fail("a KeysErased record lacks requestId"))?,
            }),
            _ => Err(fail("the value does not match its key")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_record_survives_its_wire_form_and_mismatches_are_refused() {
        let customer = CustomerId::new_v7();
        let key_id = KeyId::random().unwrap();
        let at = DateTime::from_timestamp_millis(1_795_624_843_120).unwrap();
        let records = [
            KeyRecord::DataKey {
                customer,
                key_id,
                wrapped: WrappedKey {
                    kek_id: "kek-0011223344556677".into(),
                    sealed: vec![7; 60],
                },
                minted_at: at,
            },
            KeyRecord::Destroyed { customer, key_id },
            KeyRecord::Erased {
                customer,
                erased_at: at,
                request_id: "erasure-1".into(),
            },
        ];
        for record in records {
            let (key, value) = (record.kafka_key(), record.value());
            assert_eq!(
                KeyRecord::decode(key.as_bytes(), value.as_deref()).unwrap(),
                record
            );
        }
        let data_key = records_value(customer, key_id);
        let other = format!("{}/{key_id}", CustomerId::new_v7());
        assert!(KeyRecord::decode(other.as_bytes(), Some(&data_key)).is_err());
        assert!(KeyRecord::decode(customer.to_string().as_bytes(), None).is_err());
        assert!(KeyRecord::decode(b"garbage", Some(b"{}")).is_err());
    }

    #[test]
    fn members_a_later_version_adds_are_ignored_and_missing_ones_refused() {
        let customer = CustomerId::new_v7();
        let key_id = KeyId::random().unwrap();
        let key = format!("{customer}/{key_id}");
        let mut value: serde_json::Value =
            serde_json::from_slice(&records_value(customer, key_id)).unwrap();
        value["rotatedFrom"] = "kek-0".into();
        let read = KeyRecord::decode(key.as_bytes(), Some(value.to_string().as_bytes()));
        assert!(matches!(read, Ok(KeyRecord::DataKey { .. })));
        for member in [
            "kekId",
            "wrappedKey",
            "mintedAt",
            "keyId",
            "customerId",
            "type",
        ] {
            let mut lacking = value.clone();
            lacking.as_object_mut().unwrap().remove(member);
            let read = KeyRecord::decode(key.as_bytes(), Some(lacking.to_string().as_bytes()));
            assert!(read.is_err(), "a DataKey record without {member} was read");
        }
        let marker = serde_json::json!({
            "type": "KeysErased", "customerId": customer, "erasedAt": "2026-12-06T20:00:00.000Z",
        });
        let read = KeyRecord::decode(
            customer.to_string().as_bytes(),
            Some(marker.to_string().as_bytes()),
        );
        assert!(read.is_err(), "a marker without its request id was read");
    }

    fn records_value(customer: CustomerId, key_id: KeyId) -> Vec<u8> {
        KeyRecord::DataKey {
            customer,
            key_id,
            wrapped: WrappedKey {
                kek_id: "kek-1".into(),
                sealed: vec![1; 60],
            },
            minted_at: Utc::now(),
        }
        .value()
        .unwrap()
    }
}
