//! Erasure by crypto-shredding, against the real broker and binary: the request and its status,
//! what every replica, tool and topic holds afterwards, erasures cut short by kill -9, a replica
//! that was down, updates racing the erasure, and the keys' removal by compaction.

use crate::auth::add_key;
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
    assert_eq!(
        (
            erasure_event.header("event-type"),
            erasure_event.header("schema-version")
        ),
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

    // The ledger lists it, nothing personal in it.
    let listed = ledger(&bootstrap, &topic);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["requestId"], request_id.as_str());
    assert_eq!(listed[0]["customerId"], erased["id"]);
    assert_eq!(listed[0]["keysDestroyed"], true);
    assert!(personal_in(listed[0].to_string().as_bytes()).is_empty());

    // A consumer written from events/ alone folds it to an erased customer, nothing personal.
    let folded = crate::encryption::python_consumer(&bootstrap, &topic);
    let line = &folded[erased["id"].as_str().unwrap()];
    assert_eq!(
        (line["erased"].clone(), line["version"].clone()),
        (json!(true), json!(2)),
        "{line}"
    );
    assert!(
        personal_in(line.to_string().as_bytes()).is_empty(),
        "{line}"
    );
    assert_eq!(
        folded[kept["id"].as_str().unwrap()]["lastName"],
        "Bleibtreu"
    );

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
    let audited = tool(&["audit", "--json"], &bootstrap, &topic, &data_dir);
    assert_eq!(audited.status.code(), Some(0), "{}", text(&audited));
    let report: Value = serde_json::from_slice(&audited.stdout).unwrap();
    let proof = &report["erasures"][0];
    assert_eq!(proof["requestId"], request_id.as_str(), "{report}");
    assert_eq!(
        [
            &proof["keysDestroyed"],
            &proof["replayPurged"],
            &proof["livePurged"]
        ],
        [&json!(true), &json!(true), &json!(true)]
    );
    assert_eq!(
        proof["eventsUnopened"], 2,
        "its create and its update stay shut"
    );
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

/// The lines `customer-registry erasures --json` prints for `topic`.
fn ledger(bootstrap: &str, topic: &str) -> Vec<Value> {
    let listed = std::process::Command::new(env!("CARGO_BIN_EXE_customer-registry"))
        .args([
            "erasures",
            "--json",
            "--kafka-bootstrap",
            bootstrap,
            "--topic",
            topic,
        ])
        .output()
        .unwrap();
    assert!(listed.status.success(), "{}", text(&listed));
    String::from_utf8(listed.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[tokio::test]
async fn erasures_of_what_a_key_cannot_reach_are_not_found_as_gets_are() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("erasure-scope");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("api-keys.jsonl");
    let admin = add_key(&file, "ops", "--admin");
    let own = add_key(&file, "billing-71", "--accounts=71");
    let other = add_key(&file, "billing-72", "--accounts=72");
    let registry = Registry::start_with(
        &bootstrap,
        &topic,
        &dir.path().join("data"),
        &["--api-keys", file.to_str().unwrap()],
    );
    let created = send(
        http()
            .put(registry.url("/api/v01/customers"))
            .bearer_auth(&admin)
            .json(&json!({"accountId": 71, "lastName": "Scoped"})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let post = |path: String, key: &str| {
        let request = http().post(registry.url(&path)).bearer_auth(key);
        async move { send(request).await }
    };
    let erasure_of = |id: &str| format!("/api/v01/customers/{id}/erasure");
    let id = created.body["id"].as_str().unwrap();
    for (path, key, status) in [
        (erasure_of(id), other.as_str(), 404),
        (
            erasure_of(&uuid::Uuid::now_v7().to_string()),
            admin.as_str(),
            404,
        ),
        (erasure_of("not-a-uuid"), admin.as_str(), 404),
        (erasure_of(id), "not-a-key", 401),
    ] {
        let answer = post(path.clone(), key).await;
        assert_eq!(answer.status, status, "{path}: {}", answer.body);
        let got = send(
            http()
                .get(registry.url(path.trim_end_matches("/erasure")))
                .bearer_auth(key),
        )
        .await;
        assert_eq!(
            got.status, status,
            "get answers as the erasure does: {path}"
        );
    }
    let erased = post(erasure_of(id), &own).await;
    assert_eq!(erased.status, 202, "{}", erased.body);
    let status_path = erased.header("location").to_owned();
    for (key, status) in [(&own, 200), (&admin, 200), (&other, 404)] {
        let answer = send(http().get(registry.url(&status_path)).bearer_auth(key)).await;
        assert_eq!(answer.status, status, "{}", answer.body);
    }
    for unknown in [
        "/api/v01/erasures/not-an-id".to_owned(),
        format!("/api/v01/erasures/{}", uuid::Uuid::now_v7()),
    ] {
        let answer = send(http().get(registry.url(&unknown)).bearer_auth(&admin)).await;
        assert_eq!(answer.status, 404, "{unknown}: {}", answer.body);
    }
    assert!(registry.stop());
}

#[tokio::test]
async fn plain_text_personal_data_is_not_erased_by_destroying_a_key() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("erasure-plain");
    let dir = tempfile::tempdir().unwrap();
    let plain = Registry::start_with(
        &bootstrap,
        &topic,
        &dir.path().join("plain"),
        &["--no-encryption"],
    );
    let written = create_all(&plain, &[json!({"accountId": 73, "lastName": "Klartext"})]).await;
    let refused = erase(&plain, &written[0]).await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert_eq!(refused.body["type"], "/problems/erasure-unavailable");
    assert!(refused.body["detail"]
        .as_str()
        .unwrap()
        .contains("--no-encryption"));
    assert!(plain.stop());

    // The same log served with a KEK file: the customer written in plain text still is.
    let sealed = Registry::start(&bootstrap, &topic, &dir.path().join("sealed"));
    let refused = erase(&sealed, &written[0]).await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(
        refused.body["detail"]
            .as_str()
            .unwrap()
            .contains("migrate --encrypt"),
        "{}",
        refused.body
    );
    assert_eq!(
        get(&sealed, &item(&written[0])).await.0,
        200,
        "nothing erased"
    );
    let fresh = create_all(
        &sealed,
        &[json!({"accountId": 73, "lastName": "Versiegelt"})],
    )
    .await;
    assert_eq!(erase(&sealed, &fresh[0]).await.status, 202);
    assert!(sealed.stop());
}

/// The `CustomerErased` events of `customer` on `topic`.
fn erasure_events(bootstrap: &str, topic: &str, customer: &Value) -> Vec<Value> {
    read_topic(bootstrap, topic)
        .into_iter()
        .filter(|record| {
            record.key == customer["id"].as_str().unwrap()
                && record.published["eventType"] == "CustomerErased"
        })
        .map(|record| record.published)
        .collect()
}

#[tokio::test]
async fn an_erasure_cut_short_by_kill_9_completes_after_restart_exactly_once() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("erasure-kill");
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    // The erasure stalls between its marker and the rest.
    let registry = Registry::start_with_env(
        &bootstrap,
        &topic,
        &data_dir,
        &[],
        &[("FAILPOINTS", "erasure-after-marker=sleep(60000)")],
    );
    let (erased, kept) = erasable(&registry).await;
    let request = http().post(registry.url(&format!("{}/erasure", item(&erased))));
    let stalled = tokio::spawn(async move { request.send().await });
    let keys_topic = format!("{topic}.keys");
    let deadline = Instant::now() + PATIENCE;
    while !read_topic(&bootstrap, &keys_topic)
        .iter()
        .any(|record| record.published["type"] == "KeysErased")
    {
        assert!(Instant::now() < deadline, "the marker was not written");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    registry.kill();
    assert!(
        stalled.await.unwrap().is_err(),
        "the request died with the process"
    );
    assert!(erasure_events(&bootstrap, &topic, &erased).is_empty());

    // Restarted (without the stall), the replica finishes the erasure by itself.
    let restarted = Registry::start(&bootstrap, &topic, &data_dir);
    until_status(&restarted, &item(&erased), 410).await;
    let request_id =
        customer_registry::domain::erasure_id(erased["id"].as_str().unwrap().parse().unwrap());
    erasure_until(&restarted, &request_id.to_string(), |places| {
        places["keyDestroyed"] == true && places["readModelPurged"] == true
    })
    .await;
    // Asked again, it is the same erasure, and nothing is written twice.
    assert_eq!(erase(&restarted, &erased).await.status, 202);
    assert_eq!(get(&restarted, &item(&kept)).await, (200, kept));
    assert!(restarted.stop());
    let events = erasure_events(&bootstrap, &topic, &erased);
    assert_eq!(events.len(), 1, "one CustomerErased: {events:?}");
    let markers = read_topic(&bootstrap, &keys_topic)
        .into_iter()
        .filter(|record| record.published["type"] == "KeysErased")
        .count();
    assert_eq!(markers, 1);
    let audited = tool(&["audit"], &bootstrap, &topic, &data_dir);
    assert_eq!(audited.status.code(), Some(0), "{}", text(&audited));
}

#[tokio::test]
async fn a_replica_down_during_an_erasure_purges_it_when_it_catches_up() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("erasure-down");
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(&bootstrap, &topic, &dir.path().join("data"));
    let down_dir = dir.path().join("down");
    let down = Registry::start(&bootstrap, &topic, &down_dir);
    let (erased, _) = erasable(&registry).await;
    until_status(&down, &item(&erased), 200).await;
    assert!(down.stop());

    let answer = erase(&registry, &erased).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    let request_id = answer.body["requestId"].as_str().unwrap().to_owned();

    let back = Registry::start(&bootstrap, &topic, &down_dir);
    assert_eq!(
        get(&back, &item(&erased)).await.0,
        410,
        "purged before it serves"
    );
    erasure_until(&back, &request_id, |places| {
        places["readModelPurged"] == true
    })
    .await;
    assert!(back.stop());
    let audited = tool(&["audit"], &bootstrap, &topic, &down_dir);
    assert_eq!(audited.status.code(), Some(0), "{}", text(&audited));
    assert!(registry.stop());
}

#[tokio::test]
async fn updates_racing_an_erasure_land_before_it_or_not_at_all() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("erasure-race");
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(&bootstrap, &topic, &dir.path().join("data"));
    let other = Registry::start(&bootstrap, &topic, &dir.path().join("other"));
    let (erased, _) = erasable(&registry).await;
    until_status(&other, &item(&erased), 200).await;

    // Updates on both replicas, unconditional, while one of them erases.
    let mut racers = Vec::new();
    for n in 0..40 {
        let url = if n % 2 == 0 {
            registry.url(&item(&erased))
        } else {
            other.url(&item(&erased))
        };
        racers.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(5 * n)).await;
            send(
                http()
                    .post(url)
                    .json(&json!({"city": format!("Racetown {n}")})),
            )
            .await
        }));
    }
    tokio::time::sleep(Duration::from_millis(60)).await;
    let answer = erase(&registry, &erased).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    for racer in racers {
        let update = racer.await.unwrap();
        assert!(
            [200, 404, 410, 503].contains(&update.status),
            "an update racing the erasure applied before it or was refused: {} {}",
            update.status,
            update.body
        );
    }

    for replica in [&registry, &other] {
        until_status(replica, &item(&erased), 410).await;
        let (status, history) = get(replica, &format!("{}/events", item(&erased))).await;
        assert_eq!(status, 200);
        let types: Vec<&str> = history
            .as_array()
            .unwrap()
            .iter()
            .map(|record| record["event"]["eventType"].as_str().unwrap())
            .collect();
        assert_eq!(
            types.last(),
            Some(&"CustomerErased"),
            "nothing applied after it"
        );
        assert!(personal_in(history.to_string().as_bytes()).is_empty());
        assert!(
            !history.to_string().contains("Racetown"),
            "no update's value shows"
        );
    }
    // Whatever lies after the erasure in the log is refused, never applied (and updates that
    // lost a race to another one are refused as ever).
    let (status, rejected) = get(&registry, "/api/v01/admin/rejected-events").await;
    assert_eq!(status, 200);
    for refused in rejected.as_array().unwrap() {
        let kind = refused["kind"].as_str().unwrap();
        assert!(
            ["customer_absent", "version_conflict"].contains(&kind),
            "{refused}"
        );
    }
    assert!(registry.stop());
    assert!(other.stop());
    for data in ["data", "other"] {
        let audited = tool(&["audit"], &bootstrap, &topic, &dir.path().join(data));
        assert_eq!(audited.status.code(), Some(0), "{}", text(&audited));
    }
}

/// Sets `topic`'s configs to `configs` (a whole replacement of its dynamic configs).
async fn set_topic_configs(bootstrap: &str, topic: &str, configs: &[(&str, &str)]) {
    use rdkafka::admin::{AdminClient, AdminOptions, AlterConfig, ResourceSpecifier};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let mut alter = AlterConfig::new(ResourceSpecifier::Topic(topic));
    for (name, value) in configs {
        alter = alter.set(name, value);
    }
    let results = admin
        .alter_configs(&[alter], &AdminOptions::new())
        .await
        .unwrap();
    for result in results {
        result.unwrap();
    }
}

#[tokio::test]
async fn compaction_removes_an_erased_customers_keys_from_the_brokers_storage() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("erasure-compaction");
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(&bootstrap, &topic, &dir.path().join("data"));
    let (erased, _) = erasable(&registry).await;
    // The documented bound is segment.ms + max.compaction.lag.ms (1 h each): shortened here.
    let keys_topic = format!("{topic}.keys");
    set_topic_configs(
        &bootstrap,
        &keys_topic,
        &[
            ("cleanup.policy", "compact"),
            ("segment.ms", "1000"),
            ("max.compaction.lag.ms", "1000"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ],
    )
    .await;
    let answer = erase(&registry, &erased).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert_eq!(answer.body["places"]["keyRemovedFromStorage"], false);
    let request_id = answer.body["requestId"].as_str().unwrap().to_owned();

    // Compaction never touches a partition's active segment: a later record on the erased
    // customer's partition rolls it (a customer whose code lands there mints a key).
    let partitioning = read_topic(&bootstrap, &topic)[0]
        .header("partitioning")
        .and_then(|value| customer_registry::log::Partitioning::parse(value).ok())
        .unwrap();
    let erased_id = erased["id"].as_str().unwrap().parse().unwrap();
    let partition = partitioning.partition_of(erased_id);
    let account = customer_registry::domain::AccountId::parse(71).unwrap();
    let code = (0..)
        .map(|n| format!("ROLL-{n}"))
        .find(|code| {
            let code = customer_registry::domain::CustomerCode::parse(code).unwrap();
            partitioning.partition_of(code.customer_id(account)) == partition
        })
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    create_all(&registry, &[json!({"accountId": 71, "code": code})]).await;

    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (status, erasure) = get(&registry, &format!("/api/v01/erasures/{request_id}")).await;
        assert_eq!(status, 200, "{erasure}");
        if erasure["done"] == true {
            assert_eq!(erasure["places"]["keyRemovedFromStorage"], true);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the key records were not compacted away: {erasure}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Read back from offset 0: the erased customer's key records are gone, its marker stays.
    let of_erased: Vec<Value> = read_topic(&bootstrap, &keys_topic)
        .into_iter()
        .filter(|record| record.key.starts_with(erased["id"].as_str().unwrap()))
        .map(|record| record.published)
        .collect();
    assert!(
        of_erased.iter().all(|value| value["type"] != "DataKey"),
        "{of_erased:?}"
    );
    assert!(of_erased.iter().any(|value| value["type"] == "KeysErased"));
    let listed = ledger(&bootstrap, &topic);
    assert_eq!(
        (
            listed[0]["keysDestroyed"].clone(),
            listed[0]["keysRemovedFromStorage"].clone()
        ),
        (json!(true), json!(true))
    );
    assert!(registry.stop());
}
