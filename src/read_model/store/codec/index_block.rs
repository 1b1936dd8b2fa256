//! Index blocks: runs of (key, value) entries, keys front-coded.

use super::{put_length_prefixed, put_varint, Malformed, Reader};

/// A block of index entries, each `(key, value)`, keys front-coded: how many leading bytes it
/// shares with the previous key, the rest of the key, then the value, both length-prefixed.
#[derive(Default)]
pub struct IndexBlockWriter {
    bytes: Vec<u8>,
    last_key: Vec<u8>,
    entries: u64,
}

impl IndexBlockWriter {
    /// Appends an entry; keys must come in increasing order.
    pub fn push(&mut self, key: &[u8], value: &[u8]) {
        let shared = self
            .last_key
            .iter()
            .zip(key)
            .take_while(|(a, b)| a == b)
            .count();
        put_varint(&mut self.bytes, shared as u64);
        put_length_prefixed(&mut self.bytes, &key[shared..]);
        put_length_prefixed(&mut self.bytes, value);
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
        self.entries += 1;
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// The last key pushed (empty before the first).
    pub fn last_key(&self) -> &[u8] {
        &self.last_key
    }

    /// Entries pushed so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// The block's bytes; the writer starts a fresh block.
    pub fn take(&mut self) -> Vec<u8> {
        self.last_key.clear();
        self.entries = 0;
        std::mem::take(&mut self.bytes)
    }
}

/// An index entry: its key (borrowed from the reader until its next entry) and value.
pub type IndexEntry<'k, 'v> = (&'k [u8], &'v [u8]);

/// The entries of an index block, in order.
pub struct IndexBlockEntries<'a> {
    reader: Reader<'a>,
    key: Vec<u8>,
}

impl<'a> IndexBlockEntries<'a> {
    /// The entries of `block`.
    pub fn new(block: &'a [u8]) -> Self {
        Self {
            reader: Reader::new(block),
            key: Vec::new(),
        }
    }

    /// The next entry: its key (valid until the next call) and value.
    ///
    /// # Errors
    /// [`Malformed`] when the block is not one [`IndexBlockWriter`] wrote.
    pub fn next_entry(&mut self) -> Result<Option<IndexEntry<'_, 'a>>, Malformed> {
        if self.reader.is_empty() {
            return Ok(None);
        }
        let shared = usize::try_from(self.reader.varint()?)
            .ok()
            .filter(|shared| *shared <= self.key.len())
            .ok_or(Malformed("an index key shares more than its predecessor"))?;
        let suffix = self.reader.length_prefixed()?;
        self.key.truncate(shared);
        self.key.extend_from_slice(suffix);
        let value = self.reader.length_prefixed()?;
        Ok(Some((&self.key, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_blocks_front_code_their_keys() {
        let mut writer = IndexBlockWriter::default();
        let entries: [(&[u8], &[u8]); 3] = [
            (b"\x02ham\x00", b"a"),
            (b"\x02hamel\x00", b""),
            (b"\x03x", b"bc"),
        ];
        for (key, value) in entries {
            writer.push(key, value);
        }
        let block = writer.take();
        let mut read = IndexBlockEntries::new(&block);
        for (key, value) in entries {
            let (got_key, got_value) = read.next_entry().unwrap().unwrap();
            assert_eq!((got_key, got_value), (key, value));
        }
        assert!(read.next_entry().unwrap().is_none());
    }
}
