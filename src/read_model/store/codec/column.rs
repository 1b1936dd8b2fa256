//! Column blocks: each ordinal's state, order key and account, 128 to a block.

use super::Malformed;
use crate::domain::AccountId;
use crate::read_model::directory::{ColumnEntry, Listing, OrderKey};

/// Length of one column entry: a state byte, the order key, the account.
pub const COLUMN_ENTRY_LEN: usize = 29;

const SLOT_EMPTY: u8 = 0;
const SLOT_LIVE: u8 = 1;
// 2 marked a customer removed without a trace, which no release wrote.
const SLOT_DELETED: u8 = 3;

/// A column block: [`COLUMN_ENTRY_LEN`] bytes per slot (`None` for a slot not yet assigned).
pub fn encode_column_block(slots: &[Option<ColumnEntry>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(slots.len() * COLUMN_ENTRY_LEN);
    for slot in slots {
        match slot {
            None => out.extend_from_slice(&[SLOT_EMPTY; COLUMN_ENTRY_LEN]),
            Some(ColumnEntry::Live(listing)) | Some(ColumnEntry::Deleted(listing)) => {
                let live = matches!(slot, Some(ColumnEntry::Live(_)));
                out.push(if live { SLOT_LIVE } else { SLOT_DELETED });
                out.extend_from_slice(&listing.key.to_bytes());
                out.extend_from_slice(&listing.account.get().to_be_bytes());
            }
        }
    }
    out
}

/// The slots of a column block.
///
/// # Errors
/// [`Malformed`] when the bytes are not a column block.
pub fn decode_column_block(bytes: &[u8]) -> Result<Vec<Option<ColumnEntry>>, Malformed> {
    if bytes.len() % COLUMN_ENTRY_LEN != 0 {
        return Err(Malformed("a column block is not whole entries"));
    }
    bytes
        .chunks_exact(COLUMN_ENTRY_LEN)
        .map(|entry| match entry[0] {
            SLOT_EMPTY => Ok(None),
            state @ (SLOT_LIVE | SLOT_DELETED) => {
                let key = OrderKey::from_bytes(entry[1..25].try_into().expect("24 bytes"));
                let account = u32::from_be_bytes(entry[25..].try_into().expect("4 bytes"));
                let account = AccountId::parse(i64::from(account))
                    .map_err(|_| Malformed("a column entry's account is out of range"))?;
                let listing = Listing { key, account };
                Ok(Some(if state == SLOT_LIVE {
                    ColumnEntry::Live(listing)
                } else {
                    ColumnEntry::Deleted(listing)
                }))
            }
            _ => Err(Malformed("a column slot has an unknown state")),
        })
        .collect()
}
