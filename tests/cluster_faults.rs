//! The registry on the three-node cluster while nodes fail: with two of three up, writes keep
//! succeeding; with one up, writes answer 503 saying why and reads keep serving; a node coming
//! back needs no restart of the registry; and keyed creates and updates under load, while a node
//! is killed and restarted (once, and three times in a row), are each applied exactly once, the
//! same on two replicas, with nothing acknowledged lost.
//!
//! The tests of this binary take turns ([`one_at_a_time`]): each stops nodes of the one shared
//! cluster, and starts them again before it ends, failed or not.

mod common;

use common::cluster::{
    cluster_bootstrap, start_broker, start_missing_nodes, stop_broker, wait_until_in_sync,
};
use common::{unique_topic, Registry, PATIENCE};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

static CLUSTER: Mutex<()> = Mutex::new(());

/// The cluster for this test alone; every node runs again when the test ends, however it ends.
struct ClusterTurn {
    _turn: MutexGuard<'static, ()>,
}

fn one_at_a_time() -> ClusterTurn {
    let turn = CLUSTER.lock().unwrap_or_else(PoisonError::into_inner);
    start_missing_nodes();
    ClusterTurn { _turn: turn }
}

impl Drop for ClusterTurn {
    fn drop(&mut self) {
        start_missing_nodes();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(45))
        .build()
        .unwrap()
}

/// One answer: status, `Retry-After`, `X-Log-Position`, body.
struct Answer {
    status: u16,
    retry_after: Option<String>,
    position: String,
    body: Value,
}

async fn answer(request: reqwest::RequestBuilder) -> Option<Answer> {
    let response = request.send().await.ok()?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let (retry_after, position) = (header("retry-after"), header("x-log-position"));
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    Some(Answer {
        status,
        retry_after,
        position: position.unwrap_or_default(),
        body,
    })
}

/// Sends a keyed write until it is answered with something else than 503 or a dropped
/// connection, as a careful client does; answers that and how many tries it took.
async fn until_answered(request: impl Fn() -> reqwest::RequestBuilder) -> (Answer, usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut tries = 0;
    loop {
        tries += 1;
        match answer(request()).await {
            Some(answered) if answered.status != 503 => return (answered, tries),
            _ => {
                assert!(
                    Instant::now() < deadline,
                    "a write was refused for 2 minutes"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_need_two_of_three_nodes_and_reads_never_stop() {
    let _turn = one_at_a_time();
    let bootstrap = cluster_bootstrap();
    let topic = unique_topic("two-of-three");
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(&bootstrap, &topic, &dir.path().join("data"));
    let http = client();
    let create = |key: &str| {
        http.put(registry.url("/api/v01/customers"))
            .header("idempotency-key", key)
            .json(&json!({"accountId": 91, "lastName": format!("Node{key}")}))
    };

    // Two of three: creates, updates and deletes go through.
    stop_broker(3, false);
    let (created, _) = until_answered(|| create("while-two-run")).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let path = format!(
        "/api/v01/customers/{}",
        created.body["id"].as_str().unwrap()
    );
    let (updated, _) = until_answered(|| {
        http.post(registry.url(&path))
            .header("idempotency-key", "update-while-two-run")
            .json(&json!({"city": "Oslo"}))
    })
    .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    let (doomed, _) = until_answered(|| create("deleted-while-two-run")).await;
    let doomed_path = format!("/api/v01/customers/{}", doomed.body["id"].as_str().unwrap());
    let (deleted, _) = until_answered(|| http.delete(registry.url(&doomed_path))).await;
    assert_eq!(deleted.status, 204);

    // One of three: writes are refused at once, saying why; reads answer.
    stop_broker(2, false);
    let deadline = Instant::now() + PATIENCE;
    let refused = loop {
        let attempt = answer(create("while-one-runs")).await.unwrap();
        if attempt.status == 503 && attempt.body["type"] == "/problems/not-enough-replicas" {
            break attempt;
        }
        assert!(
            Instant::now() < deadline,
            "no not-enough-replicas answer: {} {}",
            attempt.status,
            attempt.body
        );
    };
    assert!(refused.retry_after.is_some());
    let detail = refused.body["detail"].as_str().unwrap();
    assert!(detail.contains("not enough in-sync replicas"), "{detail}");
    assert!(detail.contains("min.insync.replicas"), "{detail}");
    let started = Instant::now();
    let again = answer(create("while-one-runs")).await.unwrap();
    assert_eq!(again.status, 503);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refused at once, not after the delivery timeout"
    );
    let read = answer(http.get(registry.url(&path))).await.unwrap();
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.body["city"], "Oslo");
    let found = answer(http.get(registry.url("/api/v01/customers?accountId=91")))
        .await
        .unwrap();
    assert_eq!(found.status, 200);
    assert_eq!(
        found.body.as_array().unwrap().len(),
        1,
        "the deleted one left"
    );

    // A node back: writes go through again, with no restart of the registry, and the write
    // refused meanwhile is made once by its retry.
    start_broker(2);
    let (retried, _) = until_answered(|| create("while-one-runs")).await;
    assert_eq!(retried.status, 201, "{}", retried.body);
    start_broker(3);
    wait_until_in_sync(&bootstrap, &topic);
    let found = answer(
        http.get(registry.url("/api/v01/customers?accountId=91"))
            .header("x-min-log-position", &retried.position),
    )
    .await
    .unwrap();
    assert_eq!(found.body.as_array().unwrap().len(), 2, "{}", found.body);
}

/// What the load's clients were told.
#[derive(Default)]
struct Acknowledged {
    /// Idempotency key of each create → the customer id it was answered with.
    creates: BTreeMap<String, String>,
    /// Customer id → the updates acknowledged for it, in order (each a city).
    updates: BTreeMap<String, Vec<String>>,
    /// Writes that had to be retried.
    retries: usize,
    /// The longest a write took to be acknowledged, retries included.
    slowest: Duration,
}

/// How much load [`load`] puts on.
#[derive(Clone, Copy)]
struct Shape {
    clients: usize,
    per_client: usize,
    updates: usize,
    /// A client's pause after each acknowledged write, so that the load lasts through the faults.
    pace: Duration,
}

/// `shape.clients` clients over two replicas, each creating `shape.per_client` customers with
/// keys of its own and updating each of them `shape.updates` times (a key per update), every
/// write retried with its key until answered: creates alternate between the replicas, each
/// update goes to the other replica than the write before it (with `X-Min-Log-Position`).
/// `progress` counts acknowledged writes as they come.
async fn load(
    replicas: [String; 2],
    account: u32,
    shape: Shape,
    progress: Arc<AtomicUsize>,
) -> Acknowledged {
    let Shape {
        clients,
        per_client,
        updates,
        pace,
    } = shape;
    let acknowledged = Arc::new(Mutex::new(Acknowledged::default()));
    let tasks: Vec<_> = (0..clients)
        .map(|client_no| {
            let replicas = replicas.clone();
            let acknowledged = Arc::clone(&acknowledged);
            let progress = Arc::clone(&progress);
            tokio::spawn(async move {
                let http = client();
                for n in 0..per_client {
                    let key = format!("load-{account}-{client_no}-{n}");
                    let mut at = (client_no + n) % 2;
                    let body =
                        json!({"accountId": account, "lastName": format!("L{client_no}x{n}")});
                    let mut slowest = Duration::ZERO;
                    let sent = Instant::now();
                    let (created, tries) = until_answered(|| {
                        http.put(format!("{}/api/v01/customers", replicas[at]))
                            .header("idempotency-key", &key)
                            .json(&body)
                    })
                    .await;
                    assert_eq!(created.status, 201, "{key}: {}", created.body);
                    slowest = slowest.max(sent.elapsed());
                    progress.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(pace).await;
                    let id = created.body["id"].as_str().unwrap().to_owned();
                    let mut position = created.position;
                    let mut cities = Vec::new();
                    let mut retries = tries - 1;
                    for u in 0..updates {
                        at = 1 - at;
                        let city = format!("C{client_no}x{n}x{u}");
                        let update_key = format!("{key}-update-{u}");
                        let sent = Instant::now();
                        let (updated, tries) = until_answered(|| {
                            http.post(format!("{}/api/v01/customers/{id}", replicas[at]))
                                .header("idempotency-key", &update_key)
                                .header("x-min-log-position", &position)
                                .json(&json!({"city": city}))
                        })
                        .await;
                        assert_eq!(updated.status, 200, "{update_key}: {}", updated.body);
                        slowest = slowest.max(sent.elapsed());
                        progress.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(pace).await;
                        position = updated.position;
                        cities.push(city);
                        retries += tries - 1;
                    }
                    let mut acknowledged = acknowledged.lock().unwrap();
                    acknowledged.creates.insert(key, id.clone());
                    acknowledged.updates.insert(id, cities);
                    acknowledged.retries += retries;
                    acknowledged.slowest = acknowledged.slowest.max(slowest);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    Arc::try_unwrap(acknowledged)
        .ok()
        .unwrap()
        .into_inner()
        .unwrap()
}

/// Both replicas hold every acknowledged create once, at the version its acknowledged updates
/// gave it, with the last of them applied, and nothing else.
async fn assert_exactly_once(replicas: &[&Registry; 2], account: u32, acknowledged: &Acknowledged) {
    let path = format!("/api/v01/customers?accountId={account}&limit=1000");
    let expected = acknowledged.creates.len();
    let on_first = common::find_eventually(replicas[0], &path, expected).await;
    let on_second = common::find_eventually(replicas[1], &path, expected).await;
    assert_eq!(
        on_first, on_second,
        "both replicas answer the same customers"
    );
    let by_id: BTreeMap<&str, &Value> = on_first
        .iter()
        .map(|customer| (customer["id"].as_str().unwrap(), customer))
        .collect();
    assert_eq!(by_id.len(), expected, "one customer a key");
    for (key, id) in &acknowledged.creates {
        let customer = by_id
            .get(id.as_str())
            .unwrap_or_else(|| panic!("{key} lost"));
        let cities = &acknowledged.updates[id];
        assert_eq!(customer["version"], 1 + cities.len(), "{customer}");
        if let Some(last) = cities.last() {
            assert_eq!(&customer["city"], last, "{customer}");
        }
    }
}

async fn survives_nodes_killed_under_load(topic_label: &str, account: u32, kills: &[u8]) {
    let _turn = one_at_a_time();
    let bootstrap = cluster_bootstrap();
    let topic = unique_topic(topic_label);
    let dir = tempfile::tempdir().unwrap();
    let first = Registry::start(&bootstrap, &topic, &dir.path().join("a"));
    let second = Registry::start(&bootstrap, &topic, &dir.path().join("b"));
    let replicas = [first.base_url.clone(), second.base_url.clone()];
    // 200 keyed creates from 20 clients, each followed by a stream of 3 keyed updates, paced to
    // last about 12 s a kill (a kill, 2 s down, a restart and the catch-up take 10-15 s here).
    let shape = Shape {
        clients: 20,
        per_client: 10,
        updates: 3,
        pace: Duration::from_millis(300) * u32::try_from(kills.len()).unwrap(),
    };
    let writes = shape.clients * shape.per_client * (1 + shape.updates);
    let progress = Arc::new(AtomicUsize::new(0));
    let running = tokio::spawn(load(replicas, account, shape, Arc::clone(&progress)));
    tokio::time::sleep(Duration::from_secs(2)).await;
    for &node in kills {
        let before = progress.load(Ordering::Relaxed);
        stop_broker(node, true);
        tokio::time::sleep(Duration::from_secs(2)).await;
        start_broker(node);
        wait_until_in_sync(&bootstrap, &topic);
        let after = progress.load(Ordering::Relaxed);
        assert!(
            before > 0 && after < writes,
            "node {node} was killed under load ({before} then {after} of {writes} writes \
             acknowledged)"
        );
    }
    let acknowledged = running.await.unwrap();
    assert_eq!(acknowledged.creates.len(), 200);
    assert_exactly_once(&[&first, &second], account, &acknowledged).await;
    eprintln!(
        "{} creates and {} updates acknowledged, {} writes retried, the slowest in {:?}, \
         through {} kill(s)",
        acknowledged.creates.len(),
        acknowledged.updates.values().map(Vec::len).sum::<usize>(),
        acknowledged.retries,
        acknowledged.slowest,
        kills.len()
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
