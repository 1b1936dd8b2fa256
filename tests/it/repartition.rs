//! `customer-registry repartition` copies a log into a topic with another partition count: every
//! record once, each customer's events in order on the partition the new count gives it, with
//! where it came from; after a crash it resumes without copying anything twice; and the new
//! topic gives the same registry (rebuild, audit and export agree with the old topic's).

use crate::common;
use crate::common::{kafka_bootstrap, read_topic, text, tool, unique_topic, Record};
use customer_registry::log::Partitioning;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

/// Writes `events` events to `topic` as registry replicas would have: creates, updates and
/// deletes of a few thousand customers, each at its next version, routed by `partitioning`.
/// Answers how many customers are left undeleted.
pub(crate) fn write_history(
    bootstrap: &str,
    topic: &str,
    partitioning: Partitioning,
    events: usize,
) -> usize {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "20")
        .set("queue.buffering.max.messages", "200000")
        .create()
        .unwrap();
    let mut next = common::generator(0x9e37_79b9_7f4a_7c15);
    let cities = ["Oslo", "Lyon", "Graz", "Kiel", "Bergen"];
    let header = partitioning.to_string();
    // Live customers: id → (account, version).
    let mut live: Vec<(String, u64, u64)> = Vec::new();
    for n in 0..events {
        let at = format!(
            "2030-01-01T00:{:02}:{:02}.{:03}Z",
            n / 60_000 % 60,
            n / 1000 % 60,
            n % 1000
        );
        let event_id = uuid::Uuid::now_v7().to_string();
        let choice = if live.len() < 100 { 0 } else { next(10) };
        let (id, event) = match choice {
            0..=3 => {
                let id = uuid::Uuid::now_v7().to_string();
                let account = 70 + next(3);
                live.push((id.clone(), account, 1));
                let event = json!({
                    "eventId": event_id, "eventType": "CustomerCreated", "schemaVersion": 1,
                    "occurredAt": at,
                    "data": {"id": id, "accountId": account, "lastName": format!("Name{}", next(500)),
                             "city": cities[next(5) as usize], "createdAt": at}
                });
                (id, event)
            }
            4..=8 => {
                let at_index = next(live.len() as u64) as usize;
                let (id, account, version) = &mut live[at_index];
                *version += 1;
                let event = json!({
                    "eventId": event_id, "eventType": "CustomerUpdated", "schemaVersion": 1,
                    "occurredAt": at,
                    "data": {"id": id, "accountId": account, "version": version,
                             "changes": {"city": cities[next(5) as usize], "street": format!("{n} Rue")}}
                });
                (id.clone(), event)
            }
            _ => {
                let (id, account, version) = live.swap_remove(next(live.len() as u64) as usize);
                let event = json!({
                    "eventId": event_id, "eventType": "CustomerDeleted", "schemaVersion": 1,
                    "occurredAt": at,
                    "data": {"id": id, "accountId": account, "version": version + 1}
                });
                (id, event)
            }
        };
        let payload = event.to_string();
        let headers = OwnedHeaders::new().insert(Header {
            key: "partitioning",
            value: Some(header.as_str()),
        });
        let mut record = BaseRecord::to(topic)
            .partition(partitioning.partition_of_key(id.as_bytes()))
            .key(&id)
            .payload(&payload)
            .headers(headers);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, returned)) => {
                    record = returned;
                    producer.poll(Duration::from_millis(20));
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(60)).unwrap();
    live.len()
}

fn repartition(
    bootstrap: &str,
    from: &str,
    to: &str,
    partitions: i32,
    env: &[(&str, &str)],
) -> Output {
    Command::new(env!("CARGO_BIN_EXE_customer-registry"))
        .args([
            "repartition",
            "--json",
            "--kafka-bootstrap",
            bootstrap,
            "--from",
            from,
            "--to",
            to,
        ])
        .args(["--partitions", &partitions.to_string()])
        .envs(env.iter().copied())
        .output()
        .expect("running customer-registry repartition")
}

/// The registry a topic holds, as `export` writes it from the log alone, one customer a line.
pub(crate) fn export(bootstrap: &str, topic: &str, dir: &Path) -> Vec<Value> {
    let exported = tool(
        &["export"],
        bootstrap,
        topic,
        &dir.join(format!("export-{topic}")),
    );
    assert_eq!(exported.status.code(), Some(0), "{}", text(&exported));
    String::from_utf8(exported.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Each customer's event ids, in the order the topic holds them (key → ids).
fn events_by_customer(records: &[Record]) -> BTreeMap<String, Vec<String>> {
    let mut ordered: Vec<&Record> = records.iter().collect();
    ordered.sort_by_key(|record| (record.partition, record.offset));
    let mut by_customer: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for record in ordered {
        by_customer
            .entry(record.key.clone())
            .or_default()
            .push(record.value["eventId"].as_str().unwrap().to_owned());
    }
    by_customer
}

/// Every record of `copied` is one of `source`'s, once, on the partition the new partitioning
/// gives its customer, in each customer's order.
pub(crate) fn assert_faithful_copy(
    source: &[Record],
    copied: &[Record],
    partitions: i32,
    from: &str,
) {
    assert_eq!(copied.len(), source.len(), "every record, once");
    let partitioning = Partitioning::over(partitions);
    let mut positions = BTreeSet::new();
    for record in copied {
        assert_eq!(
            record.partition,
            partitioning.partition_of_key(record.key.as_bytes()),
            "{record:?}"
        );
        assert_eq!(
            record.header("partitioning"),
            Some(partitioning.to_string().as_str())
        );
        let position = record.header("source-position").unwrap();
        assert!(position.starts_with(&format!("{from}/")), "{position}");
        assert!(
            positions.insert(position.to_owned()),
            "{position} copied twice"
        );
    }
    assert_eq!(events_by_customer(copied), events_by_customer(source));
}

#[tokio::test]
async fn a_repartitioned_log_gives_the_same_registry() {
    let bootstrap = kafka_bootstrap();
    let (from, to) = (
        unique_topic("repartition-from"),
        unique_topic("repartition-to"),
    );
    common::create_topic_kept_forever(&bootstrap, &from, 3).await;
    let live = write_history(&bootstrap, &from, Partitioning::over(3), 100_000);

    let copied = repartition(&bootstrap, &from, &to, 7, &[]);
    assert_eq!(copied.status.code(), Some(0), "{}", text(&copied));
    let report: Value = serde_json::from_slice(&copied.stdout).unwrap();
    assert_eq!(report["copied"], 100_000, "{report}");
    assert_eq!(report["targetRecords"], 100_000, "{report}");
    assert_eq!(report["customers"], live, "{report}");
    assert_eq!(report["mismatchedCustomers"], 0, "{report}");

    let (source, target) = (read_topic(&bootstrap, &from), read_topic(&bootstrap, &to));
    assert_faithful_copy(&source, &target, 7, &from);

    let dir = tempfile::tempdir().unwrap();
    let exported = export(&bootstrap, &to, dir.path());
    assert_eq!(exported.len(), live);
    assert_eq!(exported, export(&bootstrap, &from, dir.path()));
    let data_dir = dir.path().join("on-the-new-topic");
    let rebuilt = tool(&["rebuild"], &bootstrap, &to, &data_dir);
    assert_eq!(rebuilt.status.code(), Some(0), "{}", text(&rebuilt));
    let audit = tool(&["audit"], &bootstrap, &to, &data_dir);
    assert_eq!(audit.status.code(), Some(0), "{}", text(&audit));

    // Run again: nothing is left to copy, nothing is copied twice.
    let again = repartition(&bootstrap, &from, &to, 7, &[]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    let report: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(
        (report["copied"].as_u64(), report["copiedBefore"].as_u64()),
        (Some(0), Some(100_000))
    );
}

#[tokio::test]
async fn a_repartition_that_crashed_resumes_without_copying_anything_twice() {
    let bootstrap = kafka_bootstrap();
    let (from, to) = (unique_topic("resume-from"), unique_topic("resume-to"));
    common::create_topic_kept_forever(&bootstrap, &from, 4).await;
    write_history(&bootstrap, &from, Partitioning::over(4), 20_000);

    let crashed = repartition(
        &bootstrap,
        &from,
        &to,
        5,
        &[("REGISTRY_TEST_CRASH_AFTER", "8000")],
    );
    assert_eq!(
        crashed.status.code(),
        None,
        "killed by a signal: {}",
        text(&crashed)
    );
    let partial = read_topic(&bootstrap, &to).len();
    assert!(
        partial > 0 && partial <= 8_000,
        "{partial} records copied before the crash"
    );

    let resumed = repartition(&bootstrap, &from, &to, 5, &[]);
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed));
    let report: Value = serde_json::from_slice(&resumed.stdout).unwrap();
    assert_eq!(report["copiedBefore"], partial, "{report}");
    assert_eq!(report["mismatchedCustomers"], 0, "{report}");
    assert_faithful_copy(
        &read_topic(&bootstrap, &from),
        &read_topic(&bootstrap, &to),
        5,
        &from,
    );
}

#[tokio::test]
async fn repartition_refuses_a_target_that_holds_other_records_or_another_count() {
    let bootstrap = kafka_bootstrap();
    let (from, to) = (unique_topic("refuse-from"), unique_topic("refuse-to"));
    common::create_topic_kept_forever(&bootstrap, &from, 2).await;
    write_history(&bootstrap, &from, Partitioning::over(2), 300);
    common::create_topic_kept_forever(&bootstrap, &to, 3).await;

    let other_count = repartition(&bootstrap, &from, &to, 6, &[]);
    assert_eq!(other_count.status.code(), Some(2), "{}", text(&other_count));
    assert!(
        text(&other_count).contains("exists with 3 partitions"),
        "{}",
        text(&other_count)
    );

    // Where the topic's count puts its key, so that only its missing source position tells.
    let partition = Partitioning::over(3).partition_of_key(b"someone");
    common::produce_raw(&bootstrap, &to, partition, "someone", b"{}").await;
    let foreign = repartition(&bootstrap, &from, &to, 3, &[]);
    assert_eq!(foreign.status.code(), Some(2), "{}", text(&foreign));
    assert!(
        text(&foreign).contains("not copied by repartition"),
        "{}",
        text(&foreign)
    );

    let same = repartition(&bootstrap, &from, &from, 3, &[]);
    assert_eq!(same.status.code(), Some(2), "{}", text(&same));
}
