//! Kill -9 the service again and again while clients create customers: every acknowledged create
//! survives exactly once, and the read model equals a fresh projection rebuilt from the log.

use crate::common;
use crate::common::load::{create_all, LoadOutcome, Target};
use crate::common::{
    create_all as create_each, find_eventually, get_caught_up, kafka_bootstrap, unique_topic,
    Registry, PATIENCE,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

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

    let customers = get_caught_up(&registry, "/api/v01/customers?accountId=71&limit=1000").await;
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

/// How one create attempt of the SIGTERM test's clients ended.
#[derive(Debug)]
enum Ending {
    /// 201: the customer, acknowledged.
    Acknowledged(Value),
    /// 503 with a problem document: refused, to be retried with the same key.
    Refused(Value),
    /// No connection could be made (the listener is closed): nothing was sent.
    NotConnected(String),
    /// The request went out and the connection failed before a whole answer came back.
    Dropped(String),
    /// An answer that is neither 201 nor a 503 problem.
    Unexpected(u16, String),
}

/// One create attempt: its idempotency key, when it was sent and when it ended, and how.
#[derive(Debug)]
struct Attempt {
    key: String,
    started: Instant,
    ended: Instant,
    ending: Ending,
}

impl Attempt {
    /// Whether the request reached a connection, so it must be answered: everything but a
    /// failed connect.
    fn was_sent(&self) -> bool {
        !matches!(self.ending, Ending::NotConnected(_))
    }

    /// Whether it ended outside the contract of a graceful shutdown: answered with something
    /// else than 201 or a 503 problem, or dropped although it was sent before the signal.
    ///
    /// A request sent after the signal may meet the listener as it closes: the kernel completes
    /// handshakes into the accept queue until the socket is closed, and closing it resets the
    /// connections still queued, which the server never saw. No server can close that window
    /// (it can only narrow it: shutdown drains the queue until it stays empty for a moment), so
    /// such a request is the client's to retry with its key, like a refused connect; the test
    /// still holds that it is applied at most once and that nothing acknowledged is lost.
    fn failed(&self, signal_before: Instant) -> bool {
        match self.ending {
            Ending::Unexpected(..) => true,
            Ending::Dropped(_) => self.started < signal_before,
            _ => false,
        }
    }

    /// The attempt in a line, for assertion messages.
    fn describe(&self, signal_before: Instant) -> String {
        let at = |moment: Instant| match moment.checked_duration_since(signal_before) {
            Some(after) => format!("{after:?} after SIGTERM"),
            None => format!("{:?} before SIGTERM", signal_before - moment),
        };
        let ending = match &self.ending {
            Ending::Acknowledged(customer) => format!("201 {customer}"),
            Ending::Refused(problem) => format!("503 {problem}"),
            Ending::NotConnected(error) => format!("not connected: {error}"),
            Ending::Dropped(error) => format!("dropped: {error}"),
            Ending::Unexpected(status, answer) => format!("answered {status}: {answer}"),
        };
        format!(
            "{} sent {}, ended {}: {ending}",
            self.key,
            at(self.started),
            at(self.ended)
        )
    }
}

/// What the SIGTERM test's clients are doing right now.
struct Progress {
    /// Attempts sent and not yet ended.
    in_flight: AtomicUsize,
    /// Creates acknowledged so far.
    acknowledged: watch::Sender<usize>,
}

/// An error and its causes, on one line (reqwest's own message names only the URL).
fn error_chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// One PUT of `body` with `key` to `base_url`, on a connection of its own (so that a refused
/// connect is told apart from a request dropped on a kept-alive connection), classified.
async fn create_once(http: &reqwest::Client, base_url: &str, key: &str, body: &Value) -> Ending {
    let sent = http
        .put(format!("{base_url}/api/v01/customers"))
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(error) if error.is_connect() => return Ending::NotConnected(error_chain(&error)),
        Err(error) => return Ending::Dropped(error_chain(&error)),
    };
    let status = response.status().as_u16();
    let answer = match response.bytes().await {
        Ok(answer) => answer,
        Err(error) => return Ending::Dropped(format!("{status}, then {}", error_chain(&error))),
    };
    match (status, serde_json::from_slice::<Value>(&answer)) {
        (201, Ok(customer)) => Ending::Acknowledged(customer),
        (503, Ok(problem))
            if problem["type"]
                .as_str()
                .is_some_and(|kind| kind.starts_with("/problems/")) =>
        {
            Ending::Refused(problem)
        }
        _ => Ending::Unexpected(status, String::from_utf8_lossy(&answer).into_owned()),
    }
}

/// Runs `clients` concurrent clients, each creating `per_client` customers in `account` without
/// pause, each create retried with its own idempotency key until the registry `target` points
/// at answers 201 (or `patience` runs out, which fails the test); counts what is in flight and
/// what is acknowledged in `progress`, and returns every attempt.
async fn create_through_a_restart(
    target: watch::Receiver<String>,
    account: u32,
    (clients, per_client): (usize, usize),
    progress: Arc<Progress>,
    patience: Duration,
) -> Vec<Attempt> {
    let deadline = Instant::now() + patience;
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let target = target.clone();
            let progress = Arc::clone(&progress);
            tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(40))
                    .pool_max_idle_per_host(0)
                    .build()
                    .unwrap();
                let mut attempts = Vec::new();
                for n in 0..per_client {
                    let key = format!("client{client}-create{n}");
                    let body = json!({"accountId": account, "firstName": format!("C{client}"),
                                      "lastName": format!("N{n}")});
                    loop {
                        assert!(Instant::now() < deadline, "{key} was never acknowledged");
                        let base_url = target.borrow().clone();
                        progress.in_flight.fetch_add(1, Ordering::SeqCst);
                        let started = Instant::now();
                        let ending = create_once(&http, &base_url, &key, &body).await;
                        let ended = Instant::now();
                        progress.in_flight.fetch_sub(1, Ordering::SeqCst);
                        let acknowledged = matches!(ending, Ending::Acknowledged(_));
                        attempts.push(Attempt {
                            key: key.clone(),
                            started,
                            ended,
                            ending,
                        });
                        if acknowledged {
                            progress.acknowledged.send_modify(|count| *count += 1);
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                attempts
            })
        })
        .collect();
    let mut attempts = Vec::new();
    for task in tasks {
        attempts.extend(task.await.expect("a client task"));
    }
    attempts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_exits_0_and_keeps_every_acknowledged_create() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("sigterm");
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let registry = Registry::start(&bootstrap, &topic, &data_dir);
    let (target, aimed) = watch::channel(registry.base_url.clone());
    let progress = Arc::new(Progress {
        in_flight: AtomicUsize::new(0),
        acknowledged: watch::channel(0).0,
    });
    let (clients, per_client) = (4, 20);

    let mut acknowledged = progress.acknowledged.subscribe();
    let load = tokio::spawn(create_through_a_restart(
        aimed,
        72,
        (clients, per_client),
        Arc::clone(&progress),
        Duration::from_secs(120),
    ));
    // Signal only once the load is demonstrably under way: some creates acknowledged, some sent
    // and not yet answered.
    let under_way = acknowledged
        .wait_for(|count| *count >= clients && progress.in_flight.load(Ordering::SeqCst) > 0);
    tokio::time::timeout(PATIENCE, under_way)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the load never had creates acknowledged and others in flight ({} acknowledged)",
                *progress.acknowledged.borrow()
            )
        })
        .expect("the progress channel stays open");
    let (exited_0, signal_before, signal_after) =
        tokio::task::spawn_blocking(move || registry.stop_timed())
            .await
            .unwrap();
    assert!(exited_0, "SIGTERM under load ends with exit code 0");
    let registry = Registry::start(&bootstrap, &topic, &data_dir);
    target.send_replace(registry.base_url.clone());
    let attempts = load.await.unwrap();

    // In flight at the signal: sent before it, ended after it.
    let across_the_signal: Vec<&Attempt> = attempts
        .iter()
        .filter(|attempt| {
            attempt.was_sent() && attempt.started < signal_before && attempt.ended > signal_after
        })
        .collect();
    assert!(
        !across_the_signal.is_empty(),
        "at least one create was in flight when SIGTERM was sent"
    );
    let failed: Vec<String> = attempts
        .iter()
        .filter(|attempt| attempt.failed(signal_before))
        .map(|attempt| attempt.describe(signal_before))
        .collect();
    assert!(
        failed.is_empty(),
        "every create is answered 201 or with a 503 problem, and none sent before the signal is \
         dropped:\n{}",
        failed.join("\n")
    );
    let outcome = LoadOutcome {
        acknowledged: attempts
            .iter()
            .filter_map(|attempt| match &attempt.ending {
                Ending::Acknowledged(customer) => Some((attempt.key.clone(), customer.clone())),
                _ => None,
            })
            .collect(),
        ..LoadOutcome::default()
    };
    assert_eq!(
        outcome.acknowledged.len(),
        clients * per_client,
        "every create is acknowledged in the end"
    );

    let customers = get_caught_up(&registry, "/api/v01/customers?accountId=72&limit=1000").await;
    assert_exactly_once(&outcome, customers.as_array().unwrap());
    let mut endings: BTreeMap<String, usize> = BTreeMap::new();
    for attempt in &attempts {
        let ending = match &attempt.ending {
            Ending::Acknowledged(_) => "201".to_owned(),
            Ending::Refused(problem) => format!("503 {}", problem["type"]),
            Ending::NotConnected(_) => "not connected".to_owned(),
            Ending::Dropped(_) => "dropped".to_owned(),
            Ending::Unexpected(status, _) => format!("unexpected {status}"),
        };
        *endings.entry(ending).or_default() += 1;
    }
    eprintln!(
        "SIGTERM: {} creates in flight at the signal ({} of them acknowledged); attempts by \
         ending {endings:?}",
        across_the_signal.len(),
        across_the_signal
            .iter()
            .filter(|attempt| matches!(attempt.ending, Ending::Acknowledged(_)))
            .count(),
    );
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
    let held = get_caught_up(&registry, "/api/v01/customers?accountId=73&limit=1000").await;
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
    let found = get_caught_up(
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

/// Keyed updates by careful clients (each retried with its key until 200) while the service is
/// killed with SIGKILL twice: every acknowledged update is applied exactly once, at the version
/// it was answered with, and the versions of each customer follow one another without a gap.
// Several worker threads: the clients go on while the test blocks starting and killing the
// service, so a kill finds requests in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_updates_loses_no_acknowledged_change_and_applies_none_twice() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("kill-9-updates");
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut registry = Registry::start(&bootstrap, &topic, &data_dir);
    let mut ids = Vec::new();
    for n in 0..4 {
        let (status, customer) = common::create(
            &registry,
            &json!({"accountId": 78, "lastName": format!("K{n}")}),
        )
        .await;
        assert_eq!(status, 201, "{customer}");
        ids.push(customer["id"].as_str().unwrap().to_owned());
    }
    let target = Target::new(&registry.base_url);
    let started = Instant::now();
    // Each client sends keyed updates, one after another, until told to stop after the kills;
    // a key whose answer was lost is retried until acknowledged.
    let clients = 4usize;
    let stop = Arc::new(AtomicBool::new(false));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let load: Vec<_> = (0..clients)
        .map(|client| {
            let (target, ids, stop) = (target.clone(), ids.clone(), stop.clone());
            let in_flight = in_flight.clone();
            tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(40))
                    .build()
                    .unwrap();
                let mut acknowledged = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(240);
                for n in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(150)).await;
                    let id = &ids[(client + n) % ids.len()];
                    let key = format!("c{client}-{n}");
                    loop {
                        assert!(Instant::now() < deadline, "{key} never acknowledged");
                        in_flight.fetch_add(1, Ordering::SeqCst);
                        let sent = async {
                            let response = http
                                .post(format!("{}/api/v01/customers/{id}", target.get()))
                                .header("idempotency-key", &key)
                                .json(&json!({"street": key}))
                                .send()
                                .await?;
                            let status = response.status().as_u16();
                            Ok::<_, reqwest::Error>((status, response.text().await?))
                        }
                        .await;
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                        let Ok((status, text)) = sent else {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        };
                        match status {
                            200 => {
                                let body: Value = serde_json::from_str(&text).unwrap();
                                assert_eq!(body["street"], key.as_str(), "{body}");
                                acknowledged.push((
                                    key,
                                    id.clone(),
                                    body["version"].as_u64().unwrap(),
                                ));
                                break;
                            }
                            503 => tokio::time::sleep(Duration::from_millis(100)).await,
                            other => panic!("{key}: {other} {text}"),
                        }
                    }
                }
                acknowledged
            })
        })
        .collect();
    for kill in 1..=2 {
        tokio::time::sleep(Duration::from_millis(800)).await;
        let waiting = Instant::now();
        while in_flight.load(Ordering::SeqCst) == 0 {
            assert!(
                waiting.elapsed() < Duration::from_secs(10),
                "kill {kill}: no update in flight to interrupt"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        registry.kill();
        registry = Registry::start(&bootstrap, &topic, &data_dir);
        target.set(&registry.base_url);
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for client in load {
        acknowledged.extend(client.await.unwrap());
    }
    assert!(
        acknowledged.len() >= clients * 3,
        "updates went on through both kills: {acknowledged:?}"
    );

    let mut applied_keys: BTreeMap<String, u64> = BTreeMap::new();
    for id in &ids {
        let history = get_caught_up(&registry, &format!("/api/v01/customers/{id}/events")).await;
        // One entry per applied event (duplicates of an event share its id and version).
        let mut applied: BTreeMap<String, (u64, String)> = BTreeMap::new();
        for record in history.as_array().unwrap() {
            let event = &record["event"];
            if event["eventType"] != "CustomerUpdated" {
                continue;
            }
            let key = record["headers"]["idempotency-key"]
                .as_str()
                .unwrap()
                .to_owned();
            let version = event["data"]["version"].as_u64().unwrap();
            let seen = applied.insert(
                event["eventId"].as_str().unwrap().to_owned(),
                (version, key),
            );
            assert!(seen.is_none_or(|(again, _)| again == version), "{history}");
        }
        let mut versions: Vec<u64> = applied.values().map(|(version, _)| *version).collect();
        versions.sort_unstable();
        let expected: Vec<u64> = (2..2 + versions.len() as u64).collect();
        assert_eq!(
            versions, expected,
            "one applied event per version, no gap: {history}"
        );
        for (version, key) in applied.values() {
            let twice = applied_keys.insert(key.clone(), *version);
            assert!(twice.is_none(), "{key} applied twice");
        }
        let customer = get_caught_up(&registry, &format!("/api/v01/customers/{id}")).await;
        assert_eq!(customer["version"], 1 + versions.len() as u64);
    }
    for (key, _, version) in &acknowledged {
        assert_eq!(
            applied_keys.get(key),
            Some(version),
            "acknowledged {key} is in the log, at the version it was answered with"
        );
    }
    assert_eq!(
        applied_keys.len(),
        acknowledged.len(),
        "nothing applied that was not asked"
    );
    eprintln!(
        "kill -9 x2 during updates: {} updates acknowledged, each applied once, in {:?}",
        acknowledged.len(),
        started.elapsed()
    );
}
