//! Records the projector cannot apply are recorded, listed and skipped; the projector goes on.

use crate::common::{
    create, find_eventually, get, http, kafka_bootstrap, produce_raw, unique_topic, Registry,
};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[tokio::test]
async fn poison_records_are_listed_as_rejected_and_the_projector_goes_on() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("poison");
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let registry = Registry::start(&bootstrap, &topic, &data_dir);

    let (status, before) = create(&registry, &json!({"accountId": 4, "lastName": "Before"})).await;
    assert_eq!(status, 201, "{before}");
    let garbage = produce_raw(&bootstrap, &topic, 0, "x", b"\xff\xfe not an event").await;
    let unknown = json!({"eventId": "0199a000-0000-7000-8000-000000000001", "eventType": "CustomerMerged",
                         "schemaVersion": 1, "occurredAt": "2026-01-01T00:00:00.000Z", "data": {}});
    let unknown = produce_raw(&bootstrap, &topic, 0, "y", unknown.to_string().as_bytes()).await;
    let newer = json!({"eventId": "0199a000-0000-7000-8000-000000000002", "eventType": "CustomerCreated",
                       "schemaVersion": 3, "occurredAt": "2026-01-01T00:00:00.000Z", "data": {}});
    let newer = produce_raw(&bootstrap, &topic, 0, "z", newer.to_string().as_bytes()).await;
    let invalid = json!({"eventId": "0199a000-0000-7000-8000-000000000003", "eventType": "CustomerCreated",
                         "schemaVersion": 1, "occurredAt": "2026-01-01T00:00:00.000Z",
                         "data": {"id": "0199a000-0000-7000-8000-000000000004",
                                  "accountId": "alice.private@example.com",
                                  "countryCode": "ZZ", "createdAt": "2026-01-01T00:00:00.000Z"}});
    let invalid = produce_raw(&bootstrap, &topic, 0, "w", invalid.to_string().as_bytes()).await;

    let (status, after) = create(&registry, &json!({"accountId": 4, "lastName": "After"})).await;
    assert_eq!(status, 201, "{after}");
    find_eventually(&registry, "/api/v01/customers?accountId=4", 2).await;

    let deadline = Instant::now() + Duration::from_secs(30);
    let rejected = loop {
        let (status, rejected) = get(&registry, "/api/v01/admin/rejected-events").await;
        assert_eq!(status, 200);
        if rejected.as_array().unwrap().len() >= 4 || Instant::now() > deadline {
            break rejected;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let listed: Vec<(i64, &str)> = rejected
        .as_array()
        .unwrap()
        .iter()
        .map(|r: &Value| (r["offset"].as_i64().unwrap(), r["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        listed,
        vec![
            (garbage, "malformed"),
            (unknown, "unknown_type"),
            (newer, "unsupported_version"),
            (invalid, "malformed"),
        ]
    );
    assert!(rejected
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["partition"] == 0 && r["reason"].is_string()));
    // The reason may quote the record's values: the admin listing has it, the log does not.
    assert!(
        rejected[3]["reason"]
            .as_str()
            .unwrap()
            .contains("alice.private@example.com"),
        "{rejected}"
    );
    let log = std::fs::read_to_string(&registry.log_path).unwrap();
    assert!(log.contains("rejected a record"), "{log}");
    assert!(
        !log.contains("alice.private"),
        "personal data in the log:\n{log}"
    );

    // Paged like find: offset, limit, X-Total-Count; anything else is a 400.
    let paged = http()
        .get(registry.url("/api/v01/admin/rejected-events?offset=1&limit=2"))
        .send()
        .await
        .unwrap();
    assert_eq!(paged.headers()["x-total-count"], "4");
    let page: Value = paged.json().await.unwrap();
    assert_eq!(page, json!(rejected.as_array().unwrap()[1..3]));
    for refused in ["limit=0", "limit=1001", "accountId=4", "offset=-1"] {
        let path = format!("/api/v01/admin/rejected-events?{refused}");
        let (status, problem) = get(&registry, &path).await;
        assert_eq!(status, 400, "{refused}: {problem}");
    }

    // A restart neither re-applies nor re-lists them.
    assert!(registry.stop());
    let registry = Registry::start(&bootstrap, &topic, &data_dir);
    let (_, again) = get(&registry, "/api/v01/admin/rejected-events").await;
    assert_eq!(again.as_array().unwrap().len(), 4);
    let (_, customers) = get(&registry, "/api/v01/customers?accountId=4").await;
    assert_eq!(customers, json!([before, after]));
    assert!(registry.stop());

    // An audit replays the same records to the same verdicts, and says so.
    let audit = std::process::Command::new(env!("CARGO_BIN_EXE_customer-registry"))
        .env("REGISTRY_KEK_FILE", crate::common::kek_file())
        .args([
            "audit",
            "--json",
            "--kafka-bootstrap",
            &bootstrap,
            "--topic",
            &topic,
        ])
        .arg("--data-dir")
        .arg(&data_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&audit.stderr);
    assert_eq!(audit.status.code(), Some(0), "{stderr}");
    let report: Value = serde_json::from_slice(&audit.stdout).unwrap();
    assert_eq!(report["rejectedEvents"].as_array().unwrap().len(), 4);
    assert_eq!(report["rejectedEventsMatch"], true);
}
