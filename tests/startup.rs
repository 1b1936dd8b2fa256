//! Start-up refuses, with one clear line, what it cannot run on.

mod common;

use common::{kafka_bootstrap, run_to_exit, unique_topic};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;

#[test]
fn without_a_broker_it_exits_non_zero_and_says_how_to_start_one() {
    // Nothing listens on port 1 of loopback; this test needs no broker.
    let dir = tempfile::tempdir().unwrap();
    let (code, output) = run_to_exit("127.0.0.1:1", "customers.events", &dir.path().join("data"));
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
    let topic = unique_topic("finite-retention");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let seven_days =
        NewTopic::new(&topic, 1, TopicReplication::Fixed(1)).set("retention.ms", "604800000");
    let results = admin
        .create_topics([&seven_days], &AdminOptions::new())
        .await
        .unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");

    let dir = tempfile::tempdir().unwrap();
    let (code, output) = run_to_exit(&bootstrap, &topic, &dir.path().join("data"));
    assert_eq!(code, Some(1), "{output}");
    assert!(output.contains("retention.ms=604800000"), "{output}");
    assert!(output.contains("would delete events"), "{output}");
}
