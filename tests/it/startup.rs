//! Start-up refuses, with one clear line, what it cannot run on.

use crate::common::{create, http, kafka_bootstrap, run_to_exit, unique_topic, Registry, PATIENCE};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;
use serde_json::json;
use std::time::Duration;

#[test]
fn without_a_broker_it_exits_non_zero_and_says_how_to_start_one() {
    // Nothing listens on port 1 of loopback; this test needs no broker.
    let dir = tempfile::tempdir().unwrap();
    // The bound: a clear exit within 30 s, not an endless retry loop.
    let limit = Duration::from_secs(30);
    let (code, output) = run_to_exit(
        "127.0.0.1:1",
        "customers.events",
        &dir.path().join("data"),
        limit,
    );
    assert_eq!(code, Some(1), "{output}");
    let error_lines: Vec<&str> = output.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(error_lines.len(), 1, "{output}");
    assert!(error_lines[0].contains("127.0.0.1:1"), "{output}");
    assert!(
        error_lines[0].contains("scripts/kafka.sh start"),
        "{output}"
    );
    assert!(!output.contains("panicked"), "{output}");
}

#[tokio::test(flavor = "multi_thread")]
async fn it_refuses_a_topic_that_would_delete_events() {
    let bootstrap = kafka_bootstrap();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let unfit = [
        ("retention.ms", "604800000"),
        ("retention.bytes", "1073741824"),
        ("cleanup.policy", "compact"),
    ];
    for (setting, value) in unfit {
        let topic = unique_topic("unfit-topic");
        let new_topic = NewTopic::new(&topic, 1, TopicReplication::Fixed(1))
            .set("retention.ms", "-1")
            .set(setting, value);
        let results = admin
            .create_topics([&new_topic], &AdminOptions::new())
            .await
            .unwrap();
        assert!(results.iter().all(Result::is_ok), "{results:?}");

        let dir = tempfile::tempdir().unwrap();
        let (code, output) = run_to_exit(&bootstrap, &topic, &dir.path().join("data"), PATIENCE);
        assert_eq!(code, Some(1), "{setting}: {output}");
        assert!(output.contains(&format!("{setting}={value}")), "{output}");
        assert!(output.contains("would delete events"), "{output}");
    }
}

#[tokio::test]
async fn a_data_dir_follows_one_topic_and_one_process() {
    let bootstrap = kafka_bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let first_topic = unique_topic("bound-topic");
    let registry = Registry::start(&bootstrap, &first_topic, &data_dir);
    let (status, _) = create(&registry, &json!({"accountId": 1})).await;
    assert_eq!(status, 201);

    let (code, output) = run_to_exit(&bootstrap, &first_topic, &data_dir, PATIENCE);
    assert_eq!(code, Some(1), "{output}");
    assert!(
        output.contains("in use by another customer-registry process"),
        "{output}"
    );
    assert!(registry.stop());

    let (code, output) = run_to_exit(
        &bootstrap,
        &unique_topic("other-topic"),
        &data_dir,
        PATIENCE,
    );
    assert_eq!(code, Some(1), "{output}");
    assert!(
        output.contains(&first_topic),
        "names the topic it was built from: {output}"
    );
}

/// The log says "ready" only once `/readyz` does: a client that starts traffic on that line
/// (as these tests do) never meets a 503 "not checked yet".
#[tokio::test]
async fn once_the_log_says_ready_readyz_says_so_too() {
    let (registry, _dir) = Registry::start_alone("ready-line");
    let ready = http().get(registry.url("/readyz")).send().await.unwrap();
    assert_eq!(
        ready.status().as_u16(),
        200,
        "{}",
        ready.text().await.unwrap()
    );
}

#[tokio::test]
async fn json_logs_are_one_object_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start_with_env(
        &kafka_bootstrap(),
        &unique_topic("json-logs"),
        &dir.path().join("data"),
        &[],
        &[("REGISTRY_LOG_FORMAT", "json")],
    );
    let (status, _) = create(&registry, &json!({"accountId": 5})).await;
    assert_eq!(status, 201);
    let log_path = registry.log_path.clone();
    assert!(registry.stop());
    let log = std::fs::read_to_string(log_path).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines.len() >= 2, "{log}");
    for line in lines {
        let event: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|error| panic!("not JSON ({error}): {line}"));
        assert!(event["level"].is_string(), "{line}");
        assert!(event["timestamp"].is_string(), "{line}");
        assert!(event["fields"]["message"].is_string(), "{line}");
    }
}

/// A topic deleted and created again under the same name, and written past the offsets a read
/// model applied, is another log: the read model's data dir is refused, naming the record that
/// told it (the first record its projector received, noted then). Offsets alone could not tell.
#[tokio::test]
async fn a_topic_deleted_and_created_again_under_its_name_is_another_log() {
    let bootstrap = kafka_bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let topic = unique_topic("recreated");
    let registry = Registry::start(&bootstrap, &topic, &data_dir);
    let (status, _) = create(&registry, &json!({"accountId": 1, "lastName": "First"})).await;
    assert_eq!(status, 201);
    assert!(registry.stop());

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let deleted = admin
        .delete_topics(&[&topic], &AdminOptions::new())
        .await
        .unwrap();
    assert!(deleted.iter().all(Result::is_ok), "{deleted:?}");
    // Deleting finishes in the background: the registry creates the topic again once it can.
    let deadline = std::time::Instant::now() + PATIENCE;
    let other = loop {
        match Registry::try_start_with_env(&bootstrap, &topic, &dir.path().join("other"), &[], &[])
        {
            Ok(other) => break other,
            Err(log) => assert!(std::time::Instant::now() < deadline, "{log}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // Past every offset the first read model applied, on every partition.
    for n in 0..60 {
        let (status, _) = create(
            &other,
            &json!({"accountId": 1, "lastName": format!("N{n}")}),
        )
        .await;
        assert_eq!(status, 201);
    }
    assert!(other.stop());

    let (code, output) = run_to_exit(&bootstrap, &topic, &data_dir, PATIENCE);
    assert_eq!(code, Some(1), "{output}");
    assert!(output.contains("first record"), "{output}");
}
