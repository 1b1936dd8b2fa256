//! The read model as a whole: applying, idempotency, layers over the store, reopening, and the
//! oracle that holds every find to a naive filter over random histories.

use super::*;
use crate::domain::{
    AccountId, CustomerCode, CustomerCreated, CustomerDeleted, CustomerDetails, CustomerUpdated,
    FieldChange, RegistryEvent, TextField,
};
use chrono::DateTime;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn customer(account: i64, last_name: &str) -> Customer {
    let mut details = CustomerDetails::for_account(AccountId::parse(account).unwrap());
    details.set_text(TextField::LastName, last_name).unwrap();
    Customer::register(details)
}

fn created(event: &CustomerCreated, partition: i32, offset: i64) -> LogRecord {
    record_of(
        RegistryEvent::CustomerCreated(event.clone()),
        partition,
        offset,
    )
}

fn record_of(event: RegistryEvent, partition: i32, offset: i64) -> LogRecord {
    LogRecord {
        partition,
        offset,
        change: RecordChange::Event(Box::new(event)),
    }
}

/// The update of `customer` to `version` that sets (or with `None` clears) `changes`.
fn update(
    customer: &Customer,
    version: u64,
    changes: &[(TextField, Option<&str>)],
) -> RegistryEvent {
    RegistryEvent::CustomerUpdated(CustomerUpdated {
        event_id: uuid::Uuid::now_v7(),
        occurred_at: customer.created_at + chrono::Duration::seconds(version as i64),
        audit: Default::default(),
        customer_id: customer.id,
        account_id: customer.details.account_id,
        version,
        changes: changes
            .iter()
            .map(|(field, value)| FieldChange {
                field: *field,
                value: value.map(str::to_owned),
            })
            .collect(),
    })
}

/// The delete of `customer` as `version`.
fn delete(customer: &Customer, version: u64) -> RegistryEvent {
    RegistryEvent::CustomerDeleted(CustomerDeleted {
        event_id: uuid::Uuid::now_v7(),
        occurred_at: customer.created_at + chrono::Duration::seconds(version as i64),
        audit: Default::default(),
        customer_id: customer.id,
        account_id: customer.details.account_id,
        version,
    })
}

fn rejected(partition: i32, offset: i64, kind: RejectionKind) -> LogRecord {
    LogRecord {
        partition,
        offset,
        change: RecordChange::Rejected {
            kind,
            reason: "test".into(),
        },
    }
}

fn query(pairs: &[(&str, &str)]) -> CustomerQuery {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    CustomerQuery::parse(&pairs).unwrap()
}

fn find(model: &ReadModel, pairs: &[(&str, &str)]) -> Page {
    model
        .find(&query(pairs), &Work::limited_to(MAX_WORK))
        .unwrap()
}

/// [`open`] again after the last handles were dropped. sled may hold its lock a moment longer,
/// while its background writes of the dropped database finish.
fn reopen(dir: &std::path::Path) -> (ReadModel, ReadModelWriter) {
    reopen_with(dir, FlushPolicy::default())
}

/// [`reopen`], with a writer that flushes by `policy`.
fn reopen_with(dir: &std::path::Path, policy: FlushPolicy) -> (ReadModel, ReadModelWriter) {
    for _ in 0..250 {
        match open_with(dir, policy) {
            Err(ReadModelError::Locked(_)) => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            opened => return opened.unwrap(),
        }
    }
    panic!("{} stayed locked", dir.display());
}

#[test]
fn finds_page_in_answer_order_whatever_order_customers_were_applied_in() {
    let dir = tempfile::tempdir().unwrap();
    let (model, mut writer) = open(dir.path()).unwrap();
    let mut customers: Vec<Customer> = (0..6)
        .map(|n| customer(if n % 2 == 0 { 10 } else { 20 }, &format!("Name{n}")))
        .collect();
    // Later customers applied first, in two batches, one flushed to the store.
    for (n, customer) in customers.iter_mut().enumerate() {
        customer.created_at = DateTime::from_timestamp_millis(1_000 - n as i64).unwrap();
    }
    let records: Vec<LogRecord> = customers
        .iter()
        .enumerate()
        .map(|(offset, customer)| {
            created(&CustomerCreated::new(customer.clone()), 0, offset as i64)
        })
        .collect();
    writer.apply_batch(&records[..3]).unwrap();
    writer.flush_all().unwrap();
    writer.apply_batch(&records[3..]).unwrap();
    let mut in_order = customers.clone();
    in_order.reverse();
    let account_10: Vec<&Customer> = in_order
        .iter()
        .filter(|customer| customer.details.account_id.get() == 10)
        .collect();
    let page = find(&model, &[("accountId", "10")]);
    assert_eq!(page.customers.iter().collect::<Vec<_>>(), account_10);
    assert_eq!(page.total, 3);
    let page = find(&model, &[("offset", "1"), ("limit", "2")]);
    assert_eq!(page.customers, in_order[1..3].to_vec());
    assert_eq!(page.total, 6);
}

#[test]
fn an_event_applied_twice_changes_nothing_but_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let (model, mut writer) = open(dir.path()).unwrap();
    let event = CustomerCreated::new(customer(1, "Hamilton"));
    let mut retried = event.clone();
    retried.customer.created_at += chrono::Duration::milliseconds(5);
    let outcomes = writer
        .apply_batch(&[created(&event, 0, 0), created(&retried, 0, 1)])
        .unwrap();
    assert_eq!(
        outcomes,
        vec![ApplyOutcome::Applied, ApplyOutcome::Duplicate]
    );
    writer.flush_all().unwrap();
    // Once more after a flush: the stored customer is recognised too.
    let outcomes = writer.apply_batch(&[created(&event, 1, 9)]).unwrap();
    assert_eq!(outcomes, vec![ApplyOutcome::Duplicate]);
    assert_eq!(
        model.get(event.customer.id).unwrap(),
        Some(event.customer.clone())
    );
    assert_eq!(find(&model, &[]).total, 1);
    assert!(model.rejected_events().unwrap().is_empty());
    assert_eq!(
        model.history_of(event.customer.id).unwrap(),
        vec![(0, 0), (0, 1), (1, 9)]
    );
    writer.flush_all().unwrap();
    assert_eq!(
        model.next_offsets().unwrap(),
        BTreeMap::from([(0, 2), (1, 10)])
    );
}

#[test]
fn another_event_for_an_existing_customer_is_a_recorded_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let (model, mut writer) = open(dir.path()).unwrap();
    let first = CustomerCreated::new(customer(1, "Hamilton"));
    let mut rival = CustomerCreated::new(customer(1, "Other"));
    rival.customer.id = first.customer.id;
    // Same customer, byte for byte, under another event id.
    let twin = CustomerCreated::new(first.customer.clone());
    // The same event id, altered: the event id decides, so it is a duplicate.
    let mut altered = first.clone();
    altered
        .customer
        .details
        .set_text(TextField::LastName, "Burr")
        .unwrap();
    let outcomes = writer
        .apply_batch(&[
            created(&first, 0, 0),
            created(&rival, 1, 7),
            created(&twin, 0, 1),
            created(&altered, 0, 2),
        ])
        .unwrap();
    assert_eq!(
        outcomes,
        vec![
            ApplyOutcome::Applied,
            ApplyOutcome::Conflict,
            ApplyOutcome::Conflict,
            ApplyOutcome::Duplicate
        ]
    );
    assert_eq!(model.get(first.customer.id).unwrap(), Some(first.customer));
    let places: Vec<(i32, i64, RejectionKind)> = model
        .rejected_events()
        .unwrap()
        .iter()
        .map(|rejected| (rejected.partition, rejected.offset, rejected.kind))
        .collect();
    assert_eq!(
        places,
        vec![
            (0, 1, RejectionKind::Conflict),
            (1, 7, RejectionKind::Conflict)
        ]
    );
    assert_eq!(find(&model, &[]).total, 1);
}

#[test]
fn rejected_records_are_listed_once_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let (model, mut writer) = open(dir.path()).unwrap();
    writer
        .apply_batch(&[
            rejected(2, 5, RejectionKind::Malformed),
            rejected(2, 5, RejectionKind::Malformed),
            rejected(0, 9, RejectionKind::UnknownType),
        ])
        .unwrap();
    let places: Vec<(i32, i64)> = model
        .rejected_events()
        .unwrap()
        .iter()
        .map(|rejected| (rejected.partition, rejected.offset))
        .collect();
    assert_eq!(places, vec![(0, 9), (2, 5)]);
    writer.flush_all().unwrap();
    assert_eq!(
        model.next_offsets().unwrap(),
        BTreeMap::from([(0, 10), (2, 6)])
    );
}

#[test]
fn what_was_flushed_survives_a_reopen_and_what_was_not_is_applied_again() {
    let dir = tempfile::tempdir().unwrap();
    let flushed = CustomerCreated::new(customer(1, "Kept"));
    let lost = CustomerCreated::new(customer(1, "Lost"));
    {
        let (model, mut writer) = open(dir.path()).unwrap();
        writer.apply_batch(&[created(&flushed, 2, 41)]).unwrap();
        writer.flush_all().unwrap();
        writer.apply_batch(&[created(&lost, 2, 42)]).unwrap();
        assert_eq!(model.applied_offsets(), BTreeMap::from([(2, 43)]));
        // Dropped without a flush: as after a crash, the last layer is gone.
    }
    let (model, mut writer) = reopen(dir.path());
    assert_eq!(model.next_offsets().unwrap(), BTreeMap::from([(2, 42)]));
    assert_eq!(
        model.get(flushed.customer.id).unwrap(),
        Some(flushed.customer.clone())
    );
    assert_eq!(model.get(lost.customer.id).unwrap(), None);
    // The projector reapplies from the committed offset: nothing doubles.
    let outcomes = writer.apply_batch(&[created(&lost, 2, 42)]).unwrap();
    assert_eq!(outcomes, vec![ApplyOutcome::Applied]);
    assert_eq!(
        find(&model, &[("lastName", "l")]).customers,
        vec![lost.customer]
    );
    assert_eq!(find(&model, &[]).total, 2);
}

#[test]
fn past_the_last_ordinal_the_writer_stops_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (model, mut writer) = open(dir.path()).unwrap();
    writer.limit_ordinals(2);
    let first = CustomerCreated::new(customer(1, "First"));
    let second = CustomerCreated::new(customer(1, "Second"));
    let third = CustomerCreated::new(customer(1, "Third"));
    writer
        .apply_batch(&[created(&first, 0, 0), created(&second, 0, 1)])
        .unwrap();
    let refused = writer.apply_batch(&[created(&third, 0, 2)]);
    assert!(
        matches!(refused, Err(ReadModelError::Full(2))),
        "{refused:?}"
    );
    assert_eq!(model.get(third.customer.id).unwrap(), None);
    assert_eq!(model.applied_offsets(), BTreeMap::from([(0, 2)]));
    assert_eq!(find(&model, &[]).total, 2);
}

#[test]
fn an_update_moves_a_customer_between_terms_in_every_layer() {
    let dir = tempfile::tempdir().unwrap();
    let (model, mut writer) = open(dir.path()).unwrap();
    let event = CustomerCreated::new(customer(3, "Old"));
    let id = event.customer.id;
    writer.apply_batch(&[created(&event, 0, 0)]).unwrap();
    writer.flush_all().unwrap();
    let change = update(
        &event.customer,
        2,
        &[
            (TextField::LastName, Some("New")),
            (TextField::City, Some("Århus")),
        ],
    );
    let RegistryEvent::CustomerUpdated(updated) = &change else {
        unreachable!()
    };
    let expected = updated.applied_to(&event.customer);
    assert_eq!(
        writer
            .apply_batch(&[record_of(change.clone(), 0, 1)])
            .unwrap(),
        vec![ApplyOutcome::Applied]
    );
    for stage in ["in memory", "flushed"] {
        assert_eq!(find(&model, &[("lastName", "old")]).total, 0, "{stage}");
        assert_eq!(
            find(&model, &[("lastName", "new")]).customers,
            vec![expected.clone()],
            "{stage}"
        );
        assert_eq!(find(&model, &[("city", "arhus")]).total, 1, "{stage}");
        assert_eq!(find(&model, &[("accountId", "3")]).total, 1, "{stage}");
        assert_eq!(model.get(id).unwrap(), Some(expected.clone()), "{stage}");
        assert_eq!(
            model.history_of(id).unwrap(),
            vec![(0, 0), (0, 1)],
            "{stage}"
        );
        writer.flush_all().unwrap();
    }
    assert_eq!(expected.version, 2);
    assert_eq!(expected.updated_at, updated.occurred_at);
    // Clearing a field takes the customer out of its terms.
    let cleared = update(&expected, 3, &[(TextField::City, None)]);
    writer.apply_batch(&[record_of(cleared, 0, 2)]).unwrap();
    assert_eq!(find(&model, &[("city", "arhus")]).total, 0);
    assert_eq!(
        model
            .get(id)
            .unwrap()
            .unwrap()
            .details
            .text(TextField::City),
        None
    );
    // The same update again is a duplicate; a change of no customer is absent.
    let again = writer.apply_batch(&[record_of(change, 1, 0)]).unwrap();
    let unknown = update(
        &customer(3, "Nobody"),
        2,
        &[(TextField::LastName, Some("X"))],
    );
    let nobody = writer.apply_batch(&[record_of(unknown, 0, 3)]).unwrap();
    assert_eq!(
        (again, nobody),
        (vec![ApplyOutcome::Duplicate], vec![ApplyOutcome::Absent])
    );
    assert_eq!(
        model.history_of(id).unwrap(),
        vec![(0, 0), (0, 1), (0, 2), (1, 0)]
    );
}

#[test]
fn a_replay_writes_the_changes_of_customers_it_committed_with_no_commit_holding_them() {
    let dir = tempfile::tempdir().unwrap();
    let customers: Vec<CustomerCreated> = (0..40)
        .map(|_| CustomerCreated::new(customer(5, "Before")))
        .collect();
    {
        let (model, mut writer) = open_with(dir.path(), FlushPolicy::replay()).unwrap();
        let creates: Vec<LogRecord> = customers
            .iter()
            .zip(0..)
            .map(|(event, offset)| created(event, 0, offset))
            .collect();
        writer.apply_batch(&creates).unwrap();
        writer.flush_all().unwrap();
        // Every other customer, across all three record blocks, changed after its commit.
        let updates: Vec<LogRecord> = customers
            .iter()
            .step_by(2)
            .zip(40..)
            .map(|(event, offset)| {
                let change = update(&event.customer, 2, &[(TextField::LastName, Some("After"))]);
                record_of(change, 0, offset)
            })
            .collect();
        writer.apply_batch(&updates).unwrap();
        writer.flush_all().unwrap();
        assert_eq!(model.applied_offsets(), BTreeMap::from([(0, 60)]));
    }
    let (model, _writer) = reopen(dir.path());
    assert_every_other_became_after(&model, &customers, 2);
}

/// A replay's flushes write their segments unmerged, and its last flush merges them as the
/// tiers ask, stale postings left out; finds answer the same throughout.
#[test]
fn a_replay_merges_its_segments_once_at_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let customers: Vec<CustomerCreated> = (0..12)
        .map(|_| CustomerCreated::new(customer(5, "Before")))
        .collect();
    let segments = |model: &ReadModel| model.shared.index.read().segments.len();
    {
        let policy = FlushPolicy {
            changes: 1,
            ..FlushPolicy::replay()
        };
        let (model, mut writer) = open_with(dir.path(), policy).unwrap();
        // A layer a customer, each flushed (after the one before it ended) on its own.
        for (offset, event) in (0..).zip(&customers) {
            writer.apply_batch(&[created(event, 0, offset)]).unwrap();
            writer.flush_if_due(true).unwrap();
        }
        for (offset, event) in (12..).zip(customers.iter().step_by(2)) {
            let change = update(&event.customer, 2, &[(TextField::LastName, Some("After"))]);
            writer.apply_batch(&[record_of(change, 0, offset)]).unwrap();
            writer.flush_if_due(true).unwrap();
        }
        // Every flush but the one still under way wrote a segment, and none merged (tiny
        // segments, four to a tier: a serve's flushes would have merged every fourth).
        assert!(segments(&model) >= 17, "{} segments", segments(&model));
        writer.flush_all().unwrap();
        assert!(segments(&model) < 4, "{} segments", segments(&model));
        assert_every_other_became_after(&model, &customers, 2);
    }
    let (model, _writer) = reopen(dir.path());
    assert!(segments(&model) < 4, "{} segments", segments(&model));
    assert_every_other_became_after(&model, &customers, 2);
}

/// That the even customers of `customers` are at `version`, named "After", the others at 1,
/// named "Before", in gets and in finds.
fn assert_every_other_became_after(model: &ReadModel, customers: &[CustomerCreated], version: u64) {
    for (n, event) in customers.iter().enumerate() {
        let stored = model.get(event.customer.id).unwrap().unwrap();
        let (version, name) = if n % 2 == 0 {
            (version, "After")
        } else {
            (1, "Before")
        };
        assert_eq!(stored.version, version, "customer {n}");
        assert_eq!(
            stored.details.text(TextField::LastName),
            Some(name),
            "customer {n}"
        );
    }
    let after = customers.len().div_ceil(2);
    assert_eq!(find(model, &[("lastName", "after")]).total, after);
    assert_eq!(
        find(model, &[("lastName", "before")]).total,
        customers.len() - after
    );
}

#[test]
fn a_serve_reads_customers_changed_over_several_flushes_before_and_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let customers: Vec<CustomerCreated> = (0..40)
        .map(|_| CustomerCreated::new(customer(5, "Before")))
        .collect();
    let mut offset = 0;
    let mut next = |event: RegistryEvent| {
        offset += 1;
        record_of(event, 0, offset - 1)
    };
    {
        let (model, mut writer) = open(dir.path()).unwrap();
        let creates: Vec<LogRecord> = customers
            .iter()
            .map(|event| next(RegistryEvent::CustomerCreated(event.clone())))
            .collect();
        writer.apply_batch(&creates).unwrap();
        writer.flush_all().unwrap();
        // Every other customer changed twice, a flush each time: its record block takes a new
        // generation each time, the last block (a partial one) included.
        for (version, name) in [(2, "Middle"), (3, "After")] {
            let updates: Vec<LogRecord> = customers
                .iter()
                .step_by(2)
                .map(|event| {
                    next(update(
                        &event.customer,
                        version,
                        &[(TextField::LastName, Some(name))],
                    ))
                })
                .collect();
            writer.apply_batch(&updates).unwrap();
            writer.flush_all().unwrap();
        }
        // New customers fill the partial block, now at a later generation, in place.
        let late = CustomerCreated::new(customer(5, "Late"));
        writer
            .apply_batch(&[next(RegistryEvent::CustomerCreated(late.clone()))])
            .unwrap();
        writer.flush_all().unwrap();
        assert_eq!(model.get(late.customer.id).unwrap().unwrap().version, 1);
        assert_eq!(find(&model, &[("lastName", "after")]).total, 20);
    }
    let (model, _writer) = reopen(dir.path());
    assert_every_other_became_after(&model, &customers, 3);
    assert_eq!(find(&model, &[("lastName", "middle")]).total, 0);
    assert_eq!(find(&model, &[("lastName", "late")]).total, 1);
}

#[test]
fn only_the_next_version_applies_and_the_loser_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let (model, mut writer) = open(dir.path()).unwrap();
    let event = CustomerCreated::new(customer(5, "Race"));
    let winner = update(&event.customer, 2, &[(TextField::City, Some("Lyon"))]);
    let loser = update(&event.customer, 2, &[(TextField::City, Some("Nice"))]);
    let skipping = update(&event.customer, 4, &[(TextField::City, Some("Pau"))]);
    let outcomes = writer
        .apply_batch(&[
            created(&event, 0, 0),
            record_of(winner, 0, 1),
            record_of(loser, 0, 2),
            record_of(skipping, 0, 3),
        ])
        .unwrap();
    assert_eq!(
        outcomes,
        vec![
            ApplyOutcome::Applied,
            ApplyOutcome::Applied,
            ApplyOutcome::Stale,
            ApplyOutcome::Stale
        ]
    );
    let held = model.get(event.customer.id).unwrap().unwrap();
    assert_eq!(
        (held.version, held.details.text(TextField::City)),
        (2, Some("Lyon"))
    );
    let kinds: Vec<(i64, RejectionKind)> = model
        .rejected_events()
        .unwrap()
        .iter()
        .map(|rejected| (rejected.offset, rejected.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (2, RejectionKind::VersionConflict),
            (3, RejectionKind::VersionConflict)
        ]
    );
}

#[test]
fn a_deleted_customer_leaves_every_answer_but_keeps_its_history() {
    let dir = tempfile::tempdir().unwrap();
    let (model, mut writer) = open(dir.path()).unwrap();
    let kept = CustomerCreated::new(customer(4, "Stays"));
    let gone = CustomerCreated::new(customer(4, "Goes"));
    let fresh = CustomerCreated::new(customer(4, "Going"));
    writer
        .apply_batch(&[created(&kept, 0, 0), created(&gone, 0, 1)])
        .unwrap();
    writer.flush_all().unwrap();
    // One deleted from the store beneath, one in the batch that creates it.
    let outcomes = writer
        .apply_batch(&[
            created(&fresh, 0, 2),
            record_of(delete(&gone.customer, 2), 0, 3),
            record_of(delete(&fresh.customer, 2), 0, 4),
            record_of(delete(&fresh.customer, 3), 0, 5),
            record_of(
                update(&fresh.customer, 3, &[(TextField::City, Some("X"))]),
                0,
                6,
            ),
            created(&fresh, 1, 0),
        ])
        .unwrap();
    assert_eq!(
        outcomes,
        vec![
            ApplyOutcome::Applied,
            ApplyOutcome::Applied,
            ApplyOutcome::Applied,
            ApplyOutcome::Absent,
            ApplyOutcome::Absent,
            ApplyOutcome::Duplicate
        ],
        "a deleted customer takes no change, and its create seen again does not revive it"
    );
    for stage in ["in memory", "flushed"] {
        assert_eq!(find(&model, &[("lastName", "go")]).total, 0, "{stage}");
        assert_eq!(
            find(&model, &[("accountId", "4")]).customers,
            vec![kept.customer.clone()],
            "{stage}"
        );
        assert_eq!(find(&model, &[]).total, 1, "{stage}");
        assert_eq!(model.get(gone.customer.id).unwrap(), None, "{stage}");
        assert_eq!(model.get(fresh.customer.id).unwrap(), None, "{stage}");
        assert_eq!(
            model.history_of(fresh.customer.id).unwrap(),
            vec![(0, 2), (0, 4), (1, 0)],
            "{stage}"
        );
        let tombstone = model.record(fresh.customer.id).unwrap().unwrap();
        assert!(
            tombstone.deleted && tombstone.customer.version == 2,
            "{stage}"
        );
        writer.flush_all().unwrap();
    }
    drop((model, writer));
    let model = reopen(dir.path()).0;
    assert_eq!(find(&model, &[]).customers, vec![kept.customer.clone()]);
    assert_eq!(model.get(gone.customer.id).unwrap(), None);
    assert_eq!(
        model.history_of(gone.customer.id).unwrap(),
        vec![(0, 1), (0, 3)]
    );
    assert_eq!(model.len(), 1);
}

/// The erasure of `customer`.
fn erase(customer: &Customer) -> RegistryEvent {
    RegistryEvent::CustomerErased(crate::domain::CustomerErased::new(
        customer.id,
        customer.details.account_id,
        customer.created_at,
    ))
}

#[test]
fn an_erased_customer_keeps_no_personal_field_or_term_and_takes_no_change() {
    let dir = tempfile::tempdir().unwrap();
    let (model, mut writer) = open(dir.path()).unwrap();
    let kept = CustomerCreated::new(customer(5, "Stays"));
    let live = CustomerCreated::new(customer(5, "Erasmus"));
    let deleted = CustomerCreated::new(customer(5, "Erasable"));
    writer
        .apply_batch(&[
            created(&kept, 0, 0),
            created(&live, 0, 1),
            created(&deleted, 0, 2),
            record_of(delete(&deleted.customer, 2), 0, 3),
        ])
        .unwrap();
    writer.flush_all().unwrap();
    let outcomes = writer
        .apply_batch(&[
            record_of(erase(&live.customer), 0, 4),
            record_of(erase(&deleted.customer), 0, 5),
            record_of(erase(&live.customer), 0, 6),
            record_of(
                update(&live.customer, 2, &[(TextField::City, Some("X"))]),
                0,
                7,
            ),
            record_of(delete(&live.customer, 2), 0, 8),
            created(&live, 1, 0),
        ])
        .unwrap();
    assert_eq!(
        outcomes,
        vec![
            ApplyOutcome::Applied,
            ApplyOutcome::Applied,
            ApplyOutcome::Duplicate,
            ApplyOutcome::Absent,
            ApplyOutcome::Absent,
            ApplyOutcome::Duplicate,
        ],
        "an erasure applies once, to live and deleted customers; nothing changes or revives \
         an erased one"
    );
    for stage in ["in memory", "flushed"] {
        assert_eq!(find(&model, &[("lastName", "eras")]).total, 0, "{stage}");
        assert_eq!(
            find(&model, &[("accountId", "5")]).customers,
            vec![kept.customer.clone()],
            "{stage}"
        );
        for erased in [&live, &deleted] {
            let record = model.record(erased.customer.id).unwrap().unwrap();
            assert!(record.erased && record.deleted, "{stage}");
            let mut bare = CustomerDetails::for_account(AccountId::parse(5).unwrap());
            bare.code = erased.customer.details.code.clone();
            assert_eq!(record.customer.details, bare, "{stage}: no personal field");
            assert_eq!(model.get(erased.customer.id).unwrap(), None, "{stage}");
        }
        assert_eq!(
            model.history_of(live.customer.id).unwrap(),
            vec![(0, 1), (0, 4), (0, 6), (1, 0)],
            "{stage}"
        );
        writer.flush_all().unwrap();
    }
    drop((model, writer));
    let model = reopen(dir.path()).0;
    assert!(model.record(live.customer.id).unwrap().unwrap().erased);
    assert_eq!(find(&model, &[]).customers, vec![kept.customer]);
}

#[test]
fn a_read_model_follows_one_log_only() {
    let dir = tempfile::tempdir().unwrap();
    let (model, _) = open(dir.path()).unwrap();
    model.bind_to_log("customers.events", "cluster-a").unwrap();
    model.bind_to_log("customers.events", "cluster-a").unwrap();
    assert!(matches!(
        model.bind_to_log("other.events", "cluster-a"),
        Err(ReadModelError::OtherLog {
            setting: "topic",
            ..
        })
    ));
    assert!(matches!(
        model.bind_to_log("customers.events", "cluster-b"),
        Err(ReadModelError::OtherLog {
            setting: "cluster",
            ..
        })
    ));
}

#[test]
fn a_read_model_of_an_older_format_is_refused_until_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    {
        // What format 2 left: its own trees, and its format in `meta`.
        let db = sled::open(dir.path()).unwrap();
        db.open_tree("customers")
            .unwrap()
            .insert("id", "{}")
            .unwrap();
        db.open_tree("meta").unwrap().insert("format", "2").unwrap();
        db.flush().unwrap();
    }
    let (model, _) = reopen(dir.path());
    let refused = model.bind_to_log("customers.events", "cluster-a");
    assert!(
        matches!(&refused, Err(ReadModelError::OldFormat { found }) if found == "2"),
        "{refused:?}"
    );
    assert!(refused
        .unwrap_err()
        .to_string()
        .contains("customer-registry rebuild"));
}

/// A read model in `dir` whose meta says `format`, as an older build left it before writing.
fn stored_as_format(dir: &std::path::Path, format: &str) {
    let db = sled::open(dir).unwrap();
    db.open_tree("meta")
        .unwrap()
        .insert("format", format)
        .unwrap();
    db.flush().unwrap();
}

/// Every value `dir`'s tree `tree` holds under keys starting with `prefix` (the read model
/// closed).
fn stored_values(dir: &std::path::Path, tree: &str, prefix: &[u8]) -> Vec<Vec<u8>> {
    let db = loop {
        match sled::open(dir) {
            Ok(db) => break db,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    };
    let tree = db.open_tree(tree).unwrap();
    tree.scan_prefix(prefix)
        .values()
        .map(|value| value.unwrap().to_vec())
        .collect()
}

/// Writes 300 customers of account 5 named `name` and a number into the read model in `dir`,
/// flushed, and closes it; returns their creates.
fn write_named(dir: &std::path::Path, name: &str) -> Vec<CustomerCreated> {
    let events: Vec<_> = (0..300)
        .map(|n| CustomerCreated::new(customer(5, &format!("{name}{n}"))))
        .collect();
    let (model, mut writer) = open(dir).unwrap();
    model.bind_to_log("customers.events", "cluster-a").unwrap();
    let records: Vec<_> = (0..events.len())
        .map(|n| created(&events[n], 0, n as i64))
        .collect();
    writer.apply_batch(&records).unwrap();
    writer.flush_all().unwrap();
    events
}

#[test]
fn read_models_of_formats_4_and_5_are_read_and_written_unpacked_and_stay_format_5() {
    for format in ["4", UNPACKED_FORMAT] {
        let dir = tempfile::tempdir().unwrap();
        stored_as_format(dir.path(), format);
        let events = write_named(dir.path(), "Kept");
        // Blocks as the build before reads them: a column block decodes as it is stored.
        let columns = stored_values(dir.path(), "state", b"c");
        let decoded = crate::read_model::store::codec::decode_column_block(&columns[0]).unwrap();
        assert_eq!(decoded.iter().flatten().count(), 128);
        let (model, _writer) = reopen(dir.path());
        model.bind_to_log("customers.events", "cluster-a").unwrap();
        assert_eq!(model.shared.store.format().unwrap(), UNPACKED_FORMAT);
        assert_eq!(
            model.get(events[7].customer.id).unwrap().unwrap().version,
            1
        );
        let kept = find(&model, &[("accountId", "5"), ("lastName", "Kept299")]);
        assert_eq!(kept.customers.len(), 1);
    }
}

#[test]
fn a_new_read_model_is_format_6_and_packs_its_index_and_column_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let events = write_named(dir.path(), "Packed");
    assert_eq!(reopen(dir.path()).0.shared.store.format().unwrap(), FORMAT);
    let columns = stored_values(dir.path(), "state", b"c");
    let index = stored_values(dir.path(), "segments", b"");
    for block in columns.iter().chain(&index) {
        let mut unpacked = Vec::new();
        crate::read_model::store::codec::unpack_block_into(block, &mut unpacked).unwrap();
        assert!(unpacked.len() >= block.len() - 1);
    }
    let smaller = |blocks: &[Vec<u8>]| blocks.iter().any(|block| block[0] == 1);
    assert!(smaller(&columns) && smaller(&index), "lz4 shrinks them");
    let (model, _writer) = reopen(dir.path());
    model.bind_to_log("customers.events", "cluster-a").unwrap();
    assert_eq!(
        model.get(events[7].customer.id).unwrap().unwrap().version,
        1
    );
    let packed = find(&model, &[("accountId", "5"), ("lastName", "Packed299")]);
    assert_eq!(packed.customers.len(), 1);
}

/// The oracle: random histories checked against a naive filter (`oracle.rs`).
mod oracle;

/// New Year's Day 2026, midnight UTC: when the customers of the paging tests are created.
fn new_year() -> chrono::DateTime<chrono::Utc> {
    DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc)
}

/// Applies `count` customers, one in `share` of account 1 (the rest of account 2), the `n`th
/// created `millis(n)` ms after [`new_year`]; answers account 1's, in answer order.
fn account_one_of(
    writer: &mut ReadModelWriter,
    count: i64,
    share: i64,
    millis: impl Fn(i64) -> i64,
) -> Vec<Customer> {
    let mut records = Vec::new();
    let mut selected = Vec::new();
    for n in 0..count {
        let account = if n % share == 0 { 1 } else { 2 };
        let mut customer = customer(account, &format!("N{n}"));
        customer.created_at = new_year() + chrono::Duration::milliseconds(millis(n));
        customer.updated_at = customer.created_at;
        if account == 1 {
            selected.push(customer.clone());
        }
        records.push(created(&CustomerCreated::new(customer), 0, n));
    }
    writer.apply_batch(&records).unwrap();
    selected.sort_by_key(directory::OrderKey::of);
    selected
}

/// The page of account 1's customers from `offset`, `limit` long.
fn page_of_account_one(model: &ReadModel, offset: usize, limit: usize) -> Page {
    find(
        model,
        &[
            ("accountId", "1"),
            ("offset", &offset.to_string()),
            ("limit", &limit.to_string()),
        ],
    )
}

/// Deep pages of a selection narrow down to the page's keys over several passes (buckets of
/// order keys, tiny in tests), some created in one millisecond: every page equals the naive
/// sort's, whatever the offset and limit.
#[test]
fn deep_pages_narrow_to_the_same_customers_as_a_full_sort() {
    let dir = tempfile::tempdir().unwrap();
    let (model, mut writer) = open(dir.path()).unwrap();
    // Clusters: runs of ten customers in one millisecond, and a long quiet gap midway.
    let selected = account_one_of(&mut writer, 600, 3, |n| {
        n / 10 * 7 + if n >= 300 { 86_400_000 } else { 0 }
    });
    for (offset, limit) in [(0, 1), (67, 1), (150, 7), (100, 100), (190, 50), (199, 1)] {
        let page = page_of_account_one(&model, offset, limit);
        let expected: Vec<&Customer> = selected.iter().skip(offset).take(limit).collect();
        let found: Vec<&Customer> = page.customers.iter().collect();
        assert_eq!(found, expected, "offset {offset}, limit {limit}");
        assert_eq!(page.total, selected.len());
    }
}

/// Records that change nothing (rejected ones) still have their offsets committed on the flush
/// interval, so a restart after a flood of them does not replay it all. (Before, their offsets
/// waited for the next change.)
#[test]
fn offsets_of_records_that_change_nothing_are_committed_on_the_interval() {
    let dir = tempfile::tempdir().unwrap();
    let policy = FlushPolicy {
        interval: std::time::Duration::ZERO,
        ..FlushPolicy::default()
    };
    {
        let (_model, mut writer) = open_with(dir.path(), policy).unwrap();
        let flood: Vec<LogRecord> = (0..50)
            .map(|offset| rejected(0, offset, RejectionKind::Malformed))
            .collect();
        writer.apply_batch(&flood).unwrap();
        // The projector's tick; the writer's drop waits for the flush it started.
        writer.flush_if_due(false).unwrap();
    }
    let (model, _writer) = reopen(dir.path());
    assert_eq!(model.next_offsets().unwrap(), BTreeMap::from([(0, 50)]));
}

/// A segment merged away keeps its blocks while a reader holds a segment list that names it
/// (readers read segments with the index's lock released), and loses them once none does.
#[test]
fn merged_away_segments_stay_while_a_reader_holds_them() {
    let dir = tempfile::tempdir().unwrap();
    let (model, mut writer) = open(dir.path()).unwrap();
    let mut flush_one = |offset: i64| {
        let held = customer(1, "Held");
        let record = created(&CustomerCreated::new(held), 0, offset);
        writer.apply_batch(&[record]).unwrap();
        writer.flush_all().unwrap();
    };
    flush_one(0);
    let held = Arc::clone(&model.shared.index.read().segments);
    let first = held[0].meta.id;
    let (field, needle) = query(&[("lastName", "Held")]).text_filters[0].clone();
    let range = terms::TermRange::of(field, &needle, true);
    let store = &model.shared.store;
    let read = store.live_postings(&held, &range, usize::MAX).unwrap();
    assert_eq!(read.map(|(ordinals, _)| ordinals.len()), Some(1), "before");
    let mut offset = 1;
    while model
        .shared
        .index
        .read()
        .segments
        .iter()
        .any(|s| s.meta.id == first)
    {
        assert!(offset < 64, "the first segment was never merged away");
        flush_one(offset);
        offset += 1;
    }
    let read = store.live_postings(&held, &range, usize::MAX).unwrap();
    assert_eq!(read.map(|(ordinals, _)| ordinals.len()), Some(1));
    drop(held);
    flush_one(offset);
    let (left, _) = store
        .postings_in(first, &range, usize::MAX)
        .unwrap()
        .unwrap();
    assert!(
        left.is_empty(),
        "a merged-away segment outlived its readers"
    );
    assert_eq!(
        find(&model, &[("lastName", "Held")]).total as i64,
        offset + 1
    );
}

/// A page straddling two crowded milliseconds (hundreds of customers created in each) narrows
/// each side on its own, by id within a millisecond: it never gathers more keys than the page
/// (or `GATHER_AT_MOST`, tiny in tests), and equals the naive sort's page.
#[test]
fn pages_across_crowded_milliseconds_gather_no_more_than_the_page() {
    use planner::order::LARGEST_GATHER;
    let dir = tempfile::tempdir().unwrap();
    let (model, mut writer) = open(dir.path()).unwrap();
    // Two crowded milliseconds a day apart.
    let selected = account_one_of(&mut writer, 2_400, 6, |n| {
        if n >= 1_200 {
            86_400_000
        } else {
            0
        }
    });
    for (offset, limit) in [(195, 10), (150, 100), (199, 2), (350, 50), (0, 400)] {
        LARGEST_GATHER.with(|largest| largest.set(0));
        let page = page_of_account_one(&model, offset, limit);
        let expected: Vec<&Customer> = selected.iter().skip(offset).take(limit).collect();
        let found: Vec<&Customer> = page.customers.iter().collect();
        assert_eq!(found, expected, "offset {offset}, limit {limit}");
        let gathered = LARGEST_GATHER.with(std::cell::Cell::get);
        assert!(
            gathered <= limit.max(2),
            "offset {offset}, limit {limit}: one gather held {gathered} keys"
        );
    }
}
