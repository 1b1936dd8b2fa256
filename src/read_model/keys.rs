//! Byte layouts of the read model's keys. Every key sorts the way queries read it: big-endian
//! integers, creation time before id, so a prefix scan walks customers in `createdAt`, `id` order.

use crate::domain::{AccountId, Customer, CustomerId};

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

/// `offsets` key of a partition.
pub fn partition_key(partition: i32) -> [u8; 4] {
    partition.to_be_bytes()
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
    fn the_id_comes_back_out_of_every_key() {
        let customer = customer_at(5, 77);
        assert_eq!(customer_id_of(&order_key(&customer)), Some(customer.id));
        let account_key = account_key(&customer);
        assert!(account_key.starts_with(&account_prefix(customer.details.account_id)));
        assert_eq!(customer_id_of(&account_key), Some(customer.id));
    }
}
