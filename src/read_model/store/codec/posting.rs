//! Posting values: one term's ordinals within a chunk, as a delta-coded list or a bitset, and
//! the sink that gathers many of them.

use super::{put_varint, Malformed, Reader};
use roaring::RoaringBitmap;

/// Ordinals per posting chunk: a chunk's bitset is 4 KiB, small enough for a sled value that
/// never makes sled write a node out as a separate file.
pub const CHUNK_ORDINALS: u32 = 1 << 15;

/// Up to this many ordinals a chunk is stored as a delta-coded list; past it, as a bitset.
const LIST_LIMIT: u64 = 1024;

const POSTING_LIST: u8 = 0;
const POSTING_BITSET: u8 = 1;

/// The ordinals of one chunk (all in `chunk * CHUNK_ORDINALS ..`, ascending), as a posting
/// value.
pub fn encode_posting(chunk: u32, ordinals: &[u32], out: &mut Vec<u8>) {
    let base = chunk * CHUNK_ORDINALS;
    if ordinals.len() as u64 <= LIST_LIMIT {
        out.push(POSTING_LIST);
        put_varint(out, ordinals.len() as u64);
        let mut previous = base;
        for &ordinal in ordinals {
            put_varint(out, u64::from(ordinal - previous));
            previous = ordinal;
        }
    } else {
        out.push(POSTING_BITSET);
        let start = out.len();
        out.resize(start + (CHUNK_ORDINALS / 8) as usize, 0);
        for &ordinal in ordinals {
            let at = ordinal - base;
            out[start + (at / 8) as usize] |= 1 << (at % 8);
        }
    }
}

/// Whether a posting value is a bitset: a dense chunk of a term with many ordinals.
pub fn is_dense(posting: &[u8]) -> bool {
    posting.first() == Some(&POSTING_BITSET)
}

/// Sorted ordinals, chunk by chunk: calls `each(chunk, ordinals of that chunk)`, reusing one
/// buffer for all.
///
/// # Errors
/// The first error `each` returns.
pub fn for_each_chunk<E>(
    ordinals: impl IntoIterator<Item = u32>,
    buffer: &mut Vec<u32>,
    mut each: impl FnMut(u32, &[u32]) -> Result<(), E>,
) -> Result<(), E> {
    buffer.clear();
    let mut chunk = 0;
    for ordinal in ordinals {
        if ordinal / CHUNK_ORDINALS != chunk && !buffer.is_empty() {
            each(chunk, buffer)?;
            buffer.clear();
        }
        chunk = ordinal / CHUNK_ORDINALS;
        buffer.push(ordinal);
    }
    if !buffer.is_empty() {
        each(chunk, buffer)?;
    }
    Ok(())
}

/// Listed ordinals past this many are gathered in a bitset over their span (when it is at most
/// 64 bits an ordinal), not sorted.
const SPAN_BITSET_MIN: usize = 4_096;

/// Gathers the ordinals of many posting values: listed ordinals are pushed to a vector and
/// sorted once at the end, bitsets OR'ed in whole. (Inserting listed ordinals one by one into a
/// bitmap moved its arrays on every insert: most of what reading a long term range cost.)
#[derive(Default)]
pub struct OrdinalSink {
    listed: Vec<u32>,
    dense: RoaringBitmap,
}

impl OrdinalSink {
    /// How many listed ordinals were added so far (duplicates counted).
    pub fn listed(&self) -> usize {
        self.listed.len()
    }

    /// Adds the ordinals of a posting value of `chunk`.
    ///
    /// # Errors
    /// [`Malformed`] when the bytes are not a posting value of that chunk.
    pub fn add(&mut self, chunk: u32, bytes: &[u8]) -> Result<(), Malformed> {
        let base = chunk * CHUNK_ORDINALS;
        let (&kind, rest) = bytes.split_first().ok_or(Malformed("a posting is empty"))?;
        match kind {
            POSTING_LIST => {
                let mut reader = Reader::new(rest);
                let count = reader.varint()?;
                let mut ordinal = base;
                for _ in 0..count {
                    let delta = u32::try_from(reader.varint()?)
                        .map_err(|_| Malformed("a posting delta exceeds 32 bits"))?;
                    ordinal = ordinal
                        .checked_add(delta)
                        .filter(|ordinal| *ordinal < base + CHUNK_ORDINALS)
                        .ok_or(Malformed("a posting leaves its chunk"))?;
                    self.listed.push(ordinal);
                }
            }
            POSTING_BITSET if rest.len() == (CHUNK_ORDINALS / 8) as usize => {
                self.dense |= RoaringBitmap::from_lsb0_bytes(base, rest);
            }
            _ => return Err(Malformed("a posting has an unknown kind")),
        }
        Ok(())
    }

    /// Every ordinal added. Many listed ordinals (a short prefix's range) are set as bits in a
    /// bitset over their span, which makes a bitmap in one pass; few are sorted.
    pub fn into_bitmap(mut self) -> RoaringBitmap {
        let (Some(&low), Some(&high)) = (self.listed.iter().min(), self.listed.iter().max()) else {
            return self.dense;
        };
        // Byte-aligned, or the bitmap is built by shifting every byte.
        let low = low & !7;
        let span = (high - low) as usize + 1;
        let listed = if self.listed.len() >= SPAN_BITSET_MIN && span / 64 <= self.listed.len() {
            let mut bits = vec![0u8; span.div_ceil(8)];
            for ordinal in &self.listed {
                let at = (ordinal - low) as usize;
                bits[at / 8] |= 1 << (at % 8);
            }
            RoaringBitmap::from_lsb0_bytes(low, &bits)
        } else {
            self.listed.sort_unstable();
            self.listed.dedup();
            RoaringBitmap::from_sorted_iter(self.listed).expect("sorted and deduplicated")
        };
        self.dense | listed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postings_read_back_as_lists_and_bitsets() {
        for count in [1u32, 3, 1024, 1025, CHUNK_ORDINALS] {
            let chunk = 3;
            let ordinals: RoaringBitmap = (0..count)
                .map(|n| chunk * CHUNK_ORDINALS + n * (CHUNK_ORDINALS / count))
                .collect();
            let mut bytes = Vec::new();
            encode_posting(chunk, &ordinals.iter().collect::<Vec<_>>(), &mut bytes);
            assert!(bytes.len() <= 4097, "{count}: {} bytes", bytes.len());
            let mut sink = OrdinalSink::default();
            sink.add(chunk, &bytes).unwrap();
            assert_eq!(sink.into_bitmap(), ordinals, "{count}");
        }
    }

    #[test]
    fn many_listed_ordinals_make_the_same_bitmap_as_few() {
        let spread: Vec<u32> = (0..20_000u32).map(|n| 3 + n * 97 % 1_000_003).collect();
        let mut many = OrdinalSink::default();
        let mut expected = RoaringBitmap::new();
        for (n, ordinal) in spread.iter().enumerate() {
            // One ordinal a value, as unique terms hold them, in no order.
            let chunk = ordinal / CHUNK_ORDINALS;
            let mut value = Vec::new();
            encode_posting(chunk, &[*ordinal], &mut value);
            many.add(chunk, &value).unwrap();
            if n % 3 == 0 {
                many.add(chunk, &value).unwrap();
            }
            expected.insert(*ordinal);
        }
        assert_eq!(many.into_bitmap(), expected);
        let mut few = OrdinalSink::default();
        for ordinal in [9u32, 2, 700_000, 2] {
            let mut value = Vec::new();
            encode_posting(ordinal / CHUNK_ORDINALS, &[ordinal], &mut value);
            few.add(ordinal / CHUNK_ORDINALS, &value).unwrap();
        }
        assert_eq!(
            few.into_bitmap().iter().collect::<Vec<_>>(),
            vec![2, 9, 700_000]
        );
    }
}
