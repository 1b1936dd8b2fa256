//! Idempotent creates: a client's `Idempotency-Key`, scoped to the account, fixes the customer id
//! and the event id, so every retry and every racing duplicate (on any replica) names the same
//! customer and the same event, and collapses to one in every projection.

use super::code::CustomerCode;
use super::fields::RuleViolation;
use super::ids::{AccountId, CustomerId};
use uuid::Uuid;

/// Namespace of customer ids derived from idempotency keys (UUIDv5). Part of the public
/// contract: `events/README.md` gives it, so consumers can recompute ids.
pub const CUSTOMER_ID_NAMESPACE: Uuid = Uuid::from_u128(0x91a9_8d00_5cd8_4c03_9149_cfde_498e_7572);

/// Namespace of event ids derived from idempotency keys (UUIDv5).
pub const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x05bf_6ed6_a70a_4417_9f91_f884_1d6d_20ec);

/// A client's idempotency key: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The longest key accepted.
    pub const MAX_LEN: usize = 255;

    /// # Errors
    /// Empty, longer than [`IdempotencyKey::MAX_LEN`], or a character outside `!`..=`~`.
    pub fn parse(raw: &str) -> Result<Self, RuleViolation> {
        let visible = raw.bytes().all(|byte| byte.is_ascii_graphic());
        if raw.is_empty() || raw.len() > Self::MAX_LEN || !visible {
            return Err(RuleViolation {
                code: "invalid_format",
                message: format!(
                    "must be 1 to {} visible ASCII characters (no spaces)",
                    Self::MAX_LEN
                ),
            });
        }
        Ok(Self(raw.to_owned()))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The UUIDv5 name both ids derive from: `<accountId>:<key>`.
    fn name(&self, account_id: AccountId) -> String {
        format!("{account_id}:{}", self.0)
    }

    /// The id of the customer this key creates in `account_id`.
    pub fn customer_id(&self, account_id: AccountId) -> CustomerId {
        let name = self.name(account_id);
        CustomerId::from_bytes(*Uuid::new_v5(&CUSTOMER_ID_NAMESPACE, name.as_bytes()).as_bytes())
    }

    /// The id of the `CustomerCreated` event this key creates in `account_id`.
    pub fn event_id(&self, account_id: AccountId) -> Uuid {
        Uuid::new_v5(&EVENT_ID_NAMESPACE, self.name(account_id).as_bytes())
    }

    /// The id of the `CustomerCreated` event this key writes for a create with `code` (whose
    /// customer id derives from the code): from `<accountId>:<key> <code>` (neither holds a
    /// space), so the key is scoped to account and code.
    pub fn event_id_with_code(&self, account_id: AccountId, code: &CustomerCode) -> Uuid {
        let name = format!("{} {code}", self.name(account_id));
        Uuid::new_v5(&EVENT_ID_NAMESPACE, name.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_up_to_255() {
        assert!(IdempotencyKey::parse("a").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        assert!(IdempotencyKey::parse("order-4711/retry#2").is_ok());
        for bad in ["", " ", "with space", "tab\t", "é", &"k".repeat(256)] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ids_are_fixed_by_account_and_key() {
        let key = IdempotencyKey::parse("order-4711").unwrap();
        let account = AccountId::parse(42).unwrap();
        let other_account = AccountId::parse(43).unwrap();
        assert_eq!(key.customer_id(account), key.customer_id(account));
        assert_ne!(key.customer_id(account), key.customer_id(other_account));
        assert_ne!(
            *key.customer_id(account).as_bytes(),
            *key.event_id(account).as_bytes()
        );
        let expected = Uuid::new_v5(&CUSTOMER_ID_NAMESPACE, b"42:order-4711");
        assert_eq!(key.customer_id(account).to_string(), expected.to_string());
        let code = CustomerCode::parse("ABC-1").unwrap();
        assert_eq!(
            key.event_id_with_code(account, &code),
            Uuid::new_v5(&EVENT_ID_NAMESPACE, b"42:order-4711 ABC-1")
        );
    }
}
