//! Failures injected at the read model's storage boundary (the `fail` crate's failpoints,
//! compiled in only for tests). One scenario at a time: failpoints are process-wide.

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
    let scenario = fail::FailScenario::setup();
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

/// A find reads stored records after it has released the index's lock: while one waits on the
/// disk (a sled read held at the `store-read` failpoint), the projector's writer still applies a
/// batch (its write lock would otherwise queue behind the find, and every read behind it).
#[test]
fn a_find_waiting_on_the_store_does_not_hold_up_the_writer() {
    use customer_registry::read_model::{CustomerQuery, Work, MAX_WORK};
    use std::sync::mpsc;
    let scenario = fail::FailScenario::setup();
    let dir = tempfile::tempdir().unwrap();
    let (model, mut writer) = open_with(dir.path(), FlushPolicy::default()).unwrap();
    let (stored, stored_record) = created("Stored", 0);
    writer.apply_batch(&[stored_record]).unwrap();
    writer.flush_all().unwrap();

    let (reached, find_is_reading) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let released = std::sync::Mutex::new(released);
    fail::cfg_callback("store-read", move || {
        let _ = reached.send(());
        let _ = released.lock().unwrap().recv();
    })
    .unwrap();
    let reader = {
        let model = model.clone();
        std::thread::spawn(move || {
            model
                .find(&CustomerQuery::default(), &Work::limited_to(MAX_WORK))
                .map(|page| page.customers)
        })
    };
    find_is_reading
        .recv_timeout(Duration::from_secs(30))
        .expect("the find reads the stored record");

    let (applied, writer_done) = mpsc::channel();
    let applier = std::thread::spawn(move || {
        let outcome = writer.apply_batch(&[created("Later", 1).1]);
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
    assert_eq!(reader.join().unwrap().unwrap(), vec![stored]);
    scenario.teardown();
}
