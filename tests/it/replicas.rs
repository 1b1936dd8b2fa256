//! Read-your-writes across replicas: every answer says the log position it reflects, and a read
//! that sends it back to another replica waits until that replica has caught up.

use crate::common::{find_eventually, get, http, kafka_bootstrap, unique_topic, Registry};
use serde_json::{json, Value};

#[tokio::test]
async fn a_write_on_one_replica_is_read_on_another_with_the_log_position() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("replicas");
    let dir = tempfile::tempdir().unwrap();
    let replica_a = Registry::start(&bootstrap, &topic, &dir.path().join("a"));
    let replica_b = Registry::start(&bootstrap, &topic, &dir.path().join("b"));

    for n in 0..5 {
        let response = http()
            .put(replica_a.url("/api/v01/customers"))
            .json(&json!({"accountId": 31, "lastName": format!("Relay{n}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 201);
        let position = response.headers()["x-log-position"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(!position.is_empty());
        let created: Value = response.json().await.unwrap();

        let on_b = http()
            .get(replica_b.url(&format!(
                "/api/v01/customers/{}",
                created["id"].as_str().unwrap()
            )))
            .header("x-min-log-position", &position)
            .send()
            .await
            .unwrap();
        assert_eq!(
            on_b.status().as_u16(),
            200,
            "replica B waited for position {position}"
        );
        assert!(on_b.headers().contains_key("x-log-position"));
        assert_eq!(on_b.json::<Value>().await.unwrap(), created);

        let found = http()
            .get(replica_b.url(&format!("/api/v01/customers?lastName=relay{n}")))
            .header("x-min-log-position", &position)
            .send()
            .await
            .unwrap();
        assert_eq!(found.json::<Value>().await.unwrap(), json!([created]));
    }

    let from_a = find_eventually(&replica_a, "/api/v01/customers", 5).await;
    let from_b = find_eventually(&replica_b, "/api/v01/customers", 5).await;
    assert_eq!(from_a, from_b, "caught-up replicas answer identical finds");
    for query in ["?accountId=31&lastName=relay", "?offset=1&limit=3"] {
        let path = format!("/api/v01/customers{query}");
        assert_eq!(
            get(&replica_a, &path).await,
            get(&replica_b, &path).await,
            "{query}"
        );
    }
}

#[tokio::test]
async fn a_position_this_replica_has_not_reached_is_503_one_past_the_log_400_at_once() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("behind");
    let dir = tempfile::tempdir().unwrap();
    // Every batch the projector applies takes 5 s: the replica trails the log it writes to.
    let registry = Registry::start_with_env(
        &bootstrap,
        &topic,
        &dir.path().join("data"),
        &["--projection-wait-ms", "300"],
        &[("FAILPOINTS", "projection-apply=sleep(5000)")],
    );
    let created = http()
        .put(registry.url("/api/v01/customers"))
        .json(&json!({"accountId": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let position = created.headers()["x-log-position"]
        .to_str()
        .unwrap()
        .to_owned();
    let behind = http()
        .get(registry.url("/api/v01/customers"))
        .header("x-min-log-position", &position)
        .send()
        .await
        .unwrap();
    assert_eq!(behind.status().as_u16(), 503, "{position}");
    assert_eq!(behind.headers()["retry-after"], "1");
    let problem: Value = behind.json().await.unwrap();
    assert_eq!(problem["type"], "/problems/replica-behind");

    // Past the log's end no write was ever acknowledged: nothing to wait for.
    let ahead = http()
        .get(registry.url("/api/v01/customers"))
        .header("x-min-log-position", "0:9223372036854775807")
        .send()
        .await
        .unwrap();
    assert_eq!(ahead.status().as_u16(), 400);
    let problem: Value = ahead.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "X-Min-Log-Position");
    assert_eq!(problem["errors"][0]["code"], "beyond_log_end");

    let malformed = http()
        .get(registry.url("/api/v01/customers"))
        .header("x-min-log-position", "zero:one")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status().as_u16(), 400);
    let problem: Value = malformed.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "X-Min-Log-Position");

    // A list split over two header lines is read whole: the second line names a position past
    // partition 1's end (it holds nothing).
    let split = http()
        .get(registry.url("/api/v01/customers"))
        .header("x-min-log-position", "0:0")
        .header("x-min-log-position", "1:5")
        .send()
        .await
        .unwrap();
    assert_eq!(split.status().as_u16(), 400);
    let problem: Value = split.json().await.unwrap();
    assert_eq!(problem["errors"][0]["code"], "beyond_log_end");

    // A partition the topic lacks can never be reached: a 400 at once, not a wait and a 503.
    let many: Vec<String> = (0..1_000)
        .map(|partition| format!("{partition}:1"))
        .collect();
    for position in ["99:5", "0:1,17:0", &many.join(",")] {
        let unknown = http()
            .get(registry.url("/api/v01/customers"))
            .header("x-min-log-position", position)
            .send()
            .await
            .unwrap();
        assert_eq!(unknown.status().as_u16(), 400);
        let body = unknown.text().await.unwrap();
        assert!(body.len() < 1_000, "bounded: {body}");
        let problem: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(problem["errors"][0]["field"], "X-Min-Log-Position");
        assert_eq!(problem["errors"][0]["code"], "unknown_partition");
        assert!(
            problem["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("partitions 0..11"),
            "{problem}"
        );
    }

    // Refused without being read as absent, and never echoed whole.
    let long = format!("0:{}", "1".repeat(9_000));
    let header_cases: [(&[u8], &str); 3] = [
        (b"0:\xff", "invalid_format"),
        (long.as_bytes(), "too_long"),
        (&[b'x'; 2_000], "invalid_format"),
    ];
    for (value, code) in header_cases {
        let refused = http()
            .get(registry.url("/api/v01/customers"))
            .header(
                "x-min-log-position",
                reqwest::header::HeaderValue::from_bytes(value).unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status().as_u16(), 400, "{code}");
        let body = refused.text().await.unwrap();
        assert!(
            body.len() < 1_000,
            "the refusal quotes a bounded part: {body}"
        );
        let problem: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(problem["errors"][0]["field"], "X-Min-Log-Position");
        assert_eq!(problem["errors"][0]["code"], code, "{problem}");
    }
}
