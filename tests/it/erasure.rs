//! Erasure by crypto-shredding, against the real broker and binary: the request and its status,
//! what every replica, tool and topic holds afterwards, erasures cut short by kill -9, a replica
//! that was down, updates racing the erasure, and the keys' removal by compaction.

use crate::common::contract::{assert_valid, schema_file};
use crate::common::{
    create_all, get, http, kafka_bootstrap, read_topic, send, text, tool, unique_topic, Answer,
    Registry, PATIENCE,
};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The personal values of the customer [`erasable`] makes: none may survive its erasure.
const PERSONAL: [&str; 6] = [
    "Quirinius",
    "Zwetschgenbaum",
    "quirinius@zwetschgenbaum.example",
    "Hinterm Mond 9",
    "Wolkenkuckucksheim",
    "new.quirinius@zwetschgenbaum.example",
];

/// A customer of account 71 with every kind of personal value and a code, updated once; and a
/// customer of the same account that stays. Answers both, as the API last answered them.
async fn erasable(registry: &Registry) -> (Value, Value) {
    let created = create_all(
        registry,
        &[
            json!({"accountId": 71, "code": "ERASE-ME-1", "firstName": "Quirinius",
                   "lastName": "Zwetschgenbaum", "email": "quirinius@zwetschgenbaum.example",
                   "phone": "+49 30 7654321", "street": "Hinterm Mond 9",
                   "city": "Wolkenkuckucksheim", "countryCode": "DE"}),
            json!({"accountId": 71, "lastName": "Bleibtreu"}),
        ],
    )
    .await;
    let updated = send(
        http()
            .post(registry.url(&item(&created[0])))
            .json(&json!({"email": "new.quirinius@zwetschgenbaum.example"})),
    )
    .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    (updated.body, created[1].clone())
}

/// `/api/v01/customers/{id}` of `customer`.
fn item(customer: &Value) -> String {
    format!("/api/v01/customers/{}", customer["id"].as_str().unwrap())
}

/// `POST /api/v01/customers/{id}/erasure`.
async fn erase(registry: &Registry, customer: &Value) -> Answer {
    send(http().post(registry.url(&format!("{}/erasure", item(customer))))).await
}

/// `GET` the erasure `request_id` until `done(places)` holds, failing after [`PATIENCE`].
async fn erasure_until(
    registry: &Registry,
    request_id: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, erasure) = get(registry, &format!("/api/v01/erasures/{request_id}")).await;
        if status == 200 && done(&erasure["places"]) {
            return erasure;
        }
        assert!(
            Instant::now() < deadline,
            "the erasure did not get there: {status} {erasure}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET path` until it answers `status`, failing after [`PATIENCE`]; answers the body.
async fn until_status(registry: &Registry, path: &str, status: u16) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (answered, body) = get(registry, path).await;
        if answered == status {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{path} answers {answered}, not {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every file under `dir` (`dir` itself when it is a file).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    if dir.is_file() {
        return vec![dir.to_owned()];
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// The personal values (and their lower-case search forms) found in `bytes`.
fn personal_in(bytes: &[u8]) -> Vec<String> {
    PERSONAL
        .iter()
        .flat_map(|value| [value.to_string(), value.to_lowercase()])
        .filter(|value| bytes.windows(value.len()).any(|w| w == value.as_bytes()))
        .collect()
}

/// Asserts that no file under `dir` (or `dir`, a file) holds a personal value.
fn assert_no_residue(dir: &Path) {
    for file in files_under(dir) {
        let found = personal_in(&std::fs::read(&file).unwrap());
        assert!(found.is_empty(), "{found:?} in {}", file.display());
    }
}

#[tokio::test]
async fn an_erased_customer_is_forgotten_everywhere_while_its_events_stay() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("erasure");
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(&bootstrap, &topic, &dir.path().join("data"));
    let other = Registry::start(&bootstrap, &topic, &dir.path().join("other"));
    let (erased, kept) = erasable(&registry).await;
    let before_erasure = chrono::Utc::now();

    let answer = erase(&registry, &erased).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    let request_id = answer.body["requestId"].as_str().unwrap().to_owned();
    assert_eq!(
        answer.header("location"),
        format!("/api/v01/erasures/{request_id}")
    );
    assert_eq!(answer.body["customerId"], erased["id"]);
    assert_eq!(answer.body["accountId"], 71);
    let places = &answer.body["places"];
    assert_eq!(
        (
            places["eventWritten"].clone(),
            places["keyDestroyed"].clone()
        ),
        (json!(true), json!(true)),
        "{}",
        answer.body
    );
    let again = erase(&registry, &erased).await;
    assert_eq!(again.status, 202, "{}", again.body);
    assert_eq!(
        again.body["requestId"],
        request_id.as_str(),
        "the same erasure"
    );

    // Every replica forgets it: gone from get, find and counts, purged on disk.
    for replica in [&registry, &other] {
        let gone = until_status(replica, &item(&erased), 410).await;
        assert_eq!(gone["type"], "/problems/customer-erased", "{gone}");
        let found = send(http().get(replica.url("/api/v01/customers?accountId=71"))).await;
        assert_eq!(found.body, json!([kept]));
        assert_eq!(found.header("x-total-count"), "1");
        let by_name = send(http().get(replica.url("/api/v01/customers?lastName=zwetsch"))).await;
        assert_eq!(
            (by_name.body.clone(), by_name.header("x-total-count")),
            (json!([]), "0")
        );
        let status = erasure_until(replica, &request_id, |places| {
            places["readModelPurged"] == true && places["eventWritten"] == true
        })
        .await;
        assert_eq!(status["places"]["keyDestroyed"], true);
        assert!(personal_in(status.to_string().as_bytes()).is_empty());
    }

    // Its history: every event, none with personal content, each marked erased.
    let (status, history) = get(&registry, &format!("{}/events", item(&erased))).await;
    assert_eq!(status, 200);
    let events: Vec<&Value> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|record| &record["event"])
        .collect();
    let types: Vec<&str> = events
        .iter()
        .map(|event| event["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["CustomerCreated", "CustomerUpdated", "CustomerErased"]
    );
    for event in &events[..2] {
        assert_eq!(event["data"]["personalErased"], true, "{event}");
    }
    assert!(personal_in(history.to_string().as_bytes()).is_empty());

    // Nothing may change it or take its code.
    let update = send(
        http()
            .post(registry.url(&item(&erased)))
            .json(&json!({"city": "Anywhere"})),
    )
    .await;
    assert_eq!(update.status, 410, "{}", update.body);
    let delete = send(http().delete(registry.url(&item(&erased)))).await;
    assert_eq!(delete.status, 410, "{}", delete.body);
    let recreate = send(
        http()
            .put(registry.url("/api/v01/customers"))
            .json(&json!({"accountId": 71, "code": "ERASE-ME-1", "lastName": "Again"})),
    )
    .await;
    assert_eq!(recreate.status, 410, "{}", recreate.body);

    // The topics: the events stay, in order, with nothing personal; the keys are tombstoned
    // behind the erased marker.
    let events = read_topic(&bootstrap, &topic);
    let erased_events: Vec<&crate::common::Record> = events
        .iter()
        .filter(|record| record.key == erased["id"].as_str().unwrap())
        .collect();
    assert_eq!(erased_events.len(), 3, "create, update, erasure");
    let erasure_event = erased_events[2];
    assert_valid(&schema_file("customer-erased.v2"), &erasure_event.published);
    assert_eq!(
        erasure_event.published["data"]["erasureRequestId"],
        request_id.as_str()
    );
    let header = |name: &str| {
        erasure_event
            .headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    assert_eq!(
        (header("event-type"), header("schema-version")),
        (Some("CustomerErased"), Some("2"))
    );
    let keys = read_topic(&bootstrap, &format!("{topic}.keys"));
    for record in events.iter().chain(&keys) {
        let published = record.published.to_string();
        assert!(personal_in(published.as_bytes()).is_empty(), "{published}");
    }
    let of_erased: Vec<&crate::common::Record> = keys
        .iter()
        .filter(|record| record.key.starts_with(erased["id"].as_str().unwrap()))
        .collect();
    let marker = of_erased
        .iter()
        .position(|record| record.published["type"] == "KeysErased")
        .expect("an erased marker");
    assert_eq!(
        of_erased[marker].published["requestId"],
        request_id.as_str()
    );
    let data_keys: Vec<&str> = of_erased
        .iter()
        .filter(|record| record.published["type"] == "DataKey")
        .map(|record| record.key.as_str())
        .collect();
    assert!(!data_keys.is_empty());
    for key in data_keys {
        assert!(
            of_erased[marker..]
                .iter()
                .any(|record| record.key == key && record.published.is_null()),
            "key {key} has a tombstone after the marker"
        );
    }

    // Tools: the export (now, and as of before the erasure) holds nothing of it, the audit
    // agrees, and a rebuild from offset 0 brings nothing back.
    assert!(registry.stop());
    assert!(other.stop());
    let data_dir = dir.path().join("data");
    for as_of in [None, Some(before_erasure.to_rfc3339())] {
        let mut args = vec!["export"];
        if let Some(at) = &as_of {
            args.extend(["--as-of", at.as_str()]);
        }
        let exported = tool(&args, &bootstrap, &topic, &data_dir);
        assert!(exported.status.success(), "{}", text(&exported));
        let lines = String::from_utf8(exported.stdout).unwrap();
        assert!(
            personal_in(lines.as_bytes()).is_empty(),
            "{as_of:?}: {lines}"
        );
        assert!(lines.contains("Bleibtreu"), "the kept customer is exported");
    }
    let audited = tool(&["audit"], &bootstrap, &topic, &data_dir);
    assert_eq!(audited.status.code(), Some(0), "{}", text(&audited));
    let snapshot = dir.path().join("after.snapshot");
    let snapshotted = std::process::Command::new(env!("CARGO_BIN_EXE_customer-registry"))
        .args(["snapshot", "--out"])
        .arg(&snapshot)
        .arg("--data-dir")
        .arg(&data_dir)
        .output()
        .unwrap();
    assert!(snapshotted.status.success(), "{}", text(&snapshotted));
    assert_no_residue(&snapshot);
    let rebuilt = tool(&["rebuild"], &bootstrap, &topic, &data_dir);
    assert_eq!(rebuilt.status.code(), Some(0), "{}", text(&rebuilt));
    assert_no_residue(&data_dir.join("read-model"));
    let restarted = Registry::start(&bootstrap, &topic, &data_dir);
    assert_eq!(get(&restarted, &item(&erased)).await.0, 410);
    assert_eq!(get(&restarted, &item(&kept)).await, (200, kept));
    assert!(restarted.stop());
}
