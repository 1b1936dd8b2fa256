//! A create's decisions: the ids it gives its customer and its event, the partitions this
//! replica applies before deciding it, the event it appends, and the verdict on a customer the
//! log already holds under the id it names.
//!
//! A create names its customer by what it carries: a code names it (UUIDv5 of account and
//! code), else an `Idempotency-Key` does (UUIDv5 of account and key), else it is a new one. A
//! customer already held under a named id was made by this request's earlier try (a retry,
//! answered as the first was), by another request with the key (422), or, for a code, by another
//! create (409): the first create of an id in the log has it.

use crate::domain::{
    AccountId, AuditTrail, Customer, CustomerCode, CustomerCreated, CustomerDetails, CustomerId,
    IdempotencyKey,
};
use crate::read_model::CustomerRecord;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The ids a create gives its customer and its `CustomerCreated`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreateIds {
    /// The customer's id.
    pub customer_id: CustomerId,
    /// The event's id.
    pub event_id: Uuid,
}

/// The ids of a create of `details` with `key`; `fresh` gives those that nothing derives.
/// - A code names the customer, whatever the key: every create of the code in the account names
///   one customer, lands on one partition, and the first in the log has the code. With a key,
///   key and code name the event, so the key is scoped to account and code, and every retry (on
///   any replica) writes the same event; without one, the event id is fresh.
/// - A key without a code names both, from account and key: every retry names the same
///   customer and the same event, and the projection applies one.
/// - Neither: both are fresh.
pub fn create_ids(
    details: &CustomerDetails,
    key: Option<&IdempotencyKey>,
    fresh: CreateIds,
) -> CreateIds {
    let account_id = details.account_id;
    match (&details.code, key) {
        (Some(code), key) => CreateIds {
            customer_id: code.customer_id(account_id),
            event_id: key.map_or(fresh.event_id, |key| {
                key.event_id_with_code(account_id, code)
            }),
        },
        (None, Some(key)) => CreateIds {
            customer_id: key.customer_id(account_id),
            event_id: key.event_id(account_id),
        },
        (None, None) => fresh,
    }
}

/// The customers whose partitions this replica applies up to their end (as Kafka reports it
/// now) before it decides a create of `details` with `key`, whose ids are `ids`: every event
/// acknowledged for them so far, whichever replica wrote it, is then held here.
/// - With a key, the customer the create names: a retry of a create whose customer lies in the
///   part of the log this replica has not applied yet then answers the first create (replayed),
///   and never writes the key's event id again.
/// - With a code written like a customer id, that customer too: its code may be its id, which
///   only the projection knows.
///
/// A create with a code and no key waits for neither: the log decides it, as it does any race
/// for a code (a customer not held here yet makes this create a conflict there, answered 409).
/// Settling every create with a code cost a round trip to Kafka and a wait for other writers'
/// records: creates fell from ~9,200/s to ~5,300/s under 64 writers, half coded. A create with
/// neither names a new customer: there is nothing to look for.
pub fn settle_first(
    details: &CustomerDetails,
    key: Option<&IdempotencyKey>,
    ids: CreateIds,
) -> Vec<CustomerId> {
    let named = key.map(|_| ids.customer_id);
    let code_as_id = details.code.as_ref().and_then(code_as_customer_id);
    named.into_iter().chain(code_as_id).collect()
}

/// The customer id `code` is written as, when it reads as one: a customer created without a
/// code has its id as its code.
pub fn code_as_customer_id(code: &CustomerCode) -> Option<CustomerId> {
    code.as_str().parse().ok()
}

/// The event a create appends: customer `ids.customer_id` with `details` at version 1, created
/// and last changed at `now`, under event id `ids.event_id`, caused by `audit`.
pub fn created_event(
    ids: CreateIds,
    details: CustomerDetails,
    now: DateTime<Utc>,
    audit: AuditTrail,
) -> CustomerCreated {
    let customer = Customer::register_at(ids.customer_id, details, now);
    CustomerCreated::with_event_id(ids.event_id, customer).caused_by(audit)
}

/// Why a create is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Another customer of the account has the code (409).
    CodeTaken {
        /// The code.
        code: CustomerCode,
        /// The account.
        account_id: AccountId,
        /// The customer that has it.
        holder: CustomerId,
    },
    /// The key created the customer with other details (422).
    KeyReused,
    /// The customer the key or code names was erased: nothing may be written about it again,
    /// and its code is never given to another customer (410).
    Erased(CustomerId),
}

/// What a create with a key or a code makes of a customer the log already holds under the id
/// it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Answer the customer as its create made it: that create was this request's, or the first
    /// try of the request this one retries.
    Answer(Box<Customer>),
    /// Refuse the create.
    Refuse(Refusal),
    /// The customer changed since its create (an update, a delete): read what its create made
    /// back from its first record, and ask again with it.
    ReadBack,
}

/// The verdict on `held`, the record the read model holds under the customer id a create of
/// `details` names, `event_id` being the create's event; `read_back` is the customer as its
/// first record made it, once read back (asked for by [`Verdict::ReadBack`]).
/// - With a code, the first create of the customer in the log has the code: a customer another
///   event created holds it (409), deleted or not, since a deleted customer keeps its code.
///   Without a key a retry of a create that went through is such a create (its event id is
///   fresh): the code itself keeps the create from happening twice.
/// - Otherwise the customer is this request's, or the one its key created on a first try: the
///   same details answer it, as its create made it, even after it was updated or deleted since;
///   other details mean the key was used for another create (422).
///
/// A keyed create without a code is not checked for its creator: its customer id derives from
/// the key, and another event could have created it only by taking the registry's UUIDv5 of the
/// key as an explicit code (a limit the README states).
pub fn verdict(
    held: &CustomerRecord,
    read_back: Option<Customer>,
    details: &CustomerDetails,
    event_id: Uuid,
) -> Verdict {
    if held.erased {
        return Verdict::Refuse(Refusal::Erased(held.customer.id));
    }
    if let Some(code) = &details.code {
        if held.created_by() != Some(event_id) {
            return Verdict::Refuse(Refusal::CodeTaken {
                code: code.clone(),
                account_id: details.account_id,
                holder: held.customer.id,
            });
        }
    }
    let created = match read_back {
        Some(created) => created,
        None if held.customer.version == 1 && !held.deleted => held.customer.clone(),
        None => return Verdict::ReadBack,
    };
    if created.details == *details {
        Verdict::Answer(Box::new(created))
    } else {
        Verdict::Refuse(Refusal::KeyReused)
    }
}

/// The refusal (409) of a create of `details` whose code is written as the id of `held`, when
/// `held` has that code in the create's account: it was created without a code, so its code is
/// its id. Only the read model tells, not the log: two replicas racing on exactly that could both
/// accept (a limit the README states).
pub fn code_taken_as_an_id(held: &CustomerRecord, details: &CustomerDetails) -> Option<Refusal> {
    let code = details.code.as_ref()?;
    let holds =
        held.customer.details.account_id == details.account_id && held.customer.has_code(code);
    holds.then(|| Refusal::CodeTaken {
        code: code.clone(),
        account_id: details.account_id,
        holder: held.customer.id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CustomerDeleted, TextField};
    use crate::read_model::{History, HistoryEntry, LogPlace};

    fn account(id: i64) -> AccountId {
        AccountId::parse(id).unwrap()
    }

    /// Details in account 42 with `last_name`, and `code` when given.
    fn details(code: Option<&str>, last_name: &str) -> CustomerDetails {
        let mut details = CustomerDetails::for_account(account(42));
        details.set_text(TextField::LastName, last_name).unwrap();
        details.code = code.map(|code| CustomerCode::parse(code).unwrap());
        details
    }

    fn key(text: &str) -> IdempotencyKey {
        IdempotencyKey::parse(text).unwrap()
    }

    fn fresh() -> CreateIds {
        CreateIds {
            customer_id: CustomerId::new_v7(),
            event_id: Uuid::now_v7(),
        }
    }

    /// The read model's record of the customer `event` created, its history `event` and then
    /// `later` events.
    fn held(event: &CustomerCreated, later: &[Uuid]) -> CustomerRecord {
        let history: History = std::iter::once(event.event_id)
            .chain(later.iter().copied())
            .enumerate()
            .map(|(offset, event_id)| HistoryEntry {
                place: LogPlace {
                    partition: 0,
                    offset: offset as i64,
                },
                event_id,
            })
            .collect();
        let mut customer = event.customer.clone();
        customer.version += later.len() as u64;
        CustomerRecord {
            customer,
            deleted: false,
            erased: false,
            history,
        }
    }

    /// `details` with another last name.
    fn details_with_name(details: &CustomerDetails, last_name: &str) -> CustomerDetails {
        let mut other = details.clone();
        other.set_text(TextField::LastName, last_name).unwrap();
        other
    }

    /// The create a request for `details` with `key` makes, now.
    fn create(details: &CustomerDetails, key: Option<&IdempotencyKey>) -> CustomerCreated {
        let ids = create_ids(details, key, fresh());
        created_event(ids, details.clone(), Utc::now(), AuditTrail::default())
    }

    #[test]
    fn a_create_without_code_or_key_makes_a_new_customer_at_version_1_now() {
        let ids = fresh();
        let now = Utc::now();
        let event = created_event(ids, details(None, "Ng"), now, AuditTrail::default());
        assert_eq!(create_ids(&details(None, "Ng"), None, ids), ids);
        assert_eq!(
            (event.event_id, event.customer.id, event.customer.version),
            (ids.event_id, ids.customer_id, 1)
        );
        assert_eq!(event.occurred_at, now);
        assert_eq!(
            (event.customer.created_at, event.customer.updated_at),
            (now, now)
        );
        assert_eq!(event.customer.details, details(None, "Ng"));
    }

    #[test]
    fn a_keyed_create_names_its_customer_and_event_by_account_and_key() {
        let details = details(None, "Ng");
        let ids = create_ids(&details, Some(&key("k-1")), fresh());
        assert_eq!(ids, create_ids(&details, Some(&key("k-1")), fresh()));
        assert_eq!(ids.customer_id, key("k-1").customer_id(account(42)));
        assert_eq!(ids.event_id, key("k-1").event_id(account(42)));
        let mut elsewhere = details.clone();
        elsewhere.account_id = account(43);
        let other = create_ids(&elsewhere, Some(&key("k-1")), fresh());
        assert_ne!(other.customer_id, ids.customer_id, "another account");
        assert_ne!(other.event_id, ids.event_id, "another account");
    }

    #[test]
    fn a_code_names_its_customer_whatever_the_key_and_a_fresh_event_without_one() {
        let coded = details(Some("ABC-1"), "Ng");
        let code = CustomerCode::parse("ABC-1").unwrap();
        let unkeyed = fresh();
        let without_key = create_ids(&coded, None, unkeyed);
        let with_key = create_ids(&coded, Some(&key("k-1")), fresh());
        assert_eq!(without_key.customer_id, code.customer_id(account(42)));
        assert_eq!(with_key.customer_id, without_key.customer_id);
        assert_eq!(without_key.event_id, unkeyed.event_id);
        assert_eq!(
            with_key.event_id,
            key("k-1").event_id_with_code(account(42), &code)
        );
    }

    #[test]
    fn a_key_with_another_code_or_none_is_another_scope() {
        let with = |code| create_ids(&details(code, "Ng"), Some(&key("k-1")), fresh());
        let (first, second, none) = (with(Some("A-1")), with(Some("A-2")), with(None));
        assert_ne!(first.customer_id, second.customer_id);
        assert_ne!(first.event_id, second.event_id);
        assert_ne!(first.customer_id, none.customer_id);
        assert_ne!(first.event_id, none.event_id);
    }

    #[test]
    fn a_keyed_create_is_decided_once_its_customers_partition_is_applied_to_its_end() {
        for code in [None, Some("ABC-1")] {
            let details = details(code, "Ng");
            let ids = create_ids(&details, Some(&key("k-1")), fresh());
            assert_eq!(
                settle_first(&details, Some(&key("k-1")), ids),
                [ids.customer_id]
            );
        }
    }

    #[test]
    fn a_create_with_a_code_and_no_key_is_decided_by_the_log_without_a_wait() {
        let coded = details(Some("ABC-1"), "Ng");
        let ids = create_ids(&coded, None, fresh());
        assert_eq!(settle_first(&coded, None, ids), []);
        let plain = details(None, "Ng");
        assert_eq!(settle_first(&plain, None, fresh()), [], "nothing to decide");
    }

    #[test]
    fn a_code_written_like_a_customer_id_waits_for_that_customers_partition_too() {
        let id = CustomerId::new_v7();
        let coded = details(Some(&id.to_string()), "Ng");
        let ids = create_ids(&coded, None, fresh());
        assert_eq!(settle_first(&coded, None, ids), [id]);
        let keyed = create_ids(&coded, Some(&key("k-1")), fresh());
        assert_eq!(
            settle_first(&coded, Some(&key("k-1")), keyed),
            [keyed.customer_id, id]
        );
        assert_eq!(
            code_as_customer_id(&CustomerCode::parse("ERP-000742").unwrap()),
            None
        );
    }

    #[test]
    fn a_key_retried_with_the_same_details_answers_the_customer_it_created() {
        let details = details(None, "Ng");
        let first = create(&details, Some(&key("k-1")));
        let retry = create_ids(&details, Some(&key("k-1")), fresh());
        assert_eq!(
            verdict(&held(&first, &[]), None, &details, retry.event_id),
            Verdict::Answer(Box::new(first.customer))
        );
    }

    #[test]
    fn a_key_reused_with_different_details_is_refused() {
        for code in [None, Some("K-1")] {
            let first = create(&details(code, "Ng"), Some(&key("k-1")));
            let other = details(code, "Other");
            let retry = create_ids(&other, Some(&key("k-1")), fresh());
            assert_eq!(
                verdict(&held(&first, &[]), None, &other, retry.event_id),
                Verdict::Refuse(Refusal::KeyReused),
                "code {code:?}"
            );
        }
    }

    #[test]
    fn a_keys_customer_changed_since_its_create_is_answered_as_its_first_record_made_it() {
        let details = details(None, "Ng");
        let first = create(&details, Some(&key("k-1")));
        let mut updated = held(&first, &[Uuid::now_v7()]);
        updated
            .customer
            .details
            .set_text(TextField::LastName, "Later")
            .unwrap();
        let event_id = first.event_id;
        assert_eq!(
            verdict(&updated, None, &details, event_id),
            Verdict::ReadBack
        );
        assert_eq!(
            verdict(&updated, Some(first.customer.clone()), &details, event_id),
            Verdict::Answer(Box::new(first.customer.clone()))
        );
        let other = details_with_name(&details, "Other");
        assert_eq!(
            verdict(&updated, Some(first.customer.clone()), &other, event_id),
            Verdict::Refuse(Refusal::KeyReused),
            "other details are refused whatever became of the customer"
        );
    }

    #[test]
    fn a_keys_customer_deleted_since_its_create_is_answered_as_its_first_record_made_it() {
        let details = details(None, "Ng");
        let first = create(&details, Some(&key("k-1")));
        let delete = CustomerDeleted {
            event_id: Uuid::now_v7(),
            occurred_at: Utc::now(),
            audit: AuditTrail::default(),
            customer_id: first.customer.id,
            account_id: details.account_id,
            version: 2,
        };
        let mut deleted = held(&first, &[delete.event_id]);
        deleted.customer = delete.applied_to(&first.customer);
        deleted.deleted = true;
        assert_eq!(
            verdict(&deleted, None, &details, first.event_id),
            Verdict::ReadBack
        );
        assert_eq!(
            verdict(
                &deleted,
                Some(first.customer.clone()),
                &details,
                first.event_id
            ),
            Verdict::Answer(Box::new(first.customer))
        );
    }

    #[test]
    fn a_create_whose_event_won_its_code_answers_its_customer() {
        let coded = details(Some("ABC-1"), "Ng");
        let mine = create(&coded, None);
        assert_eq!(
            verdict(&held(&mine, &[]), None, &coded, mine.event_id),
            Verdict::Answer(Box::new(mine.customer))
        );
    }

    #[test]
    fn a_code_another_create_came_first_with_is_taken() {
        let coded = details(Some("ABC-1"), "Ng");
        let first = create(&coded, None);
        let racing = create(&details(Some("ABC-1"), "Eve"), None);
        assert_eq!(
            racing.customer.id, first.customer.id,
            "one code, one customer"
        );
        assert_eq!(
            verdict(
                &held(&first, &[]),
                None,
                &racing.customer.details,
                racing.event_id
            ),
            Verdict::Refuse(Refusal::CodeTaken {
                code: CustomerCode::parse("ABC-1").unwrap(),
                account_id: account(42),
                holder: first.customer.id,
            })
        );
    }

    #[test]
    fn given_an_erased_customer_when_its_code_or_key_creates_again_then_it_is_gone() {
        let coded = details(Some("ABC-1"), "Ng");
        let first = create(&coded, None);
        let erased = held(&first, &[]).erased();
        for event_id in [first.event_id, fresh().event_id] {
            assert_eq!(
                verdict(&erased, None, &coded, event_id),
                Verdict::Refuse(Refusal::Erased(first.customer.id)),
                "its own retry and another create alike"
            );
        }
    }

    #[test]
    fn a_retry_without_a_key_of_a_coded_create_that_went_through_is_a_duplicate() {
        let coded = details(Some("ABC-1"), "Ng");
        let first = create(&coded, None);
        let retry = create_ids(&coded, None, fresh());
        let verdict = verdict(&held(&first, &[]), None, &coded, retry.event_id);
        assert!(
            matches!(verdict, Verdict::Refuse(Refusal::CodeTaken { holder, .. }) if holder == first.customer.id),
            "{verdict:?}"
        );
    }

    #[test]
    fn a_deleted_customer_keeps_its_code() {
        let coded = details(Some("ABC-1"), "Ng");
        let first = create(&coded, None);
        let mut deleted = held(&first, &[Uuid::now_v7()]);
        deleted.deleted = true;
        let again = create_ids(&coded, None, fresh());
        assert!(matches!(
            verdict(&deleted, None, &coded, again.event_id),
            Verdict::Refuse(Refusal::CodeTaken { .. })
        ));
    }

    #[test]
    fn a_coded_create_retried_with_its_key_answers_the_first_and_another_key_is_409() {
        let coded = details(Some("K-1"), "Key");
        let first = create(&coded, Some(&key("k-1")));
        let retry = create_ids(&coded, Some(&key("k-1")), fresh());
        assert_eq!(
            verdict(&held(&first, &[]), None, &coded, retry.event_id),
            Verdict::Answer(Box::new(first.customer.clone()))
        );
        let other_key = create_ids(&coded, Some(&key("k-2")), fresh());
        assert!(matches!(
            verdict(&held(&first, &[]), None, &coded, other_key.event_id),
            Verdict::Refuse(Refusal::CodeTaken { .. })
        ));
    }

    #[test]
    fn a_code_written_as_the_id_of_a_customer_without_a_code_is_taken_in_its_account_only() {
        let uncoded = create(&details(None, "Ng"), None);
        let id_as_code = details(Some(&uncoded.customer.id.to_string()), "Eve");
        assert_eq!(
            code_taken_as_an_id(&held(&uncoded, &[]), &id_as_code),
            Some(Refusal::CodeTaken {
                code: id_as_code.code.clone().unwrap(),
                account_id: account(42),
                holder: uncoded.customer.id,
            })
        );
        let mut elsewhere = id_as_code.clone();
        elsewhere.account_id = account(43);
        assert_eq!(code_taken_as_an_id(&held(&uncoded, &[]), &elsewhere), None);
    }

    #[test]
    fn a_customer_with_a_code_of_its_own_does_not_hold_its_id_as_a_code() {
        let coded = create(&details(Some("OWN-1"), "Ng"), None);
        let id_as_code = details(Some(&coded.customer.id.to_string()), "Eve");
        assert_eq!(code_taken_as_an_id(&held(&coded, &[]), &id_as_code), None);
    }
}
