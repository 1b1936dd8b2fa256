//! Byte encodings of everything the store writes, one file each: customer records and their
//! blocks (`record.rs`), column blocks of order keys (`column.rs`), posting values (`posting.rs`)
//! and index blocks (`index_block.rs`); here, what they share. Integers are LEB128 varints
//! unless a key needs them to sort (then big-endian, in `store/mod.rs`).

mod column;
mod index_block;
mod packing;
mod posting;
mod record;

pub use column::{decode_column_block, encode_column_block};
pub use index_block::{IndexBlockEntries, IndexBlockWriter};
pub use packing::{pack_block, unpack_block_into};
pub use posting::{encode_posting, for_each_chunk, is_dense, OrdinalSink, CHUNK_ORDINALS};
pub use record::{
    decode_record, decode_record_block, encode_record, encode_record_block, record_block_slot,
};

/// Bytes that do not decode as what the store wrote.
#[derive(Debug, thiserror::Error)]
#[error("stored bytes are malformed: {0}")]
pub struct Malformed(pub &'static str);

/// Reads values off the front of a byte slice.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub(crate) fn varint(&mut self) -> Result<u64, Malformed> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self
                .bytes
                .split_first()
                .ok_or(Malformed("a varint is cut short"))?;
            self.bytes = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Malformed("a varint is longer than 64 bits"))
    }

    pub(crate) fn bytes(&mut self, len: usize) -> Result<&'a [u8], Malformed> {
        if self.bytes.len() < len {
            return Err(Malformed("a field is cut short"));
        }
        let (taken, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(taken)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], Malformed> {
        Ok(self.bytes(N)?.try_into().expect("bytes(N) returns N bytes"))
    }

    pub(crate) fn length_prefixed(&mut self) -> Result<&'a [u8], Malformed> {
        let len = self.varint()?;
        self.bytes(usize::try_from(len).map_err(|_| Malformed("a length exceeds memory"))?)
    }
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

pub(crate) fn put_length_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Signed integers as varints, small magnitudes short either side of zero.
pub(crate) fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

pub(crate) fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}
