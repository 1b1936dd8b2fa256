//! Kill -9 the service again and again while clients create customers: every acknowledged create
//! survives exactly once, and the read model equals a fresh projection rebuilt from the log.

mod common;

use common::load::{create_all, LoadOutcome, Target};
use common::{
    create_all as create_each, find_eventually, get, kafka_bootstrap, unique_topic, Registry,
    PATIENCE,
};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::{Duration, Instant};

const KILLS: usize = 5;

/// Every acknowledged customer is in `customers` exactly once, exactly as acknowledged, and
/// nothing else is.
pub fn assert_exactly_once(outcome: &LoadOutcome, customers: &[Value]) {
    let ids: Vec<&str> = customers
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "no customer appears twice");
    for (key, acknowledged) in &outcome.acknowledged {
        let held: Vec<&Value> = customers
            .iter()
            .filter(|c| c["id"] == acknowledged["id"])
            .collect();
        assert_eq!(
            held,
            vec![acknowledged],
            "{key} is held once, as acknowledged"
        );
    }
    assert_eq!(
        customers.len(),
        outcome.acknowledged.len(),
        "one customer per key, nothing more"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_under_load_loses_nothing_and_doubles_nothing() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("kill-9");
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut registry = Registry::start(&bootstrap, &topic, &data_dir);
    let target = Target::new(&registry.base_url);

    let load = tokio::spawn({
        let target = target.clone();
        async move {
            create_all(
                &target,
                71,
                // Paced so that the load outlasts every kill: each lands on a busy service.
                (8, 30, Duration::from_millis(200)),
                Duration::from_secs(240),
            )
            .await
        }
    });
    for kill in 1..=KILLS {
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(!load.is_finished(), "kill {kill} would hit an idle service");
        registry.kill();
        registry = Registry::start(&bootstrap, &topic, &data_dir);
        target.set(&registry.base_url);
    }
    let outcome = load.await.unwrap();
    assert_eq!(outcome.acknowledged.len(), 8 * 30);

    let (status, customers) = get(&registry, "/api/v01/customers?accountId=71&limit=1000").await;
    assert_eq!(status, 200);
    let customers = customers.as_array().unwrap().clone();
    assert_exactly_once(&outcome, &customers);

    let rebuilt = Registry::start(&bootstrap, &topic, &dir.path().join("rebuilt"));
    let from_log = find_eventually(
        &rebuilt,
        "/api/v01/customers?accountId=71&limit=1000",
        customers.len(),
    )
    .await;
    assert_eq!(
        from_log, customers,
        "the read model equals a fresh projection of the log"
    );
    eprintln!(
        "kill -9 x{KILLS}: {} creates acknowledged, {} found, {} duplicates, {} retries, failures by status {:?}",
        outcome.acknowledged.len(),
        customers.len(),
        customers.len() - outcome.acknowledged.len(),
        outcome.retries,
        outcome.failure_statuses
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_exits_0_and_keeps_every_acknowledged_create() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("sigterm");
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let registry = Registry::start(&bootstrap, &topic, &data_dir);
    let target = Target::new(&registry.base_url);

    let load = tokio::spawn({
        let target = target.clone();
        async move {
            create_all(
                &target,
                72,
                (4, 20, Duration::ZERO),
                Duration::from_secs(120),
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(registry.stop(), "SIGTERM under load ends with exit code 0");
    let registry = Registry::start(&bootstrap, &topic, &data_dir);
    target.set(&registry.base_url);
    let outcome = load.await.unwrap();

    let (_, customers) = get(&registry, "/api/v01/customers?accountId=72&limit=1000").await;
    assert_exactly_once(&outcome, customers.as_array().unwrap());
}

/// Waits until the registry's log holds `line`.
fn wait_for_log(registry: &Registry, line: &str) {
    let deadline = Instant::now() + PATIENCE;
    while !std::fs::read_to_string(&registry.log_path)
        .unwrap_or_default()
        .contains(line)
    {
        assert!(
            Instant::now() < deadline,
            "the registry never logged {line:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_flush_loses_nothing_and_doubles_nothing() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("kill-9-flush");
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let small_flushes = ["--flush-changes", "20"];
    let bodies = |from: usize, to: usize| -> Vec<Value> {
        (from..to)
            .map(|n| json!({"accountId": 73, "lastName": format!("Flush{n:03}"), "city": "Paris"}))
            .collect()
    };

    // Three flushes of 20 customers: three segments committed.
    let registry = Registry::start_with(&bootstrap, &topic, &data_dir, &small_flushes);
    let mut acknowledged = create_each(&registry, &bodies(0, 60)).await;
    assert!(registry.stop());

    // The fourth flush writes its blocks and segment, merges the four segments, and is killed
    // before it commits; twenty more creates were applied in memory meanwhile.
    let registry = Registry::start_with_env(
        &bootstrap,
        &topic,
        &data_dir,
        &small_flushes,
        &[("REGISTRY_TEST_FLUSH_PAUSE_MS", "600000")],
    );
    acknowledged.extend(create_each(&registry, &bodies(60, 100)).await);
    wait_for_log(&registry, "pausing before its commit");
    registry.kill();

    let registry = Registry::start_with(&bootstrap, &topic, &data_dir, &small_flushes);
    let (status, held) = get(&registry, "/api/v01/customers?accountId=73&limit=1000").await;
    assert_eq!(status, 200);
    let held = held.as_array().unwrap().clone();
    let ids: HashSet<&str> = held.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), held.len(), "no customer appears twice");
    let mut sorted_acknowledged = acknowledged.clone();
    sorted_acknowledged.sort_by_key(|c| {
        (
            c["createdAt"].as_str().unwrap().to_owned(),
            c["id"].as_str().unwrap().to_owned(),
        )
    });
    assert_eq!(
        held, sorted_acknowledged,
        "every acknowledged customer, once, in answer order"
    );
    let (_, found) = get(
        &registry,
        "/api/v01/customers?accountId=73&lastName=flush09&city=par",
    )
    .await;
    assert_eq!(
        found.as_array().unwrap().len(),
        10,
        "the index holds the replayed customers"
    );

    let rebuilt = Registry::start(&bootstrap, &topic, &dir.path().join("rebuilt"));
    let from_log =
        find_eventually(&rebuilt, "/api/v01/customers?accountId=73&limit=1000", 100).await;
    assert_eq!(
        from_log, held,
        "the read model equals a fresh projection of the log"
    );
}
