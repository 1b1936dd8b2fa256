//! The read model is a projection of the log: it survives restarts without doubling anything, and
//! a deleted data dir is rebuilt from the topic with the same answers.

use crate::common::{create_all, find_eventually, get, kafka_bootstrap, unique_topic, Registry};
use serde_json::{json, Value};

async fn create_batch(registry: &Registry, account: u32, count: usize) -> Vec<Value> {
    let bodies: Vec<Value> = (0..count)
        .map(|n| json!({"accountId": account, "firstName": format!("R{n}"), "city": "Lyon"}))
        .collect();
    create_all(registry, &bodies).await
}

#[tokio::test]
async fn restarting_on_the_same_data_dir_keeps_every_customer_exactly_once() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("restart");
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");

    let registry = Registry::start(&bootstrap, &topic, &data_dir);
    let mut expected = create_batch(&registry, 11, 5).await;
    find_eventually(&registry, "/api/v01/customers", 5).await;
    assert!(
        registry.stop(),
        "a SIGTERM stops the service with exit code 0"
    );

    let registry = Registry::start(&bootstrap, &topic, &data_dir);
    let (status, after_restart) = get(&registry, "/api/v01/customers").await;
    assert_eq!(status, 200);
    assert_eq!(
        after_restart,
        json!(expected),
        "the same customers, once each, in order"
    );

    expected.extend(create_batch(&registry, 11, 2).await);
    let all = find_eventually(&registry, "/api/v01/customers", 7).await;
    assert_eq!(json!(all), json!(expected));
    assert!(registry.stop());
}

#[tokio::test]
async fn a_deleted_data_dir_is_rebuilt_from_the_log_with_the_same_answers() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("rebuild");
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let queries = [
        "/api/v01/customers",
        "/api/v01/customers?accountId=21",
        "/api/v01/customers?accountId=22&firstName=r1",
        "/api/v01/customers?offset=2&limit=3",
    ];

    let registry = Registry::start(&bootstrap, &topic, &data_dir);
    create_batch(&registry, 21, 4).await;
    create_batch(&registry, 22, 3).await;
    find_eventually(&registry, "/api/v01/customers", 7).await;
    let mut before = Vec::new();
    for query in queries {
        before.push(get(&registry, query).await);
    }
    assert!(registry.stop());

    std::fs::remove_dir_all(&data_dir).unwrap();
    let registry = Registry::start(&bootstrap, &topic, &data_dir);
    find_eventually(&registry, "/api/v01/customers", 7).await;
    for (query, answer) in queries.iter().zip(before) {
        assert_eq!(get(&registry, query).await, answer, "{query}");
    }
}
