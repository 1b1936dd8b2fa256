//! Customer records, and the blocks of 16 that the store keeps them in.

use super::{put_length_prefixed, put_varint, unzigzag, zigzag, Malformed, Reader};
use crate::domain::{AccountId, Customer, CustomerCode, CustomerDetails, CustomerId, TextField};
use crate::read_model::record::{CustomerRecord, History, HistoryEntry, LogPlace};
use chrono::DateTime;
use uuid::Uuid;

/// Version of the record encoding written before updates existed: read, never written.
const RECORD_V1: u8 = 1;
/// Version of the record encoding, its first byte.
const RECORD_V2: u8 = 2;

/// Flag bit of a deleted customer (a tombstone).
const DELETED: u64 = 1;
/// Flag bit of a customer created with a code of its own (the code follows the text fields).
const HAS_CODE: u64 = 2;
/// Flag bit of an erased customer (a tombstone without personal fields).
const ERASED: u64 = 4;

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
    if record.erased {
        flags |= ERASED;
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
        erased: flags & ERASED != 0,
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

#[cfg(test)]
mod tests {
    use super::*;

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
            erased: false,
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
}
