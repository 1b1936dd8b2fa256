//! Partitions added to the topic while the registry runs are found and projected, and never
//! split a customer: every event about one customer stays on the partition the log's recorded
//! partitioning gives it.

use crate::common;
use crate::common::{
    create, find_eventually, http, kafka_bootstrap, produce_raw, read_topic, unique_topic,
    until_answered, Registry,
};
use customer_registry::log::Partitioning;
use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

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

/// Creates `count` customers of `account` over `replicas` in turn, then updates each once on
/// the next replica; answers the customers as last acknowledged.
async fn create_and_update(
    replicas: &[&Registry],
    account: u32,
    label: &str,
    count: usize,
) -> Vec<Value> {
    let mut customers = Vec::new();
    for n in 0..count {
        let on = replicas[n % replicas.len()];
        let key = format!("{label}-{n}");
        let body = json!({"accountId": account, "lastName": format!("{label}{n}")});
        // Keyed, and with `X-Min-Log-Position` so that a replica that has not seen the customer
        // yet waits for it: safe to retry.
        let (created, _) = until_answered(|| {
            http()
                .put(on.url("/api/v01/customers"))
                .header("idempotency-key", &key)
                .json(&body)
        })
        .await;
        assert_eq!(created.status, 201, "{}", created.body);
        let next = replicas[(n + 1) % replicas.len()];
        let path = format!(
            "/api/v01/customers/{}",
            created.body["id"].as_str().unwrap()
        );
        let key = format!("{label}-{n}-update");
        let (updated, _) = until_answered(|| {
            http()
                .post(next.url(&path))
                .header("idempotency-key", &key)
                .header("x-min-log-position", created.position())
                .json(&json!({"city": format!("City{n}")}))
        })
        .await;
        assert_eq!(updated.status, 200, "{}", updated.body);
        customers.push(updated.body);
    }
    customers
}

#[tokio::test]
async fn a_topic_that_gains_partitions_under_load_keeps_each_customer_on_one_partition() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("grow-under-load");
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--topic-partitions", "3", "--partition-check-ms", "200"];
    let start =
        |name: &str| Registry::start_with(&bootstrap, &topic, &dir.path().join(name), &flags);
    let (a, b) = (start("a"), start("b"));
    let mut customers = create_and_update(&[&a, &b], 62, "before", 30).await;

    // The topic grows while both replicas write: what they write before and after stays routed
    // over the three partitions the log was created with.
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let replicas = [&a, &b];
    let eight = NewPartitions::new(&topic, 8);
    let options = AdminOptions::new();
    let grow = async {
        // Once the writes are under way.
        tokio::time::sleep(Duration::from_millis(300)).await;
        admin.create_partitions([&eight], &options).await
    };
    let (during, grown) = tokio::join!(create_and_update(&replicas, 62, "during", 30), grow);
    assert!(grown.unwrap().iter().all(Result::is_ok));
    customers.extend(during);

    // A restarted replica and a new one read the partitioning back from the log.
    drop(b);
    let b = start("b");
    let c = start("c");
    customers.extend(create_and_update(&[&b, &c, &a], 62, "after", 30).await);

    let records = read_topic(&bootstrap, &topic);
    let mut partitions_of: BTreeMap<&str, BTreeSet<i32>> = BTreeMap::new();
    for record in &records {
        partitions_of
            .entry(record.key.as_str())
            .or_default()
            .insert(record.partition);
        assert_eq!(record.header("partitioning"), Some("crc32/3"), "{record:?}");
    }
    assert_eq!(partitions_of.len(), customers.len());
    for (customer, partitions) in &partitions_of {
        assert_eq!(partitions.len(), 1, "{customer} lies on {partitions:?}");
        assert!(partitions.iter().all(|&partition| partition < 3));
        let id: customer_registry::domain::CustomerId = customer.parse().unwrap();
        assert_eq!(
            *partitions.first().unwrap(),
            Partitioning::over(3).partition_of(id)
        );
    }

    // Every replica answers the same registry once it has read the whole log, and so do audits
    // and a rebuild.
    let everyone = "/api/v01/customers?accountId=62&limit=1000";
    let mut log_end: BTreeMap<i32, i64> = BTreeMap::new();
    for record in &records {
        let next = log_end.entry(record.partition).or_default();
        *next = (*next).max(record.offset + 1);
    }
    let log_end = log_end
        .iter()
        .map(|(partition, next)| format!("{partition}:{next}"))
        .collect::<Vec<_>>()
        .join(",");
    let at_the_end = |replica: &Registry| {
        let request = http()
            .get(replica.url(everyone))
            .header("x-min-log-position", &log_end);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status().as_u16(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    let expected = at_the_end(&a).await;
    assert_eq!(expected.as_array().unwrap().len(), customers.len());
    for replica in [&b, &c] {
        assert_eq!(at_the_end(replica).await, expected);
    }
    let expected = expected.as_array().unwrap().clone();
    for customer in &customers {
        assert!(expected.contains(customer), "{customer} as acknowledged");
    }
    for (name, replica) in [("a", a), ("b", b), ("c", c)] {
        assert!(replica.stop());
        let data_dir = dir.path().join(name);
        let audit = common::tool(&["audit"], &bootstrap, &topic, &data_dir);
        assert_eq!(audit.status.code(), Some(0), "{audit:?}");
    }
    let data_dir = dir.path().join("c");
    let rebuilt = common::tool(&["rebuild"], &bootstrap, &topic, &data_dir);
    assert_eq!(rebuilt.status.code(), Some(0), "{rebuilt:?}");
    let c = Registry::start_with(&bootstrap, &topic, &data_dir, &flags);
    assert_eq!(
        find_eventually(&c, everyone, customers.len()).await,
        expected
    );
}

#[tokio::test]
async fn librdkafkas_default_partitioner_routes_as_the_recorded_partitioning() {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("default-partitioner");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let created = admin
        .create_topics(
            [&NewTopic::new(&topic, 12, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    // A producer as the registry's was before it routed records itself: no partition given.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let partitioning = Partitioning::over(12);
    for _ in 0..200 {
        let key = uuid::Uuid::now_v7().to_string();
        let delivered = producer
            .send(
                FutureRecord::to(&topic).key(&key).payload("{}"),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        assert_eq!(
            delivered.partition,
            partitioning.partition_of_key(key.as_bytes()),
            "{key}"
        );
    }
}

#[tokio::test]
async fn a_log_routed_over_two_partition_counts_is_refused_with_the_way_out() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("mixed-partitioning");
    common::create_topic_kept_forever(&bootstrap, &topic, 4).await;
    for (partition, partitioning) in [(0, "crc32/2"), (1, "crc32/4")] {
        common::produce_with_headers(
            &bootstrap,
            &topic,
            partition,
            "0199b000-0000-7000-8000-000000000009",
            b"{}",
            &[("partitioning", partitioning)],
        )
        .await;
    }
    let dir = tempfile::tempdir().unwrap();
    let (code, output) = common::run_to_exit(
        &bootstrap,
        &topic,
        &dir.path().join("data"),
        Duration::from_secs(60),
    );
    assert_eq!(code, Some(1), "{output}");
    assert!(output.contains("crc32/2, crc32/4"), "{output}");
    assert!(output.contains("customer-registry repartition"), "{output}");
}
