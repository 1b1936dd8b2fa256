//! Updates and deletes through the real binary and a real broker: merge-patch semantics, versions
//! and ETags, conditional changes decided by the log (across replicas too), deletes that leave
//! the history, and the events they write.

use crate::common;
use crate::common::contract::{assert_valid, schema};
use crate::common::{
    create, get, http, kafka_bootstrap, read_topic, send, unique_topic, Answer, Registry,
};
use serde_json::{json, Value};
use std::path::Path;

/// Creates `body` on `on`, and waits until every one of `replicas` holds it (read with the
/// create's log position).
async fn create_everywhere(on: &Registry, replicas: &[Registry], body: Value) -> Value {
    let created = send(http().put(on.url("/api/v01/customers")).json(&body)).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let position = created.position().to_owned();
    for replica in replicas {
        let held = send(
            http()
                .get(item(replica, &created.body))
                .header("x-min-log-position", &position),
        )
        .await;
        assert_eq!(held.status, 200, "{}", held.body);
        assert_eq!(held.body["version"], 1);
    }
    created.body
}

/// Two replicas of the registry on one topic, with data dirs `a` and `b` in `dir`.
fn two_replicas(bootstrap: &str, topic: &str, dir: &Path) -> [Registry; 2] {
    [
        Registry::start(bootstrap, topic, &dir.join("a")),
        Registry::start(bootstrap, topic, &dir.join("b")),
    ]
}

fn item(registry: &Registry, customer: &Value) -> String {
    registry.url(&format!(
        "/api/v01/customers/{}",
        customer["id"].as_str().unwrap()
    ))
}

async fn update(registry: &Registry, customer: &Value, patch: Value) -> Answer {
    send(http().post(item(registry, customer)).json(&patch)).await
}

async fn update_if(registry: &Registry, customer: &Value, version: &str, patch: Value) -> Answer {
    send(
        http()
            .post(item(registry, customer))
            .header("if-match", version)
            .json(&patch),
    )
    .await
}

async fn found(registry: &Registry, query: &str) -> Vec<Value> {
    let (status, page) = get(registry, &format!("/api/v01/customers?{query}")).await;
    assert_eq!(status, 200, "{page}");
    page.as_array().unwrap().clone()
}

#[tokio::test]
async fn an_update_changes_what_find_sees_and_a_delete_leaves_only_the_history() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("lifecycle");
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(&bootstrap, &topic, &dir.path().join("data"));
    let (status, created) = create(
        &registry,
        &json!({"accountId": 71, "lastName": "Oldname", "city": "Lyon", "email": "old@x.example"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["version"], 1);

    // A value replaces, null clears, an absent field stays.
    let updated = update(
        &registry,
        &created,
        json!({"lastName": "Newname", "city": null, "phone": "+33 1 23 45 67 89"}),
    )
    .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(updated.header("etag"), "\"2\"");
    assert!(!updated.position().is_empty());
    let customer = updated.body.clone();
    assert_eq!(customer["version"], 2);
    assert_eq!(customer["lastName"], "Newname");
    assert_eq!(customer["email"], "old@x.example", "absent fields are kept");
    assert_eq!(customer["phone"], "+33 1 23 45 67 89");
    assert!(customer.get("city").is_none(), "null clears: {customer}");
    assert_eq!(customer["createdAt"], created["createdAt"]);
    assert!(customer["updatedAt"].as_str() >= created["updatedAt"].as_str());

    // Read-your-writes: find sees the new values at once, the old ones no more.
    assert_eq!(
        found(&registry, "lastName=newn").await,
        vec![customer.clone()]
    );
    assert!(found(&registry, "lastName=oldn").await.is_empty());
    assert!(found(&registry, "city=lyon").await.is_empty());
    assert_eq!(found(&registry, "accountId=71").await.len(), 1);
    let (status, got) = get(
        &registry,
        &format!("/api/v01/customers/{}", created["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!((status, &got), (200, &customer));

    // PATCH with a merge patch is the same update; an update that changes nothing writes nothing.
    let patched = send(
        http()
            .patch(item(&registry, &created))
            .header("content-type", "application/merge-patch+json")
            .body(r#"{"city": "Paris"}"#),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["version"], 3);
    let unchanged = update(
        &registry,
        &created,
        json!({"city": "Paris", "lastName": "Newname"}),
    )
    .await;
    assert_eq!(unchanged.status, 200);
    assert_eq!(unchanged.body, patched.body, "nothing changed");
    let plain_json_patch = send(
        http()
            .patch(item(&registry, &created))
            .header("content-type", "application/json")
            .body("{}"),
    )
    .await;
    assert_eq!(plain_json_patch.status, 415, "{}", plain_json_patch.body);

    // XML: an empty element clears.
    let xml = send(
        http()
            .post(item(&registry, &created))
            .header("content-type", "application/xml")
            .header("accept", "application/xml")
            .body("<customer><phone/><firstName>Zoë</firstName></customer>"),
    )
    .await;
    assert_eq!(xml.status, 200, "{}", xml.text);
    let xml_text = xml.text.as_str();
    assert!(
        xml_text.contains("<firstName>Zoë</firstName>") && !xml_text.contains("<phone>"),
        "{xml_text}"
    );
    assert!(xml_text.contains("<version>4</version>"), "{xml_text}");

    // Fixed and server-assigned fields are refused, each named.
    let refused = update(
        &registry,
        &created,
        json!({"accountId": 72, "version": 9, "id": "x"}),
    )
    .await;
    assert_eq!(refused.status, 400);
    let codes: Vec<(&str, &str)> = refused.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| {
            (
                error["field"].as_str().unwrap(),
                error["code"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        codes,
        vec![
            ("accountId", "create_only"),
            ("version", "server_assigned"),
            ("id", "server_assigned")
        ]
    );

    // Delete: 204, then gone from get and find, but every event stays in its history.
    let deleted = send(http().delete(item(&registry, &created))).await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    assert!(!deleted.position().is_empty());
    let path = format!("/api/v01/customers/{}", created["id"].as_str().unwrap());
    assert_eq!(get(&registry, &path).await.0, 404);
    assert!(found(&registry, "accountId=71").await.is_empty());
    let (_, counted) = get(&registry, "/api/v01/customers?accountId=71").await;
    assert_eq!(counted, json!([]));
    let (status, history) = get(&registry, &format!("{path}/events")).await;
    assert_eq!(status, 200, "{history}");
    let types: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|record| record["event"]["eventType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        vec![
            "CustomerCreated",
            "CustomerUpdated",
            "CustomerUpdated",
            "CustomerUpdated",
            "CustomerDeleted"
        ]
    );
    assert_eq!(
        update(&registry, &created, json!({"city": "Nice"}))
            .await
            .status,
        404
    );
    assert_eq!(
        send(http().delete(item(&registry, &created))).await.status,
        404
    );

    // Every event validates against its schema and carries the CloudEvents headers.
    let records = read_topic(&bootstrap, &topic);
    assert_eq!(records.len(), 5, "the no-op update wrote nothing");
    for record in &records {
        let kind = record.value["eventType"].as_str().unwrap();
        let validator = schema(&kind.trim_start_matches("Customer").to_lowercase());
        assert_valid(&validator, &record.value);
        let header = |name: &str| {
            record
                .header(name)
                .unwrap_or_else(|| panic!("no {name} on {:?}", record.headers))
                .to_owned()
        };
        assert_eq!(header("ce_specversion"), "1.0");
        assert_eq!(header("ce_id"), record.value["eventId"]);
        assert_eq!(header("ce_type"), format!("customer-registry.{kind}.v2"));
        assert_eq!(header("ce_source"), format!("/customer-registry/{topic}"));
        assert_eq!(header("ce_time"), record.value["occurredAt"]);
        assert_eq!(header("ce_subject"), record.key);
        assert_eq!(header("content-type"), "application/json");
    }
    let update_event = &records
        .iter()
        .find(|record| record.value["eventType"] == "CustomerUpdated")
        .unwrap()
        .value;
    assert_eq!(
        update_event["data"]["changes"],
        json!({"lastName": "Newname", "phone": "+33 1 23 45 67 89", "city": null})
    );
    assert_eq!(update_event["data"]["version"], 2);
}

#[tokio::test]
async fn if_match_makes_a_change_conditional_on_the_version() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("if-match");
    let dir = tempfile::tempdir().unwrap();
    // A request that waited for the projection (up to a minute) would hit the 3 s deadline
    // (503): a version no write made is answered without waiting.
    let registry = Registry::start_with(
        &bootstrap,
        &topic,
        &dir.path().join("data"),
        &[
            "--projection-wait-ms",
            "60000",
            "--request-deadline-ms",
            "3000",
        ],
    );
    let (_, created) = create(&registry, &json!({"accountId": 72, "lastName": "Cond"})).await;

    let first = update_if(&registry, &created, "\"1\"", json!({"city": "Oslo"})).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let stale = update_if(&registry, &created, "\"1\"", json!({"city": "Bergen"})).await;
    assert_eq!(stale.status, 412, "{}", stale.body);
    assert_eq!(stale.body["type"], "/problems/version-mismatch");
    assert_eq!(stale.body["currentVersion"], 2);
    assert_eq!(stale.header("etag"), "\"2\"");
    assert!(stale.body["detail"].as_str().unwrap().contains("version 2"));
    for version in ["\"7\"", "\"3\"", "\"4294967296\""] {
        let ahead = update_if(&registry, &created, version, json!({"city": "Bergen"})).await;
        assert_eq!(ahead.status, 412, "{version}: {}", ahead.body);
        assert_eq!(ahead.body["currentVersion"], 2);
    }
    // Weak tags never match (If-Match compares strongly): 412, not 400.
    for weak in ["W/\"2\"", "W/\"2\", W/\"1\""] {
        let refused = update_if(&registry, &created, weak, json!({"city": "Bergen"})).await;
        assert_eq!(refused.status, 412, "{weak}: {}", refused.body);
        assert_eq!(refused.body["currentVersion"], 2);
    }
    let with_weak = update_if(
        &registry,
        &created,
        "W/\"1\", \"2\"",
        json!({"city": "Bergen"}),
    )
    .await;
    assert_eq!(with_weak.status, 200, "{}", with_weak.body);
    // A list matches when the customer is at one of its versions (RFC 9110), and is answered
    // at once when none exists yet.
    let listed = update_if(
        &registry,
        &created,
        "\"1\", \"3\", \"9\"",
        json!({"city": "Bø"}),
    )
    .await;
    assert_eq!(
        (listed.status, listed.body["version"].clone()),
        (200, json!(4))
    );
    for none in ["\"1\", \"2\"", "\"5\", \"6\""] {
        let refused = update_if(&registry, &created, none, json!({"city": "Bergen"})).await;
        assert_eq!(refused.status, 412, "{none}: {}", refused.body);
        assert_eq!(refused.body["currentVersion"], 4);
    }
    for malformed in ["2", "\"2\", 3", "\"x\"", "W/2"] {
        let refused = update_if(&registry, &created, malformed, json!({"city": "Bergen"})).await;
        assert_eq!(refused.status, 400, "{malformed}: {}", refused.body);
        assert_eq!(refused.body["errors"][0]["field"], "If-Match");
    }
    let any = update_if(&registry, &created, "*", json!({"city": "Tromsø"})).await;
    assert_eq!((any.status, any.body["version"].clone()), (200, json!(5)));

    let stale_delete = send(
        http()
            .delete(item(&registry, &created))
            .header("if-match", "\"3\""),
    )
    .await;
    assert_eq!(stale_delete.status, 412);
    let deleted = send(
        http()
            .delete(item(&registry, &created))
            .header("if-match", "\"5\""),
    )
    .await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
}

#[tokio::test]
async fn of_sixteen_conditional_updates_over_two_replicas_exactly_one_wins_everywhere() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("race");
    let dir = tempfile::tempdir().unwrap();
    let replicas = two_replicas(&bootstrap, &topic, dir.path());
    // Both replicas hold version 1 before the race starts.
    let created = create_everywhere(
        &replicas[0],
        &replicas,
        json!({"accountId": 73, "lastName": "Race"}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let racers: Vec<_> = (0..16)
        .map(|n| {
            let url = replicas[n % 2].url(&format!("/api/v01/customers/{id}"));
            tokio::spawn(async move {
                send(
                    http()
                        .post(url)
                        .header("if-match", "\"1\"")
                        .json(&json!({"city": format!("City{n}")})),
                )
                .await
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut positions = Vec::new();
    for (n, racer) in racers.into_iter().enumerate() {
        let answer = racer.await.unwrap();
        match answer.status {
            200 => {
                winners.push((n, answer.body.clone()));
                positions.push(answer.position().to_owned());
            }
            412 => assert_eq!(answer.body["currentVersion"], 2, "{}", answer.body),
            other => panic!("racer {n} answered {other}: {}", answer.body),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one wins: {winners:?}");
    let (winner, won) = &winners[0];
    assert_eq!(won["city"], format!("City{winner}"));
    assert_eq!(won["version"], 2);
    for replica in &replicas {
        let held = send(
            http()
                .get(replica.url(&format!("/api/v01/customers/{id}")))
                .header("x-min-log-position", &positions[0]),
        )
        .await;
        assert_eq!(&held.body, won, "both replicas hold the winner");
    }
    // The losers' events that reached the log (a racer whose replica had already applied the
    // winner answers 412 without writing) are skipped by the version rule on both replicas, and
    // listed there as rejected changes.
    let records = read_topic(&bootstrap, &topic);
    assert!((2..=17).contains(&records.len()), "{}", records.len());
    for replica in &replicas {
        let (_, rejected) = get(replica, "/api/v01/admin/rejected-events?limit=100").await;
        let conflicts = rejected
            .as_array()
            .unwrap()
            .iter()
            .filter(|rejected| rejected["kind"] == "version_conflict")
            .count();
        assert_eq!(conflicts, records.len() - 2, "{rejected}");
    }
    // A rebuild from the log agrees: the audit replays it and compares with the live model.
    let [first, _second] = replicas;
    assert!(first.stop());
    let audit = common::tool(&["audit"], &bootstrap, &topic, &dir.path().join("a"));
    assert_eq!(
        audit.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&audit.stdout)
    );
}

#[tokio::test]
async fn unconditional_updates_racing_over_two_replicas_all_apply_in_some_order() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("last-writer");
    let dir = tempfile::tempdir().unwrap();
    let replicas = two_replicas(&bootstrap, &topic, dir.path());
    let created = create_everywhere(
        &replicas[0],
        &replicas,
        json!({"accountId": 74, "lastName": "Busy"}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    // Sixteen at once: every one applies (before, a few in sixteen gave up as contended).
    let racers: Vec<_> = (0..16)
        .map(|n| {
            let url = replicas[n % 2].url(&format!("/api/v01/customers/{id}"));
            tokio::spawn(async move {
                send(
                    http()
                        .post(url)
                        .json(&json!({"street": format!("{n} Main St")})),
                )
                .await
            })
        })
        .collect();
    let mut versions = Vec::new();
    for racer in racers {
        let answer = racer.await.unwrap();
        assert_eq!(answer.status, 200, "{}", answer.body);
        versions.push(answer.body["version"].as_u64().unwrap());
    }
    versions.sort_unstable();
    assert_eq!(
        versions,
        (2..=17).collect::<Vec<u64>>(),
        "each applied once, in turn"
    );
}

#[tokio::test]
async fn a_retried_idempotency_key_replays_the_first_answer_and_another_request_is_422() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("change-keys");
    let dir = tempfile::tempdir().unwrap();
    let replicas = two_replicas(&bootstrap, &topic, dir.path());
    let created = create_everywhere(
        &replicas[0],
        &replicas,
        json!({"accountId": 75, "lastName": "Keyed"}),
    )
    .await;
    let keyed = |registry: &Registry, key: &str, patch: Value| {
        http()
            .post(item(registry, &created))
            .header("idempotency-key", key)
            .json(&patch)
    };
    // Racing retries of one keyed update on two replicas: one event applies, all answer it.
    let racers: Vec<_> = (0..6)
        .map(|n| {
            let request = keyed(&replicas[n % 2], "move-1", json!({"city": "Aarhus"}));
            tokio::spawn(send(request))
        })
        .collect();
    let mut answers = Vec::new();
    for racer in racers {
        let answer = racer.await.unwrap();
        assert_eq!(answer.status, 200, "{}", answer.body);
        answers.push(answer);
    }
    let first = answers[0].body.clone();
    assert_eq!(first["version"], 2);
    for answer in &answers {
        assert_eq!(answer.body, first, "every retry answers the one change");
    }
    // Another change, then the first request retried: its own answer (version 2), replayed.
    let other = update(&replicas[0], &created, json!({"street": "1 Side St"})).await;
    assert_eq!(other.body["version"], 3);
    let replayed = send(keyed(&replicas[1], "move-1", json!({"city": "Aarhus"}))).await;
    assert_eq!(replayed.status, 200, "{}", replayed.body);
    assert_eq!(replayed.body, first);
    assert_eq!(replayed.header("idempotent-replayed"), "true");
    // The same key with another request: 422.
    let reused = send(keyed(&replicas[0], "move-1", json!({"city": "Odense"}))).await;
    assert_eq!(reused.status, 422, "{}", reused.body);
    assert_eq!(reused.body["type"], "/problems/idempotency-key-reused");
    // A keyed delete, retried: 204 both times, one event.
    let delete = || {
        send(
            http()
                .delete(item(&replicas[1], &created))
                .header("idempotency-key", "close-1"),
        )
    };
    assert_eq!(delete().await.status, 204);
    let again = delete().await;
    assert_eq!(again.status, 204, "{}", again.body);
    assert_eq!(again.header("idempotent-replayed"), "true");

    let records = read_topic(&bootstrap, &topic);
    let applied: Vec<&str> = records
        .iter()
        .map(|record| record.value["eventType"].as_str().unwrap())
        .collect();
    let updates = applied
        .iter()
        .filter(|kind| **kind == "CustomerUpdated")
        .count();
    let deletes = applied
        .iter()
        .filter(|kind| **kind == "CustomerDeleted")
        .count();
    assert_eq!(deletes, 1, "{applied:?}");
    // Racing retries may each have written the event; every copy carries the same event id.
    let keyed_ids: std::collections::BTreeSet<&str> = records
        .iter()
        .filter(|record| {
            record
                .headers
                .iter()
                .any(|(name, value)| name == "idempotency-key" && value == "move-1")
        })
        .map(|record| record.value["eventId"].as_str().unwrap())
        .collect();
    assert_eq!(keyed_ids.len(), 1, "{keyed_ids:?}");
    assert!(updates >= 2, "{applied:?}");
    // The event id is derived as events/README.md says: UUIDv8 of the first half of
    // UUIDv5(`<accountId>:<key>:<customerId>`) and the second half of
    // UUIDv5(`<accountId>:<key>:<customerId>:<request-digest>:<version>`).
    let keyed_record = records
        .iter()
        .find(|record| record.value["eventId"].as_str() == keyed_ids.first().copied())
        .unwrap();
    let digest = keyed_record
        .header("request-digest")
        .expect("a request-digest header");
    let namespace = uuid::Uuid::parse_str("05bf6ed6-a70a-4417-9f91-f8841d6d20ec").unwrap();
    let scope = format!("75:move-1:{}", created["id"].as_str().unwrap());
    let key_half = uuid::Uuid::new_v5(&namespace, scope.as_bytes());
    let request_half = uuid::Uuid::new_v5(&namespace, format!("{scope}:{digest}:2").as_bytes());
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&key_half.as_bytes()[..8]);
    bytes[8..].copy_from_slice(&request_half.as_bytes()[8..]);
    assert_eq!(
        keyed_ids.first().copied(),
        Some(uuid::Uuid::new_v8(bytes).to_string().as_str())
    );
    let (_, history) = get(
        &replicas[0],
        &format!(
            "/api/v01/customers/{}/events",
            created["id"].as_str().unwrap()
        ),
    )
    .await;
    let versions: Vec<u64> = history
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|record| record["event"]["data"]["version"].as_u64())
        .collect();
    let mut distinct = versions.clone();
    distinct.dedup();
    assert_eq!(
        distinct,
        vec![2, 3, 4],
        "duplicates fold into one version each: {versions:?}"
    );
}

#[tokio::test]
async fn a_retried_create_key_replays_the_created_customer_after_updates_and_a_delete() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("create-key-later");
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(&bootstrap, &topic, &dir.path().join("data"));
    let body = json!({"accountId": 76, "lastName": "Original"});
    let create = || {
        send(
            http()
                .put(registry.url("/api/v01/customers"))
                .header("idempotency-key", "signup-1")
                .json(&body),
        )
    };
    let first = create().await;
    assert_eq!(first.status, 201, "{}", first.body);
    let updated = update(&registry, &first.body, json!({"lastName": "Renamed"})).await;
    assert_eq!(updated.status, 200);
    let retried = create().await;
    assert_eq!(retried.status, 201, "{}", retried.body);
    assert_eq!(
        retried.body, first.body,
        "the created customer, not the updated one"
    );
    assert_eq!(retried.header("idempotent-replayed"), "true");
    assert_eq!(
        send(http().delete(item(&registry, &first.body)))
            .await
            .status,
        204
    );
    let after_delete = create().await;
    assert_eq!(after_delete.status, 201, "{}", after_delete.body);
    assert_eq!(after_delete.body, first.body);
    let other = send(
        http()
            .put(registry.url("/api/v01/customers"))
            .header("idempotency-key", "signup-1")
            .json(&json!({"accountId": 76, "lastName": "Other"})),
    )
    .await;
    assert_eq!(other.status, 422, "{}", other.body);
    let records = read_topic(&bootstrap, &topic);
    assert_eq!(records.len(), 3, "one create, one update, one delete");
}

/// Two replicas of a topic of their own named after `test`: one that applies the log at once,
/// and one whose projector takes 800 ms a batch (so it trails the log), with waits long enough
/// to catch up; and the directory their data dirs are in.
fn leading_and_lagging(test: &str) -> (Registry, Registry, tempfile::TempDir) {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic(test);
    let dir = tempfile::tempdir().unwrap();
    let leading = Registry::start(&bootstrap, &topic, &dir.path().join("a"));
    let lagging = Registry::start_with_env(
        &bootstrap,
        &topic,
        &dir.path().join("b"),
        &[
            "--projection-wait-ms",
            "20000",
            "--request-deadline-ms",
            "30000",
        ],
        &[("FAILPOINTS", "projection-apply=sleep(800)")],
    );
    (leading, lagging, dir)
}

/// A keyed create retried on a replica that trails the log (its projector takes 800 ms a batch)
/// answers the first create, whatever happened to the customer since on another replica: the
/// replica first applies the customer's partition up to its end. (Before, it answered 422 for a
/// customer updated since, and a 201 with a fresh `createdAt` for one deleted since.)
#[tokio::test]
async fn a_keyed_create_retried_on_a_lagging_replica_replays_the_first_answer() {
    let (leading, lagging, _dir) = leading_and_lagging("create-key-lagging");
    for (n, then) in ["update", "delete"].into_iter().enumerate() {
        let key = format!("signup-lagging-{n}");
        let body = json!({"accountId": 79, "lastName": format!("Lagging{n}")});
        let create = |on: &Registry| {
            send(
                http()
                    .put(on.url("/api/v01/customers"))
                    .header("idempotency-key", &key)
                    .json(&body),
            )
        };
        let first = create(&leading).await;
        assert_eq!(first.status, 201, "{}", first.body);
        let changed = match then {
            "update" => update(&leading, &first.body, json!({"lastName": "Renamed"})).await,
            _ => send(http().delete(item(&leading, &first.body))).await,
        };
        assert!(changed.status < 300, "{then}: {}", changed.body);
        let retried = create(&lagging).await;
        assert_eq!(retried.status, 201, "{then}: {}", retried.body);
        assert_eq!(
            retried.body, first.body,
            "after the {then}: the first answer"
        );
        assert_eq!(retried.header("idempotent-replayed"), "true");
    }
}

/// If-Match lists: a keyed change retried once its own change moved the customer past the list
/// answers the first answer again (replayed); on a replica that trails the log, a list naming the
/// version the log has reached applies (the replica applies the customer's partition first).
#[tokio::test]
async fn if_match_lists_replay_keyed_retries_and_apply_on_a_lagging_replica() {
    let (leading, lagging, _dir) = leading_and_lagging("if-match-list");
    let (_, created) = create(&leading, &json!({"accountId": 72, "lastName": "List"})).await;
    for city in ["Aarhus", "Bergen"] {
        let changed = update(&leading, &created, json!({ "city": city })).await;
        assert_eq!(changed.status, 200, "{}", changed.body);
    }
    let keyed = |on: &Registry| {
        send(
            http()
                .post(item(on, &created))
                .header("if-match", "\"2\", \"3\"")
                .header("idempotency-key", "list-key")
                .json(&json!({"city": "Cork"})),
        )
    };
    let first = keyed(&leading).await;
    assert_eq!(
        (first.status, first.body["version"].clone()),
        (200, json!(4))
    );
    let retried = keyed(&leading).await;
    assert_eq!(retried.status, 200, "{}", retried.body);
    assert_eq!(retried.body, first.body);
    assert_eq!(retried.header("idempotent-replayed"), "true");

    // The trailing replica holds version 4 once it has applied the first change...
    let seen = send(
        http()
            .get(item(&lagging, &created))
            .header("x-min-log-position", first.position()),
    )
    .await;
    assert_eq!(seen.body["version"], 4, "{}", seen.body);
    // ...and not yet the next one, made elsewhere.
    let fifth = update(&leading, &created, json!({"city": "Dublin"})).await;
    assert_eq!(fifth.status, 200, "{}", fifth.body);
    let listed = update_if(&lagging, &created, "\"4\", \"5\"", json!({"city": "Derry"})).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert_eq!(listed.body["version"], 6);
}

/// A create with a code, retried with its key on a replica that trails the log after the customer
/// was changed elsewhere, answers the first create (replayed: with a key, the replica applies the
/// customer's partition first); another create of the code there, without a key, is a 409, which
/// the log decides (it is a conflict there).
#[tokio::test]
async fn a_coded_create_on_a_lagging_replica_is_decided_by_the_log() {
    let (leading, lagging, _dir) = leading_and_lagging("coded-lagging");
    let body = json!({"accountId": 79, "code": "ERP-LAGGING", "lastName": "Coded"});
    let create = |on: &Registry, key: Option<&str>| {
        let mut request = http().put(on.url("/api/v01/customers")).json(&body);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        send(request)
    };
    let first = create(&leading, Some("coded-lagging")).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let changed = update(&leading, &first.body, json!({"lastName": "Renamed"})).await;
    assert_eq!(changed.status, 200, "{}", changed.body);

    let retried = create(&lagging, Some("coded-lagging")).await;
    assert_eq!(retried.status, 201, "{}", retried.body);
    assert_eq!(retried.body, first.body, "the first answer");
    assert_eq!(retried.header("idempotent-replayed"), "true");
    let other = create(&lagging, None).await;
    assert_eq!(other.status, 409, "{}", other.body);
    assert_eq!(other.body["customerId"], first.body["id"], "{}", other.body);
}

/// A customer created through one replica and changed at once through another that trails the
/// log (a load balancer spreads a client's requests): the change waits for the trailing replica
/// to apply the customer's partition up to its end, and applies; only a customer the log does
/// not have is a 404. (Before, the trailing replica answered 404 for an acknowledged customer.)
#[tokio::test]
async fn a_change_on_a_lagging_replica_of_a_customer_created_elsewhere_applies() {
    let (leading, lagging, _dir) = leading_and_lagging("change-lagging");
    let created = send(
        http()
            .put(leading.url("/api/v01/customers"))
            .json(&json!({"accountId": 79, "lastName": "Elsewhere"})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let updated = update(&lagging, &created.body, json!({"lastName": "Renamed"})).await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(updated.body["version"], 2, "{}", updated.body);
    let deleted = send(http().delete(item(&lagging, &created.body))).await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    let unknown = format!("/api/v01/customers/{}", uuid::Uuid::now_v7().hyphenated());
    let absent = send(http().delete(lagging.url(&unknown))).await;
    assert_eq!(absent.status, 404, "{}", absent.body);
}

/// Two different requests with one key, sent at once to two replicas, for several customers:
/// each time exactly one applies (200) and the other is refused as a reused key (422), whichever
/// replica saw which first, and the customer holds the winner's value on both replicas.
#[tokio::test]
async fn two_requests_with_one_key_racing_over_two_replicas_apply_once() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("change-key-race");
    let dir = tempfile::tempdir().unwrap();
    let replicas = two_replicas(&bootstrap, &topic, dir.path());
    for n in 0..6 {
        let created = create_everywhere(
            &replicas[n % 2],
            &replicas,
            json!({"accountId": 76, "lastName": format!("Race{n}")}),
        )
        .await;
        let racers: Vec<_> = ["Aarhus", "Odense"]
            .iter()
            .enumerate()
            .map(|(side, city)| {
                let request = http()
                    .post(item(&replicas[side], &created))
                    .header("idempotency-key", "one-key")
                    .json(&json!({ "city": city }));
                tokio::spawn(send(request))
            })
            .collect();
        let mut answers = Vec::new();
        for racer in racers {
            answers.push(racer.await.unwrap());
        }
        let mut statuses: Vec<u16> = answers.iter().map(|answer| answer.status).collect();
        statuses.sort_unstable();
        assert_eq!(
            statuses,
            vec![200, 422],
            "customer {n}: {:?}",
            answers.iter().map(|a| &a.body).collect::<Vec<_>>()
        );
        let winner = answers.iter().find(|answer| answer.status == 200).unwrap();
        assert_eq!(winner.body["version"], 2, "{}", winner.body);
        let position = winner.position().to_owned();
        for replica in &replicas {
            let held = send(
                http()
                    .get(item(replica, &created))
                    .header("x-min-log-position", &position),
            )
            .await;
            assert_eq!(held.body, winner.body, "both replicas hold the winner only");
        }
    }
}
