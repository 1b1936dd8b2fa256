//! The topic's durability: on the three-node cluster the registry creates its topic with three
//! replicas, two of which must confirm each write and none of which may become leader out of
//! sync, and refuses a topic whose settings could lose an acknowledged event, naming the setting
//! and the fix; on one broker it starts, warning once that the log has no redundancy.

use crate::common::cluster;
use crate::common::{kafka_bootstrap, run_to_exit, unique_topic, Registry};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;
use std::collections::BTreeMap;
use std::time::Duration;

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap()
}

/// The topic's effective settings.
async fn configs(bootstrap: &str, topic: &str) -> BTreeMap<String, String> {
    let described = admin(bootstrap)
        .describe_configs([&ResourceSpecifier::Topic(topic)], &AdminOptions::new())
        .await
        .unwrap();
    described
        .into_iter()
        .next()
        .unwrap()
        .unwrap()
        .entries
        .into_iter()
        .filter_map(|entry| Some((entry.name, entry.value?)))
        .collect()
}

#[tokio::test]
async fn on_the_cluster_the_topic_has_three_replicas_and_needs_two_in_sync() {
    let cluster = cluster::shared();
    let bootstrap = cluster.bootstrap();
    let topic = unique_topic("cluster-durable");
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(bootstrap, &topic, &dir.path().join("data"));

    let metadata = admin(bootstrap)
        .inner()
        .fetch_metadata(Some(&topic), Duration::from_secs(10))
        .unwrap();
    let partitions = metadata.topics()[0].partitions();
    assert_eq!(partitions.len(), 12, "the default partition count");
    for partition in partitions {
        assert_eq!(
            partition.replicas().len(),
            3,
            "partition {}",
            partition.id()
        );
    }
    let settings = configs(bootstrap, &topic).await;
    assert_eq!(settings["min.insync.replicas"], "2");
    assert_eq!(settings["unclean.leader.election.enable"], "false");
    assert_eq!(settings["retention.ms"], "-1");
    assert_eq!(
        settings["message.timestamp.type"], "LogAppendTime",
        "the brokers stamp records, so `export --as-of` cuts the same whoever wrote them"
    );
    let log = std::fs::read_to_string(&registry.log_path).unwrap();
    assert!(!log.contains("no redundancy"), "{log}");
}

#[tokio::test]
async fn on_the_cluster_a_topic_that_could_lose_an_acknowledged_event_is_refused() {
    let cluster = cluster::shared();
    let bootstrap = cluster.bootstrap();
    // Name, replication factor, topic settings, what the refusal must say.
    type Case<'a> = (&'a str, i32, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 3] = [
        (
            "thin",
            1,
            &[],
            "replication.factor=1 on a cluster of 3 brokers",
        ),
        (
            "lax",
            3,
            &[("min.insync.replicas", "1")],
            "--add-config min.insync.replicas=2",
        ),
        (
            "unclean",
            3,
            &[("unclean.leader.election.enable", "true")],
            "--add-config unclean.leader.election.enable=false",
        ),
    ];
    for (name, replication, settings, says) in cases {
        let topic = unique_topic(&format!("cluster-{name}"));
        let mut new_topic = NewTopic::new(&topic, 3, TopicReplication::Fixed(replication))
            .set("retention.ms", "-1")
            .set("retention.bytes", "-1");
        for (key, value) in settings {
            new_topic = new_topic.set(key, value);
        }
        let created = admin(bootstrap)
            .create_topics([&new_topic], &AdminOptions::new())
            .await
            .unwrap();
        assert!(created.iter().all(Result::is_ok), "{created:?}");
        let dir = tempfile::tempdir().unwrap();
        let (code, output) = run_to_exit(
            bootstrap,
            &topic,
            &dir.path().join("data"),
            Duration::from_secs(60),
        );
        assert_eq!(code, Some(1), "{name}: {output}");
        assert!(output.contains(says), "{name}: {output}");
    }
}

#[tokio::test]
async fn on_one_broker_the_registry_starts_and_warns_once_that_the_log_has_no_redundancy() {
    let (registry, _dir) = Registry::start_alone("single-broker-warning");
    let _ = kafka_bootstrap();
    let log = std::fs::read_to_string(&registry.log_path).unwrap();
    assert_eq!(
        log.matches("the event log has no redundancy").count(),
        1,
        "{log}"
    );
}
