//! The registry on the three-node cluster while nodes fail: with two of three up, writes keep
//! succeeding; with one up (two stopped, or two killed at once, which takes the controller quorum
//! with them), writes answer 503 at once saying why and reads keep serving; a node coming back
//! needs no restart of the registry; and keyed creates (200 at once) and a stream of keyed
//! updates, while a node is killed and restarted (once, and three times in a row), are each
//! applied exactly once, the same on two replicas, with nothing acknowledged lost.
//!
//! Each test stops nodes of the one shared cluster, so it has the cluster to itself
//! ([`cluster::exclusive`]), which starts them again when it ends, failed or not.

use crate::common;
use crate::common::cluster::{self, wait_until_in_sync, ExclusiveCluster};
use crate::common::{send, unique_topic, until_answered, Answer, Registry, PATIENCE};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(45))
        .build()
        .unwrap()
}

/// A registry of its own on the cluster, on a topic named after `label`; with the cluster's
/// bootstrap servers and the topic, and the directory its data dir is in.
fn alone_on_the_cluster(
    cluster: &ExclusiveCluster,
    label: &str,
) -> (Registry, String, String, tempfile::TempDir) {
    let bootstrap = cluster.bootstrap().to_owned();
    let topic = unique_topic(label);
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(&bootstrap, &topic, &dir.path().join("data"));
    (registry, bootstrap, topic, dir)
}

/// Sends `request` until it is refused with `/problems/not-enough-replicas` (failing the test
/// after [`PATIENCE`]); answers the refusal.
async fn until_short_of_replicas(request: impl Fn() -> reqwest::RequestBuilder) -> Answer {
    let since = Instant::now();
    loop {
        let attempt = send(request()).await;
        if attempt.status == 503 && attempt.body["type"] == "/problems/not-enough-replicas" {
            return attempt;
        }
        assert!(
            since.elapsed() < PATIENCE,
            "no not-enough-replicas answer: {} {}",
            attempt.status,
            attempt.body
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_need_two_of_three_nodes_and_reads_never_stop() {
    let cluster = cluster::exclusive();
    let (registry, bootstrap, topic, _dir) = alone_on_the_cluster(&cluster, "two-of-three");
    let http = client();
    let create = |key: &str| {
        http.put(registry.url("/api/v01/customers"))
            .header("idempotency-key", key)
            .json(&json!({"accountId": 91, "lastName": format!("Node{key}")}))
    };

    // Two of three: creates, updates and deletes go through, at the first try.
    cluster.stop_broker(3, false);
    let created = send(create("while-two-run")).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let path = format!(
        "/api/v01/customers/{}",
        created.body["id"].as_str().unwrap()
    );
    let updated = send(
        http.post(registry.url(&path))
            .header("idempotency-key", "update-while-two-run")
            .json(&json!({"city": "Oslo"})),
    )
    .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    let doomed = send(create("deleted-while-two-run")).await;
    assert_eq!(doomed.status, 201, "{}", doomed.body);
    let doomed_path = format!("/api/v01/customers/{}", doomed.body["id"].as_str().unwrap());
    let deleted = send(http.delete(registry.url(&doomed_path))).await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);

    // One of three: writes are refused at once, saying why; reads answer.
    cluster.stop_broker(2, false);
    let second_down = Instant::now();
    let refused = until_short_of_replicas(|| create("while-one-runs")).await;
    let refused_after = second_down.elapsed();
    assert!(!refused.header("retry-after").is_empty());
    let detail = refused.body["detail"].as_str().unwrap();
    assert!(detail.contains("not enough in-sync replicas"), "{detail}");
    assert!(detail.contains("min.insync.replicas"), "{detail}");
    let started = Instant::now();
    let again = send(create("while-one-runs")).await;
    assert_eq!(again.status, 503);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused at once, not after the delivery timeout"
    );
    let read = send(http.get(registry.url(&path))).await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.body["city"], "Oslo");
    let found = send(http.get(registry.url("/api/v01/customers?accountId=91"))).await;
    assert_eq!(found.status, 200);
    assert_eq!(
        found.body.as_array().unwrap().len(),
        1,
        "the deleted one left"
    );

    // A node back: writes go through again, with no restart of the registry, and the write
    // refused meanwhile is made once by its retry.
    cluster.start_broker(2);
    let second_back = Instant::now();
    let (retried, _) = until_answered(|| create("while-one-runs")).await;
    assert_eq!(retried.status, 201, "{}", retried.body);
    eprintln!(
        "with one node of three up, writes were refused {refused_after:?} after the second \
         stopped; with two up again, a write went through {:?} after the node was back",
        second_back.elapsed()
    );
    cluster.start_broker(3);
    wait_until_in_sync(&bootstrap, &topic);
    let found = send(
        http.get(registry.url("/api/v01/customers?accountId=91"))
            .header("x-min-log-position", retried.position()),
    )
    .await;
    assert_eq!(found.body.as_array().unwrap().len(), 2, "{}", found.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_refused_at_once_when_two_nodes_are_killed() {
    let cluster = cluster::exclusive();
    let (registry, bootstrap, topic, _dir) = alone_on_the_cluster(&cluster, "two-killed");
    let http = client();
    let create = |key: &str| {
        http.put(registry.url("/api/v01/customers"))
            .header("idempotency-key", key)
            .json(&json!({"accountId": 94, "lastName": format!("Quorum{key}")}))
    };
    let (before, _) = until_answered(|| create("before")).await;
    assert_eq!(before.status, 201, "{}", before.body);

    // Killed together, nothing is fenced: the controller quorum is gone with them, and metadata
    // keeps listing the dead nodes as brokers, leaders and in-sync replicas.
    cluster.stop_broker(2, true);
    cluster.stop_broker(3, true);
    let killed = Instant::now();
    let refused = until_short_of_replicas(|| create("while-two-are-dead")).await;
    let refused_after = killed.elapsed();
    assert!(!refused.header("retry-after").is_empty());
    let path = format!("/api/v01/customers/{}", before.body["id"].as_str().unwrap());
    let read = send(http.get(registry.url(&path))).await;
    assert_eq!(read.status, 200, "{}", read.body);

    cluster.start_broker(2);
    let back = Instant::now();
    let (retried, _) = until_answered(|| create("while-two-are-dead")).await;
    assert_eq!(retried.status, 201, "{}", retried.body);
    eprintln!(
        "two nodes killed: writes refused {refused_after:?} after the kills; a write went \
         through {:?} after one was back",
        back.elapsed()
    );
    cluster.start_broker(3);
    wait_until_in_sync(&bootstrap, &topic);
}

/// A write the load acknowledged, and how it went.
struct Acknowledged {
    /// The customer's id, and the position of the write.
    id: String,
    position: String,
    /// Tries it took, and how long from the first to the answer.
    tries: usize,
    took: Duration,
}

/// Sends one keyed write until it is acknowledged with `expected`.
async fn acknowledged(
    request: impl Fn() -> reqwest::RequestBuilder,
    expected: u16,
    what: &str,
) -> Acknowledged {
    let sent = Instant::now();
    let (answered, tries) = until_answered(request).await;
    assert_eq!(answered.status, expected, "{what}: {}", answered.body);
    Acknowledged {
        id: answered.body["id"].as_str().unwrap_or_default().to_owned(),
        position: answered.position().to_owned(),
        tries,
        took: sent.elapsed(),
    }
}

/// `count` keyed creates sent at once, half to each replica, each retried with its key until
/// acknowledged.
async fn concurrent_creates(
    replicas: &[String; 2],
    account: u32,
    label: &str,
    count: usize,
) -> Vec<Acknowledged> {
    let tasks: Vec<_> = (0..count)
        .map(|n| {
            let url = format!("{}/api/v01/customers", replicas[n % 2]);
            let key = format!("{label}-{n}");
            let body = json!({"accountId": account, "lastName": format!("{label}x{n}")});
            tokio::spawn(async move {
                let http = client();
                acknowledged(
                    || http.put(&url).header("idempotency-key", &key).json(&body),
                    201,
                    &key,
                )
                .await
            })
        })
        .collect();
    let mut created = Vec::with_capacity(count);
    for task in tasks {
        created.push(task.await.unwrap());
    }
    created
}

/// What the stream of updates got acknowledged: customer id → the cities, in order.
type UpdatesAcknowledged = BTreeMap<String, Vec<String>>;

/// A stream of keyed updates until `stop`: `clients` clients, each updating its own share of
/// `customers` in turn (a new key and city each time), alternating replicas, each with the last
/// position it was given as `X-Min-Log-Position`. Counts acknowledged updates in `progress`;
/// answers them, the most tries one took and the longest one took.
async fn update_stream(
    replicas: [String; 2],
    customers: Vec<(String, String)>,
    clients: usize,
    progress: Arc<AtomicUsize>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> (UpdatesAcknowledged, usize, Duration) {
    let tasks: Vec<_> = (0..clients)
        .map(|client_no| {
            let mine: Vec<(String, String)> = customers
                .iter()
                .skip(client_no)
                .step_by(clients)
                .cloned()
                .collect();
            let (replicas, progress, stop) = (replicas.clone(), progress.clone(), stop.clone());
            tokio::spawn(async move {
                let http = client();
                let mut positions: BTreeMap<String, String> = mine.iter().cloned().collect();
                let mut acknowledged: UpdatesAcknowledged = BTreeMap::new();
                let (mut most_tries, mut slowest) = (1, Duration::ZERO);
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let (id, _) = &mine[n % mine.len()];
                    let city = format!("C{client_no}x{n}");
                    let key = format!("update-{id}-{n}");
                    let url = format!("{}/api/v01/customers/{id}", replicas[n % 2]);
                    let position = positions[id].clone();
                    let done = acknowledged_update(&http, &url, &key, &position, &city).await;
                    positions.insert(id.clone(), done.position);
                    acknowledged.entry(id.clone()).or_default().push(city);
                    most_tries = most_tries.max(done.tries);
                    slowest = slowest.max(done.took);
                    progress.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
                (acknowledged, most_tries, slowest)
            })
        })
        .collect();
    let mut all = BTreeMap::new();
    let (mut most_tries, mut slowest) = (1, Duration::ZERO);
    for task in tasks {
        let (acknowledged, tries, took) = task.await.unwrap();
        all.extend(acknowledged);
        most_tries = most_tries.max(tries);
        slowest = slowest.max(took);
    }
    (all, most_tries, slowest)
}

async fn acknowledged_update(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    position: &str,
    city: &str,
) -> Acknowledged {
    acknowledged(
        || {
            http.post(url)
                .header("idempotency-key", key)
                .header("x-min-log-position", position)
                .json(&json!({"city": city}))
        },
        200,
        key,
    )
    .await
}

/// Both replicas hold every acknowledged create once, at the version its acknowledged updates
/// gave it, with the last of them applied, and nothing else.
async fn assert_exactly_once(
    replicas: &[&Registry; 2],
    account: u32,
    created: &[String],
    updates: &UpdatesAcknowledged,
) {
    let path = format!("/api/v01/customers?accountId={account}&limit=1000");
    let on_first = common::find_eventually(replicas[0], &path, created.len()).await;
    let on_second = common::find_eventually(replicas[1], &path, created.len()).await;
    assert_eq!(
        on_first, on_second,
        "both replicas answer the same customers"
    );
    let by_id: BTreeMap<&str, &Value> = on_first
        .iter()
        .map(|customer| (customer["id"].as_str().unwrap(), customer))
        .collect();
    assert_eq!(by_id.len(), created.len(), "one customer a key");
    for id in created {
        let customer = by_id
            .get(id.as_str())
            .unwrap_or_else(|| panic!("{id} lost"));
        let cities = updates.get(id).map_or(&[][..], Vec::as_slice);
        assert_eq!(customer["version"], 1 + cities.len(), "{customer}");
        if let Some(last) = cities.last() {
            assert_eq!(&customer["city"], last, "{customer}");
        }
    }
}

/// Two replicas; 40 customers, then a stream of keyed updates to them from 8 clients that runs
/// through every fault; for each node of `kills`: the node is killed, 200 keyed creates are sent
/// at once, and 2 s later the node is started again.
async fn survives_nodes_killed_under_load(topic_label: &str, account: u32, kills: &[u8]) {
    // Shared with the blocking task that starts a killed node again.
    let cluster = Arc::new(cluster::exclusive());
    let bootstrap = cluster.bootstrap().to_owned();
    let topic = unique_topic(topic_label);
    let dir = tempfile::tempdir().unwrap();
    let first = Registry::start(&bootstrap, &topic, &dir.path().join("a"));
    let second = Registry::start(&bootstrap, &topic, &dir.path().join("b"));
    let replicas = [first.base_url.clone(), second.base_url.clone()];
    let seeds = concurrent_creates(&replicas, account, "seed", 40).await;
    let mut created: Vec<String> = seeds.iter().map(|seed| seed.id.clone()).collect();
    let progress = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stream = tokio::spawn(update_stream(
        replicas.clone(),
        seeds
            .iter()
            .map(|seed| (seed.id.clone(), seed.position.clone()))
            .collect(),
        8,
        Arc::clone(&progress),
        Arc::clone(&stop),
    ));
    let (mut most_tries, mut slowest) = (1, Duration::ZERO);
    for (cycle, &node) in kills.iter().enumerate() {
        let before = progress.load(Ordering::Relaxed);
        cluster.stop_broker(node, true);
        let label = format!("kill{cycle}");
        let burst = concurrent_creates(&replicas, account, &label, 200);
        let restart = async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let cluster = Arc::clone(&cluster);
            tokio::task::spawn_blocking(move || cluster.start_broker(node))
                .await
                .unwrap();
        };
        let (burst, ()) = tokio::join!(burst, restart);
        for create in &burst {
            most_tries = most_tries.max(create.tries);
            slowest = slowest.max(create.took);
        }
        created.extend(burst.into_iter().map(|create| create.id));
        let bootstrap = bootstrap.clone();
        let topic = topic.clone();
        tokio::task::spawn_blocking(move || wait_until_in_sync(&bootstrap, &topic))
            .await
            .unwrap();
        let after = progress.load(Ordering::Relaxed);
        assert!(
            after > before,
            "the updates went on through node {node}'s kill ({before} then {after})"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let (updates, update_tries, update_slowest) = stream.await.unwrap();
    assert_exactly_once(&[&first, &second], account, &created, &updates).await;
    eprintln!(
        "{} creates and {} updates acknowledged through {} kill(s): the most tries a write took \
         {}, the slowest {:?}",
        created.len(),
        updates.values().map(Vec::len).sum::<usize>(),
        kills.len(),
        most_tries.max(update_tries),
        slowest.max(update_slowest)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_writes_survive_a_node_killed_and_restarted_under_load() {
    survives_nodes_killed_under_load("killed-once", 92, &[2]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_writes_survive_nodes_killed_three_times_in_a_row_under_load() {
    survives_nodes_killed_under_load("killed-thrice", 93, &[1, 3, 2]).await;
}
