//! Personal data is sealed on the topic (event contract v2): nothing personal in plain text on
//! the event topic or the keys topic, every replica and tool with the KEK file reads it back, a
//! tool without it cannot, and a consumer written from `events/` alone (Python, under
//! examples/) decrypts and folds the log to what the API answers.

use crate::common::{
    create_all, create_topic_kept_forever, get, http, kafka_bootstrap, kek_file, read_topic,
    run_to_exit_with, send, text, tool, unique_topic, Registry,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

/// The personal values of the customers [`write_customers`] makes, as they must never appear on
/// a topic.
const PERSONAL: [&str; 8] = [
    "Brünhilde",
    "Wackernagel",
    "brunhilde@wackernagel.example",
    "+49 30 1234567",
    "Unter den Linden 77",
    "Quedlinburg",
    "changed.address@example.org",
    "Ottilie",
];

/// Three customers of account 61 with personal values, one updated (new email), one deleted.
/// Answers the customers as the API last answered them, the deleted one left out.
async fn write_customers(registry: &Registry) -> Vec<Value> {
    let mut customers = create_all(
        registry,
        &[
            json!({"accountId": 61, "firstName": "Brünhilde", "lastName": "Wackernagel",
                   "email": "brunhilde@wackernagel.example", "phone": "+49 30 1234567",
                   "street": "Unter den Linden 77", "city": "Quedlinburg", "countryCode": "DE"}),
            json!({"accountId": 61, "firstName": "Ottilie", "code": "OTT-1"}),
            json!({"accountId": 61, "lastName": "Wackernagel"}),
        ],
    )
    .await;
    let item = |customer: &Value| {
        registry.url(&format!(
            "/api/v01/customers/{}",
            customer["id"].as_str().unwrap()
        ))
    };
    let updated = send(
        http()
            .post(item(&customers[0]))
            .json(&json!({"email": "changed.address@example.org"})),
    )
    .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    customers[0] = updated.body;
    let deleted = send(http().delete(item(&customers[2]))).await;
    assert_eq!(deleted.status, 204);
    customers.truncate(2);
    customers
}

#[tokio::test]
async fn serve_refuses_to_start_with_neither_a_kek_file_nor_no_encryption() {
    let dir = tempfile::tempdir().unwrap();
    let (code, output) = run_to_exit_with(
        &kafka_bootstrap(),
        &unique_topic("no-kek"),
        &dir.path().join("data"),
        Duration::from_secs(30),
        &[],
        &[("REGISTRY_NO_ENCRYPTION", "0")],
    );
    assert_ne!(code, Some(0), "{output}");
    assert!(
        output.contains("kek add") && output.contains("--no-encryption"),
        "says how to fix it: {output}"
    );
}

#[tokio::test]
async fn no_personal_value_reaches_either_topic_and_every_reader_with_the_kek_reads_it_back() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("sealed");
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(&bootstrap, &topic, &dir.path().join("data"));
    let customers = write_customers(&registry).await;

    // On the topics: ids and versions, never a personal value.
    let events = read_topic(&bootstrap, &topic);
    let keys = read_topic(&bootstrap, &format!("{topic}.keys"));
    assert_eq!(events.len(), 5, "three creates, an update, a delete");
    // The keys topic the registry made has one partition.
    assert!(
        keys.iter().all(|key| key.partition == 0),
        "a key off partition 0"
    );
    // One data key a customer (and keys minted ahead for customers not created yet).
    for customer in &customers {
        let id = customer["id"].as_str().unwrap();
        let held = keys.iter().filter(|key| key.key.starts_with(id)).count();
        assert_eq!(held, 1, "one data key of {id}");
    }
    for record in events.iter().chain(&keys) {
        let published = record.published.to_string();
        for personal in PERSONAL {
            assert!(!published.contains(personal), "{personal} in {published}");
        }
    }
    for event in &events {
        assert_eq!(event.published["schemaVersion"], 2, "{}", event.published);
    }
    // Opened with the KEK, the events carry what the API answered.
    let first_create = events
        .iter()
        .find(|event| {
            event.key == customers[0]["id"].as_str().unwrap()
                && event.value["eventType"] == "CustomerCreated"
        })
        .expect("the first customer's create");
    assert_eq!(first_create.value["data"]["firstName"], "Brünhilde");

    // The history opens the events for the API's clients.
    let (status, history) = get(
        &registry,
        &format!(
            "/api/v01/customers/{}/events",
            customers[0]["id"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(history[0]["event"]["data"]["city"], "Quedlinburg");
    assert_eq!(
        history[1]["event"]["data"]["changes"]["email"],
        "changed.address@example.org"
    );

    // Another replica, sharing the KEK file, answers the same.
    let other_dir = tempfile::tempdir().unwrap();
    let other = Registry::start(&bootstrap, &topic, &other_dir.path().join("data"));
    for customer in &customers {
        let path = format!("/api/v01/customers/{}", customer["id"].as_str().unwrap());
        assert_eq!(get(&other, &path).await, (200, customer.clone()));
    }
    assert!(other.stop());

    // An independent consumer, written from events/ alone, folds the log to the same customers.
    assert_eq!(
        python_consumer(&bootstrap, &topic),
        expected_by_consumer(&customers)
    );

    // Rebuild and audit with the KEK file agree; an audit without it is refused.
    assert!(registry.stop());
    let data_dir = dir.path().join("data");
    let rebuilt = tool(&["rebuild"], &bootstrap, &topic, &data_dir);
    assert_eq!(rebuilt.status.code(), Some(0), "{}", text(&rebuilt));
    let audited = tool(&["audit"], &bootstrap, &topic, &data_dir);
    assert_eq!(audited.status.code(), Some(0), "{}", text(&audited));
    let blind = Command::new(env!("CARGO_BIN_EXE_customer-registry"))
        .args(["audit", "--kafka-bootstrap", &bootstrap, "--topic", &topic])
        .arg("--data-dir")
        .arg(&data_dir)
        .env_remove("REGISTRY_KEK_FILE")
        .output()
        .unwrap();
    assert_eq!(blind.status.code(), Some(2), "refused: {}", text(&blind));
    let said = text(&blind);
    assert!(said.contains("--kek-file"), "{said}");
    for personal in PERSONAL {
        assert!(!said.contains(personal), "{personal} in the audit's output");
    }
}

/// What the Python consumer prints for `customers` (as the API answered them): id, account,
/// code, version and the personal fields they have.
/// A keys topic made by a registry of before keys topics had one partition: as many as the event
/// topic's, each customer's key records on its events' partition. Its records are still routed so,
/// so that a customer's tombstones and marker land beside its keys.
#[tokio::test]
async fn a_keys_topic_made_with_the_event_topics_count_keeps_routing_over_it() {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::config::ClientConfig;
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("legacy-keys");
    create_topic_kept_forever(&bootstrap, &topic, 6).await;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("an admin client");
    let keys_topic = format!("{topic}.keys");
    let legacy =
        NewTopic::new(&keys_topic, 6, TopicReplication::Fixed(1)).set("cleanup.policy", "compact");
    let made = admin
        .create_topics([&legacy], &AdminOptions::new())
        .await
        .expect("creating the keys topic");
    assert!(made.iter().all(Result::is_ok), "{made:?}");

    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(&bootstrap, &topic, &dir.path().join("data"));
    let customers = write_customers(&registry).await;
    let events = read_topic(&bootstrap, &topic);
    let keys = read_topic(&bootstrap, &keys_topic);
    for customer in &customers {
        let id = customer["id"].as_str().unwrap();
        let partition_of_events = events
            .iter()
            .find(|event| event.key == id)
            .unwrap()
            .partition;
        let key = keys.iter().find(|key| key.key.starts_with(id)).unwrap();
        assert_eq!(key.partition, partition_of_events, "the key of {id}");
    }
    let used: std::collections::BTreeSet<i32> = keys.iter().map(|key| key.partition).collect();
    assert!(used.len() > 1, "the keys minted ahead all on {used:?}");
    assert!(registry.stop());
}

fn expected_by_consumer(customers: &[Value]) -> BTreeMap<String, Value> {
    customers
        .iter()
        .map(|customer| {
            let mut line = customer.as_object().unwrap().clone();
            line.remove("createdAt");
            line.remove("updatedAt");
            (
                customer["id"].as_str().unwrap().to_owned(),
                Value::Object(line),
            )
        })
        .collect()
}

/// The lines `examples/python-consumer/consume.py --until-end` prints for `topic`, by id.
pub(crate) fn python_consumer(bootstrap: &str, topic: &str) -> BTreeMap<String, Value> {
    let output = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/python-consumer.sh"
        ))
        .args([
            "consume",
            "--bootstrap",
            bootstrap,
            "--topic",
            topic,
            "--kek-file",
        ])
        .arg(kek_file())
        .args(["--until-end", "--timeout", "60"])
        .output()
        .expect("running scripts/python-consumer.sh");
    assert!(
        output.status.success(),
        "the Python consumer failed (it needs python3 and PyPI to install its packages on first \
         use): {}",
        text(&output)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line).expect("a JSON line");
            (value["id"].as_str().unwrap().to_owned(), value)
        })
        .collect()
}

#[test]
fn the_python_consumers_self_test_opens_the_published_examples() {
    let output = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/python-consumer.sh"
        ))
        .arg("selftest")
        .output()
        .expect("running scripts/python-consumer.sh");
    assert!(output.status.success(), "{}", text(&output));
}

#[tokio::test]
async fn with_no_encryption_events_are_plain_version_1_and_no_keys_topic_is_made() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("plain");
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start_with(
        &bootstrap,
        &topic,
        &dir.path().join("data"),
        &["--no-encryption"],
    );
    create_all(&registry, &[json!({"accountId": 62, "lastName": "Plain"})]).await;
    let events = read_topic(&bootstrap, &topic);
    assert_eq!(events[0].published["schemaVersion"], 1);
    assert_eq!(events[0].published["data"]["lastName"], "Plain");
    assert!(
        crate::common::topic_names(&bootstrap)
            .iter()
            .all(|name| name != &format!("{topic}.keys")),
        "no keys topic"
    );
    assert!(registry.stop());
}

/// Runs `customer-registry kek add --file FILE`.
fn kek_add(file: &std::path::Path) {
    let added = Command::new(env!("CARGO_BIN_EXE_customer-registry"))
        .args(["kek", "add", "--file"])
        .arg(file)
        .output()
        .unwrap();
    assert!(added.status.success(), "{}", text(&added));
}

#[tokio::test]
async fn a_replica_without_the_newest_kek_waits_for_it_and_loses_nothing() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("rotation");
    let dir = tempfile::tempdir().unwrap();
    let (old_keks, new_keks) = (dir.path().join("old.jsonl"), dir.path().join("new.jsonl"));
    kek_add(&old_keks);
    std::fs::copy(&old_keks, &new_keks).unwrap();
    kek_add(&new_keks);
    let start = |name: &str, keks: &std::path::Path| {
        Registry::start_with(
            &bootstrap,
            &topic,
            &dir.path().join(name),
            &["--kek-file", keks.to_str().unwrap()],
        )
    };
    let lagging = start("lagging", &old_keks);
    let before = create_all(&lagging, &[json!({"accountId": 63, "lastName": "Before"})]).await;

    // Rotation half done: one replica already wraps with the new KEK, the other lacks it.
    let rotated = start("rotated", &new_keks);
    let after = create_all(&rotated, &[json!({"accountId": 63, "lastName": "After"})]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, rejected) = get(&lagging, "/api/v01/admin/rejected-events").await;
    assert_eq!(status, 200);
    assert_eq!(
        rejected,
        json!([]),
        "nothing decided about what it cannot open yet"
    );
    assert!(lagging.stop(), "a replica waiting for a key stops cleanly");

    // Given the new KEK, it reads what it waited for.
    let caught_up = start("lagging", &new_keks);
    for customer in before.iter().chain(&after) {
        let path = format!("/api/v01/customers/{}", customer["id"].as_str().unwrap());
        assert_eq!(get(&caught_up, &path).await, (200, customer.clone()));
    }
    assert!(caught_up.stop());
    assert!(rotated.stop());
}

#[tokio::test]
async fn a_sealed_log_is_refused_by_tools_without_the_kek_and_by_a_plain_serve() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("sealed-refusals");
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(&bootstrap, &topic, &dir.path().join("data"));
    create_all(&registry, &[json!({"accountId": 64, "lastName": "Sealed"})]).await;
    assert!(registry.stop());

    let rebuild = Command::new(env!("CARGO_BIN_EXE_customer-registry"))
        .args([
            "rebuild",
            "--kafka-bootstrap",
            &bootstrap,
            "--topic",
            &topic,
        ])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env_remove("REGISTRY_KEK_FILE")
        .output()
        .unwrap();
    assert_eq!(rebuild.status.code(), Some(2), "{}", text(&rebuild));
    assert!(text(&rebuild).contains("--kek-file"), "{}", text(&rebuild));

    let (code, output) = run_to_exit_with(
        &bootstrap,
        &topic,
        &dir.path().join("plain"),
        Duration::from_secs(30),
        &["--no-encryption"],
        &[],
    );
    assert_ne!(code, Some(0), "{output}");
    assert!(output.contains("--kek-file"), "{output}");
}
