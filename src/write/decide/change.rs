//! A change's decisions: which event an update or delete makes of the customer as this replica
//! holds it, and what the customer's record, read back once the event was projected, says of
//! its fate.

use crate::domain::{AuditTrail, Customer, CustomerDeleted, CustomerUpdated, RegistryEvent};
use crate::read_model::CustomerRecord;
use crate::write::changes::ChangeKind;
use chrono::{DateTime, Utc};
use uuid::Uuid;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{AccountId, CustomerDetails, CustomerPatch, FieldValue, TextField};
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
}
