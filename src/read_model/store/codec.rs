//! Byte encodings of everything the store writes: customer records and their blocks, order keys,
//! posting values and index blocks. Integers are LEB128 varints unless a key needs them to sort
//! (then big-endian, in `store/mod.rs`).

use super::super::directory::{ColumnEntry, Listing, OrderKey};
use super::super::record::{CustomerRecord, History, HistoryEntry, LogPlace};
use crate::domain::{AccountId, Customer, CustomerCode, CustomerDetails, CustomerId, TextField};
use chrono::DateTime;
use roaring::RoaringBitmap;
use uuid::Uuid;

/// Bytes that do not decode as what the store wrote.
#[derive(Debug, thiserror::Error)]
#[error("stored bytes are malformed: {0}")]
pub struct Malformed(pub &'static str);

/// Reads values off the front of a byte slice.
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub(super) fn varint(&mut self) -> Result<u64, Malformed> {
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

    pub(super) fn bytes(&mut self, len: usize) -> Result<&'a [u8], Malformed> {
        if self.bytes.len() < len {
            return Err(Malformed("a field is cut short"));
        }
        let (taken, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(taken)
    }

    pub(super) fn array<const N: usize>(&mut self) -> Result<[u8; N], Malformed> {
        Ok(self.bytes(N)?.try_into().expect("bytes(N) returns N bytes"))
    }

    fn length_prefixed(&mut self) -> Result<&'a [u8], Malformed> {
        let len = self.varint()?;
        self.bytes(usize::try_from(len).map_err(|_| Malformed("a length exceeds memory"))?)
    }
}

pub(super) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_length_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Signed integers as varints, small magnitudes short either side of zero.
fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// Version of the record encoding written before updates existed: read, never written.
const RECORD_V1: u8 = 1;
/// Version of the record encoding, its first byte.
const RECORD_V2: u8 = 2;

/// Flag bit of a deleted customer (a tombstone).
const DELETED: u64 = 1;
/// Flag bit of a customer created with a code of its own (the code follows the text fields).
const HAS_CODE: u64 = 2;

/// A record: version byte, flags, the customer's version, history (partition, offset, event id
/// per record), customer id, account, `createdAt` in milliseconds, `updatedAt` as milliseconds
/// after it, a bit per present text field (in [`TextField::ALL`] order), then each present
/// field's text, then the code when the create gave one (a code that is the id is not stored).
pub fn encode_record(record: &CustomerRecord, out: &mut Vec<u8>) {
    let customer = &record.customer;
    out.push(RECORD_V2);
    let mut flags = 0;
    if record.deleted {
        flags |= DELETED;
    }
    if customer.details.code.is_some() {
        flags |= HAS_CODE;
    }
    put_varint(out, flags);
    put_varint(out, customer.version);
    put_varint(out, record.history.len() as u64);
    for entry in record.history.iter() {
        put_varint(out, zigzag(i64::from(entry.place.partition)));
        put_varint(out, zigzag(entry.place.offset));
        out.extend_from_slice(entry.event_id.as_bytes());
    }
    out.extend_from_slice(customer.id.as_bytes());
    put_varint(out, u64::from(customer.details.account_id.get()));
    let created = customer.created_at.timestamp_millis();
    put_varint(out, zigzag(created));
    put_varint(
        out,
        zigzag(customer.updated_at.timestamp_millis() - created),
    );
    let present = TextField::ALL
        .iter()
        .enumerate()
        .filter(|(_, field)| customer.details.text(**field).is_some())
        .fold(0u64, |bits, (at, _)| bits | 1 << at);
    put_varint(out, present);
    for field in TextField::ALL {
        if let Some(text) = customer.details.text(field) {
            put_length_prefixed(out, text.as_bytes());
        }
    }
    if let Some(code) = &customer.details.code {
        put_length_prefixed(out, code.as_str().as_bytes());
    }
}

/// Reads a record [`encode_record`] wrote, or one of the first encoding (a customer at version
/// 1, every record of its history carrying the one event that created it).
///
/// # Errors
/// [`Malformed`] when the bytes are not such a record.
pub fn decode_record(bytes: &[u8]) -> Result<CustomerRecord, Malformed> {
    let mut reader = Reader::new(bytes);
    let encoding = reader.bytes(1)?[0];
    let (flags, version, first_event) = match encoding {
        RECORD_V1 => (0, 1, Some(Uuid::from_bytes(reader.array()?))),
        RECORD_V2 => {
            let flags = reader.varint()?;
            (flags, reader.varint()?, None)
        }
        _ => return Err(Malformed("unknown record version")),
    };
    let entries = reader.varint()?;
    let mut history = History::default();
    for _ in 0..entries {
        let partition = i32::try_from(unzigzag(reader.varint()?))
            .map_err(|_| Malformed("a partition exceeds 32 bits"))?;
        let offset = unzigzag(reader.varint()?);
        let event_id = match first_event {
            Some(event_id) => event_id,
            None => Uuid::from_bytes(reader.array()?),
        };
        history.push(HistoryEntry {
            place: LogPlace { partition, offset },
            event_id,
        });
    }
    let id = CustomerId::from_bytes(reader.array()?);
    let account_id = i64::try_from(reader.varint()?)
        .ok()
        .and_then(|account| AccountId::parse(account).ok())
        .ok_or(Malformed("an account id is out of range"))?;
    let created_millis = unzigzag(reader.varint()?);
    let created_at = DateTime::from_timestamp_millis(created_millis)
        .ok_or(Malformed("a creation time is out of range"))?;
    let updated_at = if encoding == RECORD_V1 {
        created_at
    } else {
        created_millis
            .checked_add(unzigzag(reader.varint()?))
            .and_then(DateTime::from_timestamp_millis)
            .ok_or(Malformed("an update time is out of range"))?
    };
    let present = reader.varint()?;
    let mut details = CustomerDetails::for_account(account_id);
    for (at, field) in TextField::ALL.into_iter().enumerate() {
        if present & (1 << at) != 0 {
            let text = std::str::from_utf8(reader.length_prefixed()?)
                .map_err(|_| Malformed("a text field is not UTF-8"))?;
            details.set_trusted_text(field, text.to_owned());
        }
    }
    if flags & HAS_CODE != 0 {
        let code = std::str::from_utf8(reader.length_prefixed()?)
            .ok()
            .and_then(|text| CustomerCode::parse(text).ok())
            .ok_or(Malformed("a code is not a valid code"))?;
        details.code = Some(code);
    }
    if !reader.is_empty() {
        return Err(Malformed("a record has trailing bytes"));
    }
    Ok(CustomerRecord {
        customer: Customer {
            id,
            details,
            created_at,
            updated_at,
            version,
        },
        deleted: flags & DELETED != 0,
        history,
    })
}

/// A block of records: the number of slots, each slot's length (0 for an empty slot), then the
/// slots' bytes.
pub fn encode_record_block(slots: &[Option<Vec<u8>>]) -> Vec<u8> {
    let payload: usize = slots.iter().flatten().map(Vec::len).sum();
    let mut out = Vec::with_capacity(payload + 2 * slots.len() + 2);
    put_varint(&mut out, slots.len() as u64);
    for slot in slots {
        put_varint(&mut out, slot.as_ref().map_or(0, Vec::len) as u64);
    }
    for slot in slots.iter().flatten() {
        out.extend_from_slice(slot);
    }
    out
}

/// The bytes of slot `at` of a record block (`None` for an empty slot or one past its end),
/// found without decoding the other slots.
///
/// # Errors
/// [`Malformed`] when the bytes are not a record block.
pub fn record_block_slot(bytes: &[u8], at: usize) -> Result<Option<&[u8]>, Malformed> {
    let mut reader = Reader::new(bytes);
    let count = usize::try_from(reader.varint()?)
        .ok()
        .filter(|count| *count <= 1 << 16)
        .ok_or(Malformed("a record block claims too many slots"))?;
    let (mut start, mut wanted) = (0usize, None);
    for slot in 0..count {
        let len =
            usize::try_from(reader.varint()?).map_err(|_| Malformed("a slot exceeds memory"))?;
        match slot.cmp(&at) {
            std::cmp::Ordering::Less => start += len,
            std::cmp::Ordering::Equal => wanted = Some(len),
            std::cmp::Ordering::Greater => {}
        }
    }
    match wanted {
        Some(0) | None => Ok(None),
        Some(len) => {
            reader.bytes(start)?;
            reader.bytes(len).map(Some)
        }
    }
}

/// Every slot of a record block, as stored (`None` for an empty slot).
///
/// # Errors
/// [`Malformed`] when the bytes are not a record block.
pub fn decode_record_block(bytes: &[u8]) -> Result<Vec<Option<&[u8]>>, Malformed> {
    let mut reader = Reader::new(bytes);
    let count = reader.varint()?;
    if count > 1 << 16 {
        return Err(Malformed("a record block claims too many slots"));
    }
    let lengths = (0..count)
        .map(|_| reader.varint())
        .collect::<Result<Vec<_>, _>>()?;
    lengths
        .into_iter()
        .map(|len| match len {
            0 => Ok(None),
            len => reader
                .bytes(usize::try_from(len).map_err(|_| Malformed("a slot exceeds memory"))?)
                .map(Some),
        })
        .collect()
}

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
    use crate::domain::CustomerId;

    fn record() -> CustomerRecord {
        let mut details = CustomerDetails::for_account(AccountId::parse(2_147_483_647).unwrap());
        details
            .set_text(TextField::LastName, "Søndergaard")
            .unwrap();
        details.set_text(TextField::CountryCode, "DK").unwrap();
        details.set_text(TextField::Email, "a@b.dk").unwrap();
        details.code = Some(CustomerCode::parse("erp:0042/a").unwrap());
        CustomerRecord {
            customer: Customer {
                id: CustomerId::new_v7(),
                details,
                created_at: DateTime::from_timestamp_millis(-5).unwrap(),
                updated_at: DateTime::from_timestamp_millis(90_000).unwrap(),
                version: 7,
            },
            deleted: true,
            // Past one sealed chunk of history, so that both parts round-trip.
            history: (0..300)
                .map(|n| HistoryEntry {
                    place: LogPlace {
                        partition: 7,
                        offset: (1 << 40) + n,
                    },
                    event_id: Uuid::now_v7(),
                })
                .collect(),
        }
    }

    #[test]
    fn records_of_the_first_encoding_read_as_version_one() {
        let event_id = Uuid::now_v7();
        let id = CustomerId::new_v7();
        let mut bytes = vec![RECORD_V1];
        bytes.extend_from_slice(event_id.as_bytes());
        put_varint(&mut bytes, 2);
        for (partition, offset) in [(0i64, 4i64), (1, 9)] {
            put_varint(&mut bytes, zigzag(partition));
            put_varint(&mut bytes, zigzag(offset));
        }
        bytes.extend_from_slice(id.as_bytes());
        put_varint(&mut bytes, 42);
        put_varint(&mut bytes, zigzag(1_000));
        put_varint(&mut bytes, 1 << 1);
        put_length_prefixed(&mut bytes, b"Lee");
        let record = decode_record(&bytes).unwrap();
        assert_eq!(
            (record.customer.version, record.deleted),
            (1, false),
            "{record:?}"
        );
        assert_eq!(record.customer.updated_at, record.customer.created_at);
        assert_eq!(
            record.customer.details.text(TextField::LastName),
            Some("Lee")
        );
        assert_eq!(
            record
                .history
                .iter()
                .map(|entry| (entry.place.offset, entry.event_id))
                .collect::<Vec<_>>(),
            vec![(4, event_id), (9, event_id)]
        );
    }

    #[test]
    fn records_read_back_equal() {
        let mut without_code = record();
        without_code.customer.details.code = None;
        for record in [record(), without_code] {
            let mut bytes = Vec::new();
            encode_record(&record, &mut bytes);
            assert_eq!(decode_record(&bytes).unwrap(), record);
        }
        let record = record();
        let mut bytes = Vec::new();
        encode_record(&record, &mut bytes);
        assert!(decode_record(&bytes[..bytes.len() - 1]).is_err());
        bytes.push(0);
        assert!(decode_record(&bytes).is_err());
    }

    #[test]
    fn record_blocks_keep_empty_slots() {
        let slots = vec![Some(vec![1, 2, 3]), None, Some(vec![4])];
        let block = encode_record_block(&slots);
        let decoded = decode_record_block(&block).unwrap();
        assert_eq!(
            decoded,
            vec![Some(&[1u8, 2, 3][..]), None, Some(&[4u8][..])]
        );
    }

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
