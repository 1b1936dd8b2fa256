//! A change's decisions: how the customer as this replica holds it stands against `If-Match`,
//! which event an update or delete makes of it, and what the customer's record, read back once
//! the event was projected, says of its fate; and for a change with an `Idempotency-Key`, the
//! ids and headers its records carry, and what the customer's event ids and records read back
//! say of the key (unused, this request's first answer, or another request's).

use crate::domain::{
    AuditTrail, Customer, CustomerDeleted, CustomerPatch, CustomerUpdated, IdempotencyKey, Opener,
    RegistryEvent, EVENT_ID_NAMESPACE,
};
use crate::log::PublishedRecord;
use crate::read_model::CustomerRecord;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// What a change request asks.
#[derive(Debug, Clone)]
pub enum ChangeKind {
    /// Change these fields.
    Update(CustomerPatch),
    /// Delete the customer.
    Delete,
}

/// How a customer at some version stands against the version `If-Match` named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// At it: the change aims at the next version.
    Met,
    /// Past it: another change took it (412, at once).
    Passed,
    /// Not there yet: this replica may trail the log, where another replica wrote the version.
    NotYet,
}

/// How a customer at `version` stands against `expected`, the version `If-Match` named. One
/// [`Standing::NotYet`] here is decided once this replica has applied the customer's partition
/// up to its end, which holds every version acknowledged so far: a version still ahead then
/// does not exist (412 at once, not after a wait).
pub fn standing(version: u64, expected: u64) -> Standing {
    match version.cmp(&expected) {
        std::cmp::Ordering::Equal => Standing::Met,
        std::cmp::Ordering::Greater => Standing::Passed,
        std::cmp::Ordering::Less => Standing::NotYet,
    }
}

/// The event that makes `kind` of `current` as its next version, `event_id` its id, at `now`
/// (never before the customer's last change); and the customer it leaves. `None` when an update
/// changes nothing: it is answered with the customer as it is, and no event.
pub fn change_event(
    current: &Customer,
    kind: &ChangeKind,
    event_id: Uuid,
    now: DateTime<Utc>,
    audit: &AuditTrail,
) -> Option<(RegistryEvent, Customer)> {
    let version = current.version + 1;
    let occurred_at = now.max(current.updated_at);
    Some(match kind {
        ChangeKind::Update(patch) => {
            let changes = patch.changes_to(&current.details);
            if changes.is_empty() {
                return None;
            }
            let updated = CustomerUpdated {
                event_id,
                occurred_at,
                audit: audit.clone(),
                customer_id: current.id,
                account_id: current.details.account_id,
                version,
                changes,
            };
            let after = updated.applied_to(current);
            (RegistryEvent::CustomerUpdated(updated), after)
        }
        ChangeKind::Delete => {
            let deleted = CustomerDeleted {
                event_id,
                occurred_at,
                audit: audit.clone(),
                customer_id: current.id,
                account_id: current.details.account_id,
                version,
            };
            let after = deleted.applied_to(current);
            (RegistryEvent::CustomerDeleted(deleted), after)
        }
    })
}

/// What became of a change's event, as the customer's record read back tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// It applied (or a racing retry's event with the same id did): the answer.
    Applied(Box<Customer>),
    /// The customer is gone: deleted before, or by a change that came first.
    Gone,
    /// Another change took the version `If-Match` named (`expected`); the customer is now at
    /// `current`.
    Overtaken {
        /// The version `If-Match` named.
        expected: u64,
        /// The version the customer is at.
        current: u64,
    },
    /// Another change took the version an unconditional change aimed at: try again on the
    /// customer as it now is.
    Lost,
}

/// The fate of the event `event_id`, which was to make `version` and leave the customer as
/// `after`, given the customer's record `held` after it was projected, and the version
/// `If-Match` named (`None`: any).
pub fn fate(
    held: &CustomerRecord,
    event_id: Uuid,
    version: u64,
    after: Customer,
    if_match: Option<u64>,
) -> Fate {
    if held.has_event(event_id) {
        // A retry racing on another replica may have written the same event first, with its
        // own time: answer what the log applied, while nothing has changed it since.
        return Fate::Applied(Box::new(if held.customer.version == version {
            held.customer.clone()
        } else {
            after
        }));
    }
    if held.deleted {
        return Fate::Gone;
    }
    match if_match {
        Some(expected) => Fate::Overtaken {
            expected,
            current: held.customer.version,
        },
        None => Fate::Lost,
    }
}

/// Kafka header naming the `Idempotency-Key` a change was made with.
const KEY_HEADER: &str = "idempotency-key";
/// Kafka header holding the digest of the request a keyed change was made by.
const DIGEST_HEADER: &str = "request-digest";

/// What marks a keyed change's records: its key, and the digest of its request (two requests
/// with the same digest are the same request).
pub struct Keyed<'a> {
    /// The request's `Idempotency-Key`.
    pub key: &'a IdempotencyKey,
    /// The digest of the request.
    pub digest: &'a str,
}

/// What the customer's event ids say of a keyed change's key, before the change is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// No event of the customer carries the key's prefix: the key is new, and the change goes
    /// ahead (no read of the log).
    Unused,
    /// The key's first event is this request's and made the version the customer is at: a
    /// retry, answered with the customer as it stands (no read of the log).
    AsHeld,
    /// The key was used on the customer, by this request before later changes or by another
    /// request: the customer's records are read back ([`Keyed::key_use`]).
    ReadBack,
}

/// What a keyed change's records, read back from the log, say of its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyUse {
    /// No record carries the key (another key's event ids share the prefix, a 1 in 2^60
    /// chance): the key is unused.
    Unused,
    /// The key's first record is this request's: answer what it answered, the customer as that
    /// record left it, even if it changed since; `None` when the records read back built no
    /// customer up to it (404).
    Replay(Option<Box<Customer>>),
    /// The key's first record is another request's: the key was reused (422).
    Reused,
}

impl Keyed<'_> {
    /// `<accountId>:<key>:<customerId>`: what the key's events for `customer` derive from.
    fn scope(&self, customer: &Customer) -> String {
        format!(
            "{}:{}:{}",
            customer.details.account_id,
            self.key.as_str(),
            customer.id
        )
    }

    /// The first 8 bytes of every event id this key writes for `customer`, whatever the request:
    /// those of UUIDv5(`<accountId>:<key>:<customerId>`), with UUIDv8's version bits.
    fn prefix(&self, customer: &Customer) -> [u8; 8] {
        let scope = Uuid::new_v5(&EVENT_ID_NAMESPACE, self.scope(customer).as_bytes());
        let mut bytes = [0; 16];
        bytes[..8].copy_from_slice(&scope.as_bytes()[..8]);
        let mut prefix = [0; 8];
        prefix.copy_from_slice(&Uuid::new_v8(bytes).as_bytes()[..8]);
        prefix
    }

    /// The first event in `held`'s history written with this key (any request), if any.
    pub fn first_use(&self, held: &CustomerRecord) -> Option<Uuid> {
        let prefix = self.prefix(&held.customer);
        held.history
            .iter()
            .map(|entry| entry.event_id)
            .find(|event_id| event_id.as_bytes()[..8] == prefix)
    }

    /// Where in `held`'s history the last event with this key's prefix is, if any: the records
    /// up to it are all a look for the key's first answer reads back, not the customer's whole
    /// history.
    pub fn last_use_at(&self, held: &CustomerRecord) -> Option<usize> {
        let prefix = self.prefix(&held.customer);
        let from_the_end = held
            .history
            .iter()
            .rev()
            .position(|entry| entry.event_id.as_bytes()[..8] == prefix)?;
        Some(held.history.len() - 1 - from_the_end)
    }

    /// The id of the request's event that makes `customer` version `version`: a UUIDv8 of
    /// [`Keyed::prefix`] and the last 8 bytes of
    /// UUIDv5(`<accountId>:<key>:<customerId>:<digest>:<version>`). The same on every replica and
    /// every retry of the same request aiming at the same version, and different for each
    /// version, so an id is never written again with other content.
    pub fn event_id(&self, customer: &Customer, version: u64) -> Uuid {
        let name = format!("{}:{}:{version}", self.scope(customer), self.digest);
        let request = Uuid::new_v5(&EVENT_ID_NAMESPACE, name.as_bytes());
        let mut bytes = [0; 16];
        bytes[..8].copy_from_slice(&self.prefix(customer));
        bytes[8..].copy_from_slice(&request.as_bytes()[8..]);
        Uuid::new_v8(bytes)
    }

    /// The headers the change's records carry: the key, and the request's digest.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        vec![
            (KEY_HEADER, self.key.as_str().to_owned()),
            (DIGEST_HEADER, self.digest.to_owned()),
        ]
    }

    /// What `held`'s event ids say of this key before the change: see [`Retry`].
    pub fn retry(&self, held: &CustomerRecord) -> Retry {
        match self.first_use(held) {
            None => Retry::Unused,
            Some(first) if first == self.event_id(&held.customer, held.customer.version) => {
                Retry::AsHeld
            }
            Some(_) => Retry::ReadBack,
        }
    }

    /// What the customer's `records`, read back from the log in order, say of this key: the
    /// first record with the key is this request's when it carries the same digest, and
    /// answers the customer as the records up to it left it; another digest makes this request
    /// a reuse of the key.
    pub fn key_use(&self, records: &[PublishedRecord], opener: &dyn Opener) -> KeyUse {
        let mut folded: Option<Customer> = None;
        for record in records {
            folded = fold(folded, record, opener);
            if record.headers.get(KEY_HEADER).map(String::as_str) != Some(self.key.as_str()) {
                continue;
            }
            if record.headers.get(DIGEST_HEADER).map(String::as_str) != Some(self.digest) {
                return KeyUse::Reused;
            }
            return KeyUse::Replay(folded.map(Box::new));
        }
        KeyUse::Unused
    }
}

/// The customer as `record` leaves `customer` (a record of its history, read back: applied, or a
/// duplicate of one applied, which changes nothing: neither does a record that is not the next
/// version's, nor one this build cannot read). `opener` opens sealed events.
pub fn fold(
    customer: Option<Customer>,
    record: &PublishedRecord,
    opener: &dyn Opener,
) -> Option<Customer> {
    let Ok(bytes) = serde_json::to_vec(&record.event) else {
        return customer;
    };
    let Ok(event) = RegistryEvent::decode_with(&bytes, opener) else {
        return customer;
    };
    match (customer, event) {
        (None, RegistryEvent::CustomerCreated(created)) => Some(created.customer),
        (Some(current), RegistryEvent::CustomerUpdated(updated))
            if updated.version == current.version + 1 =>
        {
            Some(updated.applied_to(&current))
        }
        (Some(current), RegistryEvent::CustomerDeleted(deleted))
            if deleted.version == current.version + 1 =>
        {
            Some(deleted.applied_to(&current))
        }
        (customer, _) => customer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        now_millis, AccountId, CustomerCreated, CustomerDetails, CustomerPatch, FieldValue, NoKeys,
        TextField,
    };
    use crate::read_model::{History, HistoryEntry, LogPlace};

    fn customer_at(version: u64) -> Customer {
        let mut details = CustomerDetails::for_account(AccountId::parse(7).unwrap());
        details.set_text(TextField::LastName, "Before").unwrap();
        let mut customer = Customer::register(details);
        customer.version = version;
        customer
    }

    fn rename_to(last_name: &str) -> ChangeKind {
        let field = (
            "lastName".to_owned(),
            FieldValue::Text(last_name.to_owned()),
        );
        ChangeKind::Update(CustomerPatch::parse([field]).unwrap())
    }

    /// The record of `customer` whose history holds the events `event_ids`.
    fn record(customer: Customer, deleted: bool, event_ids: &[Uuid]) -> CustomerRecord {
        let history: History = event_ids
            .iter()
            .enumerate()
            .map(|(offset, &event_id)| HistoryEntry {
                place: LogPlace {
                    partition: 0,
                    offset: offset as i64,
                },
                event_id,
            })
            .collect();
        CustomerRecord {
            customer,
            deleted,
            erased: false,
            history,
        }
    }

    #[test]
    fn given_a_customer_when_an_update_changes_a_field_then_it_makes_the_next_version() {
        let current = customer_at(3);
        let id = Uuid::now_v7();
        let (event, after) = change_event(
            &current,
            &rename_to("After"),
            id,
            Utc::now(),
            &Default::default(),
        )
        .expect("a change");
        let RegistryEvent::CustomerUpdated(updated) = event else {
            panic!("an update makes a CustomerUpdated: {event:?}");
        };
        assert_eq!((updated.version, updated.event_id), (4, id));
        assert_eq!(after.version, 4);
        assert_eq!(after.details.text(TextField::LastName), Some("After"));
    }

    #[test]
    fn given_a_customer_when_an_update_changes_nothing_then_no_event_is_made() {
        let current = customer_at(3);
        let unchanged = change_event(
            &current,
            &rename_to("Before"),
            Uuid::now_v7(),
            Utc::now(),
            &Default::default(),
        );
        assert!(unchanged.is_none());
    }

    #[test]
    fn given_a_clock_behind_the_last_change_when_changing_then_time_never_goes_back() {
        let current = customer_at(1);
        let earlier = current.updated_at - chrono::Duration::seconds(5);
        let (event, _) = change_event(
            &current,
            &ChangeKind::Delete,
            Uuid::now_v7(),
            earlier,
            &Default::default(),
        )
        .unwrap();
        let RegistryEvent::CustomerDeleted(deleted) = event else {
            panic!("a delete makes a CustomerDeleted: {event:?}");
        };
        assert_eq!(deleted.occurred_at, current.updated_at);
        assert_eq!(deleted.version, 2);
    }

    #[test]
    fn given_the_event_in_the_history_then_the_change_applied() {
        let id = Uuid::now_v7();
        let held = record(customer_at(4), false, &[Uuid::now_v7(), id]);
        let fate = fate(&held, id, 4, customer_at(4), None);
        assert_eq!(fate, Fate::Applied(Box::new(held.customer.clone())));
    }

    #[test]
    fn given_the_event_applied_then_changed_again_then_the_answer_is_what_it_made() {
        let id = Uuid::now_v7();
        let held = record(customer_at(5), false, &[id, Uuid::now_v7()]);
        let mut after = customer_at(4);
        after.details.set_text(TextField::City, "Aarhus").unwrap();
        assert_eq!(
            fate(&held, id, 4, after.clone(), None),
            Fate::Applied(Box::new(after))
        );
    }

    #[test]
    fn given_another_change_took_the_version_then_if_match_is_overtaken_else_lost() {
        let held = record(customer_at(4), false, &[Uuid::now_v7()]);
        let mine = Uuid::now_v7();
        assert_eq!(
            fate(&held, mine, 4, customer_at(4), Some(3)),
            Fate::Overtaken {
                expected: 3,
                current: 4
            }
        );
        assert_eq!(fate(&held, mine, 4, customer_at(4), None), Fate::Lost);
    }

    #[test]
    fn given_the_customer_deleted_meanwhile_then_it_is_gone_whatever_the_condition() {
        let held = record(customer_at(4), true, &[Uuid::now_v7()]);
        for if_match in [None, Some(3)] {
            assert_eq!(
                fate(&held, Uuid::now_v7(), 4, customer_at(4), if_match),
                Fate::Gone
            );
        }
    }

    #[test]
    fn given_if_match_at_the_customers_version_then_the_change_aims_at_the_next() {
        assert_eq!(standing(3, 3), Standing::Met);
    }

    #[test]
    fn given_a_customer_past_the_version_if_match_names_then_it_is_refused_at_once() {
        assert_eq!(standing(4, 3), Standing::Passed);
    }

    #[test]
    fn given_a_customer_short_of_the_version_if_match_names_then_the_replica_may_trail_the_log() {
        assert_eq!(standing(2, 3), Standing::NotYet);
    }

    fn key(text: &str) -> IdempotencyKey {
        IdempotencyKey::parse(text).unwrap()
    }

    /// What marks the records of a request with `key` whose digest is `digest`.
    fn marked<'a>(key: &'a IdempotencyKey, digest: &'a str) -> Keyed<'a> {
        Keyed { key, digest }
    }

    /// A customer at version 1, and its create as read back from offset 0.
    fn first_version() -> (Customer, PublishedRecord) {
        let customer = customer_at(1);
        let create = RegistryEvent::CustomerCreated(CustomerCreated::new(customer.clone()));
        (customer, published(&create, 0, &[]))
    }

    /// `event` as read back from offset `offset`, with `headers`.
    fn published(
        event: &RegistryEvent,
        offset: i64,
        headers: &[(&'static str, String)],
    ) -> PublishedRecord {
        PublishedRecord {
            partition: 0,
            offset,
            timestamp: None,
            key: None,
            headers: headers
                .iter()
                .map(|(name, value)| ((*name).to_owned(), value.clone()))
                .collect(),
            event: serde_json::from_slice(&event.encode()).unwrap(),
        }
    }

    /// The change `kind` makes of `current`, with event id `event_id`, now.
    fn changed(current: &Customer, kind: &ChangeKind, event_id: Uuid) -> (RegistryEvent, Customer) {
        change_event(current, kind, event_id, now_millis(), &Default::default()).unwrap()
    }

    #[test]
    fn a_keys_events_for_a_customer_share_their_first_half_whatever_the_request() {
        let (customer, k1, k2) = (customer_at(3), key("k-1"), key("k-2"));
        let first = marked(&k1, "first");
        let second = marked(&k1, "second");
        let half = |id: Uuid| id.as_bytes()[..8].to_vec();
        assert_eq!(
            half(first.event_id(&customer, 4)),
            half(second.event_id(&customer, 9))
        );
        let other_key = marked(&k2, "first");
        assert_ne!(
            half(first.event_id(&customer, 4)),
            half(other_key.event_id(&customer, 4))
        );
        let other_customer = customer_at(3);
        assert_ne!(
            half(first.event_id(&customer, 4)),
            half(first.event_id(&other_customer, 4))
        );
    }

    #[test]
    fn a_retry_of_the_same_request_aiming_at_the_same_version_writes_the_same_event_id() {
        let (customer, k1) = (customer_at(3), key("k-1"));
        let request = marked(&k1, "digest");
        let retry = marked(&k1, "digest");
        let other = marked(&k1, "other");
        assert_eq!(request.event_id(&customer, 4), retry.event_id(&customer, 4));
        assert_ne!(
            request.event_id(&customer, 4),
            request.event_id(&customer, 5)
        );
        assert_ne!(request.event_id(&customer, 4), other.event_id(&customer, 4));
    }

    #[test]
    fn given_a_key_none_of_the_customers_events_carry_then_it_is_new_and_nothing_is_read_back() {
        let k1 = key("k-1");
        let keyed = marked(&k1, "digest");
        let held = record(customer_at(3), false, &[Uuid::now_v7(), Uuid::now_v7()]);
        assert_eq!(keyed.retry(&held), Retry::Unused);
        assert_eq!(keyed.last_use_at(&held), None);
    }

    #[test]
    fn given_the_keys_first_change_made_the_current_version_then_a_retry_answers_it_as_held() {
        let (customer, k1) = (customer_at(3), key("k-1"));
        let keyed = marked(&k1, "digest");
        let mine = keyed.event_id(&customer, 3);
        let held = record(customer, false, &[Uuid::now_v7(), Uuid::now_v7(), mine]);
        assert_eq!(keyed.retry(&held), Retry::AsHeld);
    }

    #[test]
    fn given_changes_since_the_keys_first_then_a_retry_reads_back_up_to_its_last_use() {
        let (customer, k1) = (customer_at(5), key("k-1"));
        let keyed = marked(&k1, "digest");
        let mine = keyed.event_id(&customer, 3);
        let again = keyed.event_id(&customer, 4);
        let events = [Uuid::now_v7(), Uuid::now_v7(), mine, again, Uuid::now_v7()];
        let held = record(customer, false, &events);
        assert_eq!(keyed.retry(&held), Retry::ReadBack);
        assert_eq!(keyed.first_use(&held), Some(mine));
        assert_eq!(keyed.last_use_at(&held), Some(3));
    }

    #[test]
    fn given_the_key_used_by_another_request_then_the_records_are_read_back() {
        let (customer, k1) = (customer_at(3), key("k-1"));
        let keyed = marked(&k1, "digest");
        let another = marked(&k1, "another");
        let theirs = another.event_id(&customer, 3);
        let held = record(customer, false, &[Uuid::now_v7(), Uuid::now_v7(), theirs]);
        assert_eq!(keyed.retry(&held), Retry::ReadBack);
    }

    #[test]
    fn given_the_keys_first_record_then_a_retry_answers_what_it_left_even_if_changed_since() {
        let k1 = key("k-1");
        let keyed = marked(&k1, "digest");
        let (created, create) = first_version();
        let (update, after) = changed(&created, &rename_to("Keyed"), keyed.event_id(&created, 2));
        let (later, _) = changed(&after, &rename_to("Later"), Uuid::now_v7());
        let records = [
            create,
            published(&update, 1, &keyed.headers()),
            published(&later, 2, &[]),
        ];
        assert_eq!(
            keyed.key_use(&records, &NoKeys),
            KeyUse::Replay(Some(Box::new(after)))
        );
    }

    #[test]
    fn given_a_keyed_delete_then_its_retry_answers_the_customer_as_deleted() {
        let k1 = key("k-1");
        let keyed = marked(&k1, "digest");
        let (created, create) = first_version();
        let (delete, gone) = changed(&created, &ChangeKind::Delete, keyed.event_id(&created, 2));
        let records = [create, published(&delete, 1, &keyed.headers())];
        assert_eq!(
            keyed.key_use(&records, &NoKeys),
            KeyUse::Replay(Some(Box::new(gone)))
        );
    }

    #[test]
    fn given_the_keys_first_record_from_another_request_then_the_key_is_reused() {
        let k1 = key("k-1");
        let keyed = marked(&k1, "digest");
        let another = marked(&k1, "another");
        let (created, create) = first_version();
        let (theirs, after) = changed(
            &created,
            &rename_to("Theirs"),
            another.event_id(&created, 2),
        );
        let (mine, _) = changed(&after, &rename_to("Mine"), keyed.event_id(&after, 3));
        let records = [
            create,
            published(&theirs, 1, &another.headers()),
            published(&mine, 2, &keyed.headers()),
        ];
        assert_eq!(keyed.key_use(&records, &NoKeys), KeyUse::Reused);
    }

    #[test]
    fn given_records_without_the_key_then_it_is_unused_after_all() {
        let (k1, k2) = (key("k-1"), key("k-2"));
        let keyed = marked(&k1, "digest");
        let other = marked(&k2, "digest");
        let (created, create) = first_version();
        let (update, _) = changed(&created, &rename_to("Other"), other.event_id(&created, 2));
        let records = [create, published(&update, 1, &other.headers())];
        assert_eq!(keyed.key_use(&records, &NoKeys), KeyUse::Unused);
    }

    #[test]
    fn given_a_racing_duplicate_or_an_unreadable_record_read_back_then_it_changes_nothing() {
        let (created, create) = first_version();
        let (update, after) = changed(&created, &rename_to("After"), Uuid::now_v7());
        let mut folded = fold(None, &create, &NoKeys);
        assert_eq!(folded.as_ref(), Some(&created));
        folded = fold(folded, &published(&update, 1, &[]), &NoKeys);
        folded = fold(folded, &published(&update, 2, &[]), &NoKeys);
        let mut garbage = published(&update, 3, &[]);
        garbage.event = serde_json::Value::String("not an event".to_owned());
        assert_eq!(fold(folded, &garbage, &NoKeys), Some(after));
    }
}
