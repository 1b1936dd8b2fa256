//! Partitions added to the topic while the registry runs are found and projected.

mod common;

use common::{create, find_eventually, kafka_bootstrap, produce_raw, unique_topic, Registry};
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;
use serde_json::json;

#[tokio::test]
async fn partitions_added_later_are_projected() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("grow");
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--topic-partitions", "1", "--partition-check-ms", "200"];
    let registry = Registry::start_with(&bootstrap, &topic, &dir.path().join("data"), &flags);
    let (status, first) = create(&registry, &json!({"accountId": 61, "lastName": "Early"})).await;
    assert_eq!(status, 201, "{first}");

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let grown = admin
        .create_partitions([&NewPartitions::new(&topic, 3)], &AdminOptions::new())
        .await
        .unwrap();
    assert!(grown.iter().all(Result::is_ok), "{grown:?}");

    let late = json!({
        "eventId": "0199b000-0000-7000-8000-000000000001",
        "eventType": "CustomerCreated",
        "schemaVersion": 1,
        "occurredAt": "2030-01-01T00:00:00.000Z",
        "data": {"id": "0199b000-0000-7000-8000-000000000002", "accountId": 61,
                 "lastName": "Late", "createdAt": "2030-01-01T00:00:00.000Z"}
    });
    produce_raw(
        &bootstrap,
        &topic,
        2,
        "0199b000-0000-7000-8000-000000000002",
        late.to_string().as_bytes(),
    )
    .await;

    let found = find_eventually(&registry, "/api/v01/customers?accountId=61", 2).await;
    assert_eq!(found[0], first);
    // An event written before contract v1.3 has no code: the customer's code is its id.
    let mut expected = late["data"].clone();
    expected["code"] = expected["id"].clone();
    assert_eq!(common::as_created(&found[1]), expected);
}
