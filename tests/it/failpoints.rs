//! Failures injected at the read model's storage boundary (the `fail` crate's failpoints,
//! compiled in only for tests). One scenario at a time ([`common::failpoints`]): failpoints are
//! process-wide.

use crate::common;
use customer_registry::domain::{
    AccountId, Customer, CustomerCreated, CustomerDetails, RegistryEvent, TextField,
};
use customer_registry::read_model::{
    open_with, ApplyOutcome, FlushPolicy, LogRecord, ReadModelError, RecordChange,
};
use std::collections::BTreeMap;
use std::time::Duration;

fn created(last_name: &str, offset: i64) -> (Customer, LogRecord) {
    let mut details = CustomerDetails::for_account(AccountId::parse(1).unwrap());
    details.set_text(TextField::LastName, last_name).unwrap();
    let customer = Customer::register(details);
    let event = RegistryEvent::CustomerCreated(CustomerCreated::new(customer.clone()));
    let record = LogRecord {
        partition: 0,
        offset,
        change: RecordChange::Event(Box::new(event)),
    };
    (customer, record)
}

/// A flush that fails must stop the writer: a later layer committed past it would move the
/// committed offsets beyond records nothing stored (they would never be applied again).
#[test]
fn a_failed_flush_is_never_overtaken_by_the_next_one() {
    let scenario = common::failpoints();
    let dir = tempfile::tempdir().unwrap();
    let policy = FlushPolicy {
        // The flusher waits before its commit, so a second record goes in while the first
        // layer is still being flushed.
        pause_before_commit: Duration::from_millis(300),
        ..FlushPolicy::default()
    };
    let (first, first_record) = created("First", 0);
    let (second, second_record) = created("Second", 1);
    {
        let (model, mut writer) = open_with(dir.path(), policy).unwrap();
        writer
            .apply_batch(std::slice::from_ref(&first_record))
            .unwrap();
        fail::cfg("read-model-flush-commit", "return").unwrap();
        writer.flush_if_due(true).unwrap();
        writer
            .apply_batch(std::slice::from_ref(&second_record))
            .unwrap();
        std::thread::sleep(Duration::from_millis(600));
        fail::remove("read-model-flush-commit");
        // What the projector's flush tick does next: it must refuse, not commit the second
        // layer over the failed first.
        let tick = writer.flush_if_due(true);
        assert!(
            matches!(tick, Err(ReadModelError::Flush(_))),
            "a flush after a failed one went ahead: {tick:?}"
        );
        assert!(writer.apply_batch(&[created("Third", 2).1]).is_err());
        assert_eq!(model.get(first.id).unwrap(), Some(first.clone()));
    }
    let (model, mut writer) = open_with(dir.path(), FlushPolicy::default()).unwrap();
    assert_eq!(
        model.next_offsets().unwrap(),
        BTreeMap::new(),
        "nothing was committed, so the projector replays both records"
    );
    let outcomes = writer.apply_batch(&[first_record, second_record]).unwrap();
    assert_eq!(outcomes, vec![ApplyOutcome::Applied; 2]);
    writer.flush_all().unwrap();
    assert_eq!(model.get(first.id).unwrap(), Some(first));
    assert_eq!(model.get(second.id).unwrap(), Some(second));
    scenario.teardown();
}

/// A read model holding one customer, flushed to the store (out of every layer in memory).
fn one_stored_customer(
    dir: &std::path::Path,
) -> (
    customer_registry::read_model::ReadModel,
    customer_registry::read_model::ReadModelWriter,
    Customer,
) {
    let (model, mut writer) = open_with(dir, FlushPolicy::default()).unwrap();
    let (stored, stored_record) = created("Stored", 0);
    writer.apply_batch(&[stored_record]).unwrap();
    writer.flush_all().unwrap();
    (model, writer, stored)
}

/// Makes the first sled read of a record block or a segment's postings wait (later ones go through): answers a receiver
/// that hears when it has begun, and a sender that lets it go on.
fn pause_the_first_store_read() -> (std::sync::mpsc::Receiver<()>, std::sync::mpsc::Sender<()>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let (reached, waiting) = std::sync::mpsc::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let released = std::sync::Mutex::new(released);
    let first = AtomicBool::new(true);
    fail::cfg_callback("store-read", move || {
        if first.swap(false, Ordering::SeqCst) {
            let _ = reached.send(());
            let _ = released.lock().unwrap().recv();
        }
    })
    .unwrap();
    (waiting, release)
}

/// Starts a find of `filters` on another thread, and returns once the find is held in its first
/// store read (see [`pause_the_first_store_read`]).
fn find_held_in_the_store(
    model: &customer_registry::read_model::ReadModel,
    filters: &[(&str, &str)],
    find_is_reading: &std::sync::mpsc::Receiver<()>,
) -> std::thread::JoinHandle<Result<customer_registry::read_model::Page, ReadModelError>> {
    use customer_registry::read_model::{CustomerQuery, Work, MAX_WORK};
    let model = model.clone();
    let pairs: Vec<(String, String)> = filters
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    let query = CustomerQuery::parse(&pairs).unwrap();
    let reader = std::thread::spawn(move || model.find(&query, &Work::limited_to(MAX_WORK)));
    find_is_reading
        .recv_timeout(Duration::from_secs(30))
        .expect("the find reads the stored record");
    reader
}

/// Holds a find of `filters` in its first store read, has the writer apply a customer named
/// `later_name` meanwhile, asserting that it does not wait for the find, then lets the find go
/// on. Answers the find's page, the stored customer and the later one.
fn apply_while_a_find_waits_on_the_store(
    filters: &[(&str, &str)],
    later_name: &str,
) -> (customer_registry::read_model::Page, Customer, Customer) {
    use std::sync::mpsc;
    let scenario = common::failpoints();
    let dir = tempfile::tempdir().unwrap();
    let (model, mut writer, stored) = one_stored_customer(dir.path());
    let (find_is_reading, release) = pause_the_first_store_read();
    let reader = find_held_in_the_store(&model, filters, &find_is_reading);

    let (later, later_record) = created(later_name, 1);
    let (applied, writer_done) = mpsc::channel();
    let applier = std::thread::spawn(move || {
        let outcome = writer.apply_batch(&[later_record]);
        let _ = applied.send(());
        outcome
    });
    let writer_went_on = writer_done.recv_timeout(Duration::from_secs(30));
    fail::remove("store-read");
    let _ = release.send(());
    assert!(
        writer_went_on.is_ok(),
        "the writer waited for a find's store read"
    );
    assert_eq!(
        applier.join().unwrap().unwrap(),
        vec![ApplyOutcome::Applied]
    );
    let page = reader.join().unwrap().unwrap();
    scenario.teardown();
    (page, stored, later)
}

/// A find reads stored records after it has released the index's lock: while one waits on the
/// disk (a sled read held at the `store-read` failpoint), the projector's writer still applies a
/// batch (its write lock would otherwise queue behind the find, and every read behind it).
#[test]
fn a_find_waiting_on_the_store_does_not_hold_up_the_writer() {
    let (page, stored, _) = apply_while_a_find_waits_on_the_store(&[], "Later");
    assert_eq!(page.customers, vec![stored]);
}

/// A find that reads a stored record after a delete was applied and flushed (its page planned
/// before) leaves the deleted customer out: what it reads late is newer than what it selected.
#[test]
fn a_find_reading_the_store_late_leaves_out_a_customer_deleted_meanwhile() {
    use customer_registry::domain::CustomerDeleted;
    let scenario = common::failpoints();
    let dir = tempfile::tempdir().unwrap();
    let (model, mut writer, stored) = one_stored_customer(dir.path());
    // Only the find's store read waits; the writer's and the flush's go through.
    let (find_is_reading, release) = pause_the_first_store_read();
    let reader = find_held_in_the_store(&model, &[], &find_is_reading);
    let deleted = RegistryEvent::CustomerDeleted(CustomerDeleted {
        event_id: uuid::Uuid::now_v7(),
        occurred_at: stored.created_at,
        audit: Default::default(),
        customer_id: stored.id,
        account_id: stored.details.account_id,
        version: 2,
    });
    let outcome = writer.apply_batch(&[LogRecord {
        partition: 0,
        offset: 1,
        change: RecordChange::Event(Box::new(deleted)),
    }]);
    writer.flush_all().unwrap();
    fail::remove("store-read");
    let _ = release.send(());
    assert_eq!(outcome.unwrap(), vec![ApplyOutcome::Applied]);
    let page = reader.join().unwrap().unwrap();
    let (customers, total) = (page.customers, page.total);
    assert_eq!(total, 1, "planned before the delete");
    assert!(
        customers.is_empty(),
        "a deleted customer listed: {customers:?}"
    );
    scenario.teardown();
}

/// A find reads segment postings with the index's lock released too: while a filtered find
/// waits on the disk for them, the writer applies a batch; the page then holds both the stored
/// customer and the one applied meanwhile (the layers are read after the segments).
#[test]
fn a_find_reading_postings_does_not_hold_up_the_writer() {
    let (page, stored, later) =
        apply_while_a_find_waits_on_the_store(&[("lastName", "Stored")], "Stored");
    assert_eq!(page.total, 2);
    let found: std::collections::BTreeSet<_> = page.customers.iter().map(|c| c.id).collect();
    assert_eq!(found, [stored.id, later.id].into_iter().collect());
}

/// A flush that replaces the segments while a find reads the old ones (its layer then gone from
/// memory, its postings in a new segment) makes the find read the new segments: nothing the
/// flush moved is missed.
#[test]
fn a_find_whose_segments_a_flush_replaced_meanwhile_misses_nothing() {
    let scenario = common::failpoints();
    let dir = tempfile::tempdir().unwrap();
    let (model, mut writer, stored) = one_stored_customer(dir.path());
    let (find_is_reading, release) = pause_the_first_store_read();
    let reader = find_held_in_the_store(&model, &[("lastName", "Stored")], &find_is_reading);

    let (later, later_record) = created("Stored", 1);
    assert_eq!(
        writer.apply_batch(&[later_record]).unwrap(),
        vec![ApplyOutcome::Applied]
    );
    writer.flush_all().unwrap();
    fail::remove("store-read");
    let _ = release.send(());
    let page = reader.join().unwrap().unwrap();
    assert_eq!(page.total, 2, "a customer flushed meanwhile was missed");
    let found: std::collections::BTreeSet<_> = page.customers.iter().map(|c| c.id).collect();
    assert_eq!(found, [stored.id, later.id].into_iter().collect());
    scenario.teardown();
}
