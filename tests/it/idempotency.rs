//! `Idempotency-Key`: retries answer the original customer and append nothing; a key reused with
//! another body is refused; concurrent retries, on one replica or two, yield one customer.

use crate::common::{find_eventually, http, kafka_bootstrap, read_topic, unique_topic, Registry};
use serde_json::{json, Value};

async fn put(
    registry: &Registry,
    key: &str,
    body: &Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = http()
        .put(registry.url("/api/v01/customers"))
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .expect("PUT");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.json().await.expect("JSON"))
}

#[tokio::test]
async fn a_retry_answers_the_original_customer_and_appends_nothing() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("idem-retry");
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(&bootstrap, &topic, &dir.path().join("data"));
    let body = json!({"accountId": 12, "firstName": "Ada", "lastName": "Lovelace"});

    let (status, headers, first) = put(&registry, "order-1", &body).await;
    assert_eq!(status, 201, "{first}");
    assert!(!headers.contains_key("idempotent-replayed"));
    let (status, headers, again) = put(&registry, "order-1", &body).await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(again, first, "the same customer, createdAt included");
    let reformatted = json!({"lastName": "Lovelace", "firstName": " Ada ", "accountId": 12});
    let (status, _, same) = put(&registry, "order-1", &reformatted).await;
    assert_eq!(
        (status, &same),
        (201, &first),
        "the same details in another form"
    );

    let (status, _, other) = put(
        &registry,
        "order-1",
        &json!({"accountId": 12, "firstName": "Eve"}),
    )
    .await;
    assert_eq!(status, 422, "{other}");
    assert_eq!(other["type"], "/problems/idempotency-key-reused");
    let (status, _, elsewhere) = put(
        &registry,
        "order-1",
        &json!({"accountId": 13, "firstName": "Eve"}),
    )
    .await;
    assert_eq!(status, 201, "a key is scoped to its account: {elsewhere}");
    assert_ne!(elsewhere["id"], first["id"]);

    for bad_key in ["", "with space", &"k".repeat(256)] {
        let (status, _, problem) = put(&registry, bad_key, &body).await;
        assert_eq!(status, 400, "{bad_key:?}: {problem}");
        assert_eq!(problem["errors"][0]["field"], "Idempotency-Key");
    }
    // A key in another encoding is refused, not read as absent (which would make a retry a
    // second customer); so are two keys on one request, as which one was meant is unknowable.
    let not_ascii = [b"caf\xc3\xa9-1".as_slice()];
    let two_keys = [b"order-1".as_slice(), b"order-2"];
    for lines in [&not_ascii[..], &two_keys[..]] {
        let mut request = http().put(registry.url("/api/v01/customers")).json(&body);
        for line in lines {
            let value = reqwest::header::HeaderValue::from_bytes(line).unwrap();
            request = request.header("idempotency-key", value);
        }
        let response = request.send().await.expect("PUT");
        assert_eq!(response.status().as_u16(), 400);
        let problem: Value = response.json().await.unwrap();
        let error = &problem["errors"][0];
        assert_eq!(error["field"], "Idempotency-Key", "{problem}");
        assert_eq!(error["code"], "invalid_format", "{problem}");
    }

    let records = read_topic(&bootstrap, &topic);
    assert_eq!(records.len(), 2, "one event per customer: {records:?}");
}

#[tokio::test]
async fn concurrent_retries_on_one_replica_and_across_two_yield_one_customer() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("idem-race");
    let dir = tempfile::tempdir().unwrap();
    let replica_a = Registry::start(&bootstrap, &topic, &dir.path().join("a"));
    let replica_b = Registry::start(&bootstrap, &topic, &dir.path().join("b"));
    let body = json!({"accountId": 21, "lastName": "Racer", "city": "Monza"});

    let mut attempts = Vec::new();
    for n in 0..16 {
        let replica = if n % 2 == 0 { &replica_a } else { &replica_b };
        attempts.push(put(replica, "checkout-77", &body));
    }
    let answers = futures::future::join_all(attempts).await;
    let first_id = answers[0].2["id"].clone();
    for (status, _, customer) in &answers {
        assert_eq!(*status, 201, "{customer}");
        assert_eq!(customer["id"], first_id);
        assert_eq!(
            customer["createdAt"], answers[0].2["createdAt"],
            "one customer, one createdAt"
        );
    }
    for replica in [&replica_a, &replica_b] {
        let found = find_eventually(replica, "/api/v01/customers?accountId=21", 1).await;
        assert_eq!(found[0], answers[0].2);
    }
    let records = read_topic(&bootstrap, &topic);
    let event_ids: std::collections::HashSet<&str> = records
        .iter()
        .map(|r| r.value["eventId"].as_str().unwrap())
        .collect();
    assert_eq!(
        event_ids.len(),
        1,
        "racing duplicates share one event id: {records:?}"
    );
    assert!(
        records.len() <= 2,
        "each replica appends at most once: {}",
        records.len()
    );
}
