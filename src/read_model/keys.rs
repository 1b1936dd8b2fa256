//! Byte layouts of the read model's keys (public for the benchmarks and for tools that read a data
//! dir directly). Every key sorts the way queries read it: big-endian integers, creation time
//! before id, so a prefix scan walks customers in `createdAt`, `id` order.

use crate::domain::{AccountId, Customer, CustomerId, TextField};

/// Length of an [`order_key`]: 8 bytes of time, 16 of id.
pub const ORDER_KEY_LEN: usize = 24;

/// `createdAt` (milliseconds, sign bit flipped so negatives sort first) then the id's 16 bytes.
pub fn order_key(customer: &Customer) -> [u8; ORDER_KEY_LEN] {
    let mut key = [0u8; ORDER_KEY_LEN];
    let millis = customer.created_at.timestamp_millis() as u64 ^ (1 << 63);
    key[..8].copy_from_slice(&millis.to_be_bytes());
    key[8..].copy_from_slice(customer.id.as_bytes());
    key
}

/// The customer id at the end of any key that ends with an [`order_key`].
pub fn customer_id_of(key: &[u8]) -> Option<CustomerId> {
    let start = key.len().checked_sub(16)?;
    let bytes: [u8; 16] = key[start..].try_into().ok()?;
    Some(CustomerId::from_bytes(bytes))
}

/// The prefix shared by every `by_account` key of one account.
pub fn account_prefix(account_id: AccountId) -> [u8; 4] {
    account_id.get().to_be_bytes()
}

/// `by_account` key: the account, then the customer's [`order_key`].
pub fn account_key(customer: &Customer) -> Vec<u8> {
    let mut key = Vec::with_capacity(4 + ORDER_KEY_LEN);
    key.extend_from_slice(&account_prefix(customer.details.account_id));
    key.extend_from_slice(&order_key(customer));
    key
}

/// The order key at the end of any key that ends with one.
pub fn order_key_of(key: &[u8]) -> Option<[u8; ORDER_KEY_LEN]> {
    let start = key.len().checked_sub(ORDER_KEY_LEN)?;
    key[start..].try_into().ok()
}

/// Where a text index range starts: the field, then the scope (`0` for the whole registry, or
/// `1` and the account for one account's customers).
fn text_scope(field: TextField, account_id: Option<AccountId>) -> Vec<u8> {
    let tag = TextField::ALL
        .iter()
        .position(|candidate| *candidate == field)
        .expect("every field is in TextField::ALL") as u8;
    let mut key = vec![tag];
    match account_id {
        None => key.push(0),
        Some(account_id) => {
            key.push(1);
            key.extend_from_slice(&account_prefix(account_id));
        }
    }
    key
}

/// `text_index` key: scope, the value's search form, a 0 byte (search forms never contain one:
/// control characters are refused), then the customer's [`order_key`].
pub fn text_key(
    field: TextField,
    account_id: Option<AccountId>,
    search_form: &str,
    customer: &Customer,
) -> Vec<u8> {
    let mut key = text_range(field, account_id, search_form, true);
    key.extend_from_slice(&order_key(customer));
    key
}

/// The prefix of every `text_index` key whose search form starts with `needle` (or, `whole`, is
/// exactly `needle`).
pub fn text_range(
    field: TextField,
    account_id: Option<AccountId>,
    needle: &str,
    whole: bool,
) -> Vec<u8> {
    let mut prefix = text_scope(field, account_id);
    prefix.extend_from_slice(needle.as_bytes());
    if whole {
        prefix.push(0);
    }
    prefix
}

/// `customer_events` key: the customer id, then where one of its records is in the log.
pub fn history_key(id: CustomerId, partition: i32, offset: i64) -> [u8; 28] {
    let mut key = [0u8; 28];
    key[..16].copy_from_slice(id.as_bytes());
    key[16..20].copy_from_slice(&partition.to_be_bytes());
    key[20..].copy_from_slice(&offset.to_be_bytes());
    key
}

/// The (partition, offset) of a [`history_key`].
pub fn history_position(key: &[u8]) -> Option<(i32, i64)> {
    let partition = i32::from_be_bytes(key.get(16..20)?.try_into().ok()?);
    let offset = i64::from_be_bytes(key.get(20..28)?.try_into().ok()?);
    Some((partition, offset))
}

/// `counts` key of the number of all customers.
pub const COUNT_ALL: &[u8] = b"all";

/// `progress` key recording that an event was applied: `e` ++ event id.
pub fn applied_key(event_id: &[u8; 16]) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[0] = b'e';
    key[1..].copy_from_slice(event_id);
    key
}

/// `progress` key of a count: `c` ++ [`COUNT_ALL`] or an account id.
pub fn progress_count_key(count: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + count.len());
    key.push(b'c');
    key.extend_from_slice(count);
    key
}

/// Prefix of the `progress` keys holding each partition's next offset.
pub const OFFSET_PREFIX: &[u8] = b"o";

/// `progress` key of a partition's next offset: `o` ++ partition.
pub fn offset_key(partition: i32) -> [u8; 5] {
    let mut key = [0u8; 5];
    key[0] = OFFSET_PREFIX[0];
    key[1..].copy_from_slice(&partition.to_be_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CustomerDetails;
    use chrono::DateTime;

    fn customer_at(millis: i64, account: i64) -> Customer {
        Customer {
            id: CustomerId::new_v7(),
            details: CustomerDetails::for_account(AccountId::parse(account).unwrap()),
            created_at: DateTime::from_timestamp_millis(millis).unwrap(),
        }
    }

    #[test]
    fn order_keys_sort_by_time_even_before_the_epoch() {
        let before = order_key(&customer_at(-1, 1));
        let epoch = order_key(&customer_at(0, 1));
        let later = order_key(&customer_at(1_795_624_843_120, 1));
        assert!(before < epoch && epoch < later);
    }

    #[test]
    fn text_keys_fall_in_their_ranges_only() {
        let customer = customer_at(5, 77);
        let account = Some(customer.details.account_id);
        let key = text_key(TextField::LastName, account, "hamilton", &customer);
        assert!(key.starts_with(&text_range(TextField::LastName, account, "ham", false)));
        assert!(key.starts_with(&text_range(TextField::LastName, account, "hamilton", true)));
        assert!(!key.starts_with(&text_range(TextField::LastName, account, "ham", true)));
        assert!(!key.starts_with(&text_range(TextField::LastName, None, "ham", false)));
        assert!(!key.starts_with(&text_range(TextField::FirstName, account, "ham", false)));
        assert_eq!(order_key_of(&key), Some(order_key(&customer)));
    }

    #[test]
    fn the_id_comes_back_out_of_every_key() {
        let customer = customer_at(5, 77);
        assert_eq!(customer_id_of(&order_key(&customer)), Some(customer.id));
        let account_key = account_key(&customer);
        assert!(account_key.starts_with(&account_prefix(customer.details.account_id)));
        assert_eq!(customer_id_of(&account_key), Some(customer.id));
    }
}
