//! The fault campaign, in the spirit of FoundationDB's simulation and TigerBeetle's VOPR: a
//! seeded driver runs a mixed workload (creates plain, keyed and coded; updates with and without
//! `If-Match`, keyed and not; deletes; finds) against two registry replicas on the three-node
//! cluster while it injects one fault per round: a replica killed, failed and slow flushes, a
//! broker stopped or killed, a replica killed again mid-catch-up, failures at the storage and log
//! boundaries (sled reads, produce, a produce whose answer is lost, consume, offset reads). After
//! each recovery an oracle checks, with the workload paused: every acknowledged write is present
//! exactly once at the acknowledged version, on both replicas, which agree customer by customer;
//! after a replica was killed, `audit` on its data dir agrees with a replay of the log.
//!
//! `FAULT_SEED` picks the run (printed first; the same seed gives the same faults in the same
//! order and the same requests, though not the same timing); `FAULT_DURATION_SECS` how long it
//! runs (by default until each kind of fault was injected once, as CI runs it).
//! `scripts/faults.sh SEED DURATION` runs a long one on a cluster of its own.

use crate::common::cluster::{self, wait_until_in_sync, NODES};
use crate::common::{generator, launch, tool, unique_topic, Registry, PATIENCE};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// The kinds of fault, each injected once per cycle, cycles in a seeded order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    /// kill -9 of one replica; `audit` on its data dir; restarted.
    RegistryKilled,
    /// A replica restarted with flushes that fail (before the first block, or before the
    /// commit): its first flush fails, its projector stops and the process exits; restarted.
    FlushFailed,
    /// A replica restarted with flushes that take 1.5 s each, then stopped with SIGTERM.
    FlushSlow,
    /// A broker stopped with SIGTERM, then started again.
    BrokerStopped,
    /// A broker killed with SIGKILL, then started again.
    BrokerKilled,
    /// A replica killed, started again while writes go on elsewhere, killed again part-way
    /// through its catch-up, then started.
    CatchUpKilled,
    /// A replica restarted with failures at its boundaries: sled reads, produce (refused, and
    /// written with the answer lost), consume, offset reads; restarted whenever one ends it.
    BoundaryFailures,
}

const FAULTS: [Fault; 7] = [
    Fault::RegistryKilled,
    Fault::FlushFailed,
    Fault::FlushSlow,
    Fault::BrokerStopped,
    Fault::BrokerKilled,
    Fault::CatchUpKilled,
    Fault::BoundaryFailures,
];

/// The boundary failures of [`Fault::BoundaryFailures`], as `FAILPOINTS` sets them.
const BOUNDARY_FAILPOINTS: &str = "store-read=1%return;log-produce=3%return;\
    log-produce-answer=3%return;log-offset-read=3%return;log-consume=0.2%return";

/// How many clients run the workload, each on an account of its own.
const CLIENTS: usize = 4;

/// What the workload's clients share with the driver.
struct Shared {
    /// Each replica's base URL while it runs.
    urls: RwLock<[Option<String>; 2]>,
    /// Replicas whose sled reads fail on purpose now: a 500 `read-model-failure` is their due.
    reads_fail: [AtomicBool; 2],
    /// Held by each request in flight; the oracle takes it whole, so it sees a quiet registry.
    gate: tokio::sync::RwLock<()>,
    stop: AtomicBool,
    /// What broke a promise, with the request that showed it.
    violations: Mutex<Vec<String>>,
    /// Per partition, the furthest position of an acknowledged write.
    position: Mutex<BTreeMap<i32, i64>>,
    /// Acknowledged requests, by kind.
    acknowledged: Mutex<BTreeMap<&'static str, u64>>,
    /// Answers that the faults explain (503s, and 500s where sled reads fail on purpose), by
    /// status and problem type.
    failures: Mutex<BTreeMap<String, u64>>,
}

impl Shared {
    fn violation(&self, what: String) {
        eprintln!("VIOLATION: {what}");
        lock(&self.violations).push(what);
    }

    fn acknowledge(&self, kind: &'static str, position: Option<&str>) {
        *lock(&self.acknowledged).entry(kind).or_default() += 1;
        let mut furthest = lock(&self.position);
        for item in position.unwrap_or_default().split(',') {
            if let Some((partition, offset)) = item.split_once(':') {
                if let (Ok(partition), Ok(offset)) = (partition.parse(), offset.parse()) {
                    let known = furthest.entry(partition).or_insert(offset);
                    *known = (*known).max(offset);
                }
            }
        }
    }

    fn min_position(&self) -> String {
        let furthest = lock(&self.position);
        let items: Vec<String> = furthest
            .iter()
            .map(|(partition, offset)| format!("{partition}:{offset}"))
            .collect();
        items.join(",")
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A customer as its client knows it from acknowledged answers.
#[derive(Debug, Clone)]
struct Known {
    id: String,
    version: u64,
    last_name: String,
    deleted: bool,
    /// A change was sent whose outcome is unknown (no answer, or a 5xx): it may have applied.
    /// The client leaves the customer alone from then on.
    uncertain: Option<String>,
}

/// One answer: status, body, `X-Log-Position`, and which replica gave it.
struct Answer {
    status: u16,
    body: Value,
    position: Option<String>,
    replica: usize,
}

/// A client of the workload: its account, its own generator, the customers it created.
struct Client {
    number: usize,
    account: u32,
    next: Box<dyn FnMut(u64) -> u64 + Send + Sync>,
    customers: Arc<Mutex<Vec<Known>>>,
    made: usize,
    http: reqwest::Client,
    shared: Arc<Shared>,
}

impl Client {
    /// Sends a request once, to replica `choice % 2` or the other when that one is down.
    async fn send_once(
        &self,
        choice: u64,
        build: &(dyn Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder + Sync),
    ) -> Option<Answer> {
        let urls = self
            .shared
            .urls
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let first = usize::from(choice % 2 == 1);
        let replica = [first, 1 - first]
            .into_iter()
            .find(|replica| urls[*replica].is_some())?;
        let base = urls[replica].as_deref()?;
        let response = build(&self.http, base).send().await.ok()?;
        let status = response.status().as_u16();
        let position = response
            .headers()
            .get("x-log-position")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let body = response.json().await.unwrap_or(Value::Null);
        if status >= 500 {
            if self.expected_failure(status, &body, replica) {
                let kind = format!("{status} {}", body["type"].as_str().unwrap_or("(no type)"));
                *lock(&self.shared.failures).entry(kind).or_default() += 1;
            } else {
                self.shared
                    .violation(format!("replica {replica} answered {status}: {body}"));
            }
        }
        Some(Answer {
            status,
            body,
            position,
            replica,
        })
    }

    /// Whether a 5xx answer is one the faults explain: a 503 (the registry says the outcome is
    /// unknown or nothing was written), or a 500 `read-model-failure` from a replica whose sled
    /// reads fail on purpose.
    fn expected_failure(&self, status: u16, body: &Value, replica: usize) -> bool {
        status == 503
            || (status == 500
                && body["type"] == "/problems/read-model-failure"
                && self.shared.reads_fail[replica].load(Ordering::SeqCst))
    }

    /// Sends a request that carries an `Idempotency-Key` until it is answered with something
    /// else than a 5xx, 408 or 429, as a careful client does (a violation after 2 minutes).
    async fn send_keyed(
        &mut self,
        what: &str,
        build: &(dyn Fn(&reqwest::Client, &str) -> reqwest::RequestBuilder + Sync),
    ) -> Option<Answer> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let choice = (self.next)(2);
            if let Some(answer) = self.send_once(choice, build).await {
                if answer.status < 500 && ![408, 429].contains(&answer.status) {
                    return Some(answer);
                }
            }
            if Instant::now() > deadline {
                self.shared
                    .violation(format!("{what}: never answered in 2 minutes of retries"));
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One request of the mix, chosen by the client's generator.
    async fn step(&mut self) {
        let roll = (self.next)(100);
        let live: Vec<Known> = lock(&self.customers)
            .iter()
            .filter(|known| !known.deleted && known.uncertain.is_none())
            .cloned()
            .collect();
        if roll < 40 || live.is_empty() {
            self.create(roll % 3).await;
            return;
        }
        let target = live[usize::try_from((self.next)(live.len() as u64)).unwrap()].clone();
        match roll {
            40..=59 => self.update(&target, true, roll % 2 == 0).await,
            60..=74 => self.update(&target, false, false).await,
            75..=79 => self.delete(&target).await,
            _ => self.find(&target).await,
        }
    }

    async fn create(&mut self, kind: u64) {
        self.made += 1;
        let last_name = format!("C{}x{}z", self.number, self.made);
        let mut body = json!({"accountId": self.account, "lastName": last_name});
        let key = format!("create-{}-{}", self.number, self.made);
        let build = |body: Value, key: Option<String>| {
            move |http: &reqwest::Client, base: &str| {
                let request = http.put(format!("{base}/api/v01/customers")).json(&body);
                match &key {
                    Some(key) => request.header("idempotency-key", key),
                    None => request,
                }
            }
        };
        let (label, answer) = match kind {
            0 => {
                let choice = (self.next)(2);
                (
                    "plain create",
                    self.send_once(choice, &build(body, None)).await,
                )
            }
            1 => {
                let what = format!("keyed create {key}");
                let answer = self.send_keyed(&what, &build(body, Some(key))).await;
                ("keyed create", answer)
            }
            _ => {
                body["code"] = json!(format!("K{}-{}", self.number, self.made));
                let choice = (self.next)(2);
                (
                    "coded create",
                    self.send_once(choice, &build(body, None)).await,
                )
            }
        };
        let Some(answer) = answer else { return };
        match answer.status {
            201 | 200 if answer.body["lastName"] == last_name.as_str() => {
                self.shared.acknowledge(label, answer.position.as_deref());
                lock(&self.customers).push(Known {
                    id: answer.body["id"].as_str().unwrap_or_default().to_owned(),
                    version: answer.body["version"].as_u64().unwrap_or_default(),
                    last_name,
                    deleted: false,
                    uncertain: None,
                });
            }
            status if status >= 500 => {}
            status => self.shared.violation(format!(
                "{label} of {last_name} on replica {}: {status} {}",
                answer.replica, answer.body
            )),
        }
    }

    /// An update of `target`'s last name; with `If-Match` or not, with an `Idempotency-Key`
    /// (retried until answered) or not (sent once).
    async fn update(&mut self, target: &Known, if_match: bool, keyed: bool) {
        self.made += 1;
        let last_name = format!("U{}x{}z", self.number, self.made);
        let body = json!({"lastName": last_name});
        let url_path = format!("/api/v01/customers/{}", target.id);
        let key = format!("update-{}-{}", self.number, self.made);
        let version = target.version;
        let build = |http: &reqwest::Client, base: &str| {
            let mut request = http.post(format!("{base}{url_path}")).json(&body);
            if if_match {
                request = request.header("if-match", format!("\"{version}\""));
            }
            if keyed {
                request = request.header("idempotency-key", &key);
            }
            request
        };
        let label = match (if_match, keyed) {
            (true, true) => "keyed If-Match update",
            (true, false) => "If-Match update",
            (false, _) => "unconditional update",
        };
        let answer = if keyed {
            self.send_keyed(&format!("{label} {key}"), &build).await
        } else {
            let choice = (self.next)(2);
            self.send_once(choice, &build).await
        };
        let known_now = |change: &mut Known| -> Option<()> {
            let mut customers = lock(&self.customers);
            let known = customers.iter_mut().find(|known| known.id == target.id)?;
            *known = change.clone();
            Some(())
        };
        let mut changed = target.clone();
        match answer {
            Some(answer) if answer.status == 200 => {
                let answered = answer.body["version"].as_u64().unwrap_or_default();
                if answered != version + 1 || answer.body["lastName"] != last_name.as_str() {
                    self.shared.violation(format!(
                        "{label} of {} at version {version} answered {}",
                        target.id, answer.body
                    ));
                }
                self.shared.acknowledge(label, answer.position.as_deref());
                changed.version = answered;
                changed.last_name = last_name;
            }
            Some(answer) if answer.status < 500 => {
                // The client alone changes its customers: nothing else explains a refusal.
                self.shared.violation(format!(
                    "{label} of {} at version {version} on replica {}: {} {}",
                    target.id, answer.replica, answer.status, answer.body
                ));
                return;
            }
            _ => changed.uncertain = Some(last_name),
        }
        known_now(&mut changed);
    }

    async fn delete(&mut self, target: &Known) {
        self.made += 1;
        let url_path = format!("/api/v01/customers/{}", target.id);
        let key = format!("delete-{}-{}", self.number, self.made);
        let build = |http: &reqwest::Client, base: &str| {
            http.delete(format!("{base}{url_path}"))
                .header("idempotency-key", &key)
        };
        let Some(answer) = self.send_keyed(&format!("delete {key}"), &build).await else {
            return;
        };
        if answer.status != 204 {
            self.shared.violation(format!(
                "delete of {} on replica {}: {} {}",
                target.id, answer.replica, answer.status, answer.body
            ));
            return;
        }
        self.shared
            .acknowledge("delete", answer.position.as_deref());
        if let Some(known) = lock(&self.customers)
            .iter_mut()
            .find(|known| known.id == target.id)
        {
            known.deleted = true;
        }
    }

    /// A find by `target`'s last name, at least as recent as every acknowledged write: it must
    /// hold `target` at its version.
    async fn find(&mut self, target: &Known) {
        let path = format!(
            "/api/v01/customers?accountId={}&lastName={}",
            self.account, target.last_name
        );
        let position = self.shared.min_position();
        let build = |http: &reqwest::Client, base: &str| {
            let request = http.get(format!("{base}{path}"));
            if position.is_empty() {
                request
            } else {
                request.header("x-min-log-position", &position)
            }
        };
        let choice = (self.next)(2);
        let Some(answer) = self.send_once(choice, &build).await else {
            return;
        };
        if answer.status >= 500 {
            return;
        }
        let found = answer.body.as_array().is_some_and(|customers| {
            customers.iter().any(|customer| {
                customer["id"] == target.id.as_str() && customer["version"] == target.version
            })
        });
        if answer.status == 200 && found {
            self.shared.acknowledge("find", None);
        } else {
            self.shared.violation(format!(
                "find {path} on replica {} misses {} at version {}: {} {}",
                answer.replica, target.id, target.version, answer.status, answer.body
            ));
        }
    }
}

/// The two replicas, each on a data dir of its own, and what the driver does to them.
struct Replicas {
    bootstrap: String,
    topic: String,
    dirs: [PathBuf; 2],
    running: [Option<Registry>; 2],
    shared: Arc<Shared>,
}

impl Replicas {
    /// Starts replica `replica` with `failpoints` (may be empty), trying again while injected
    /// failures end it during start-up; returns how many starts such failures ended.
    fn start(&mut self, replica: usize, failpoints: &str) -> u64 {
        let env: Vec<(&str, &str)> = if failpoints.is_empty() {
            Vec::new()
        } else {
            vec![("FAILPOINTS", failpoints)]
        };
        let mut ended = 0;
        loop {
            match Registry::try_start_with_env(
                &self.bootstrap,
                &self.topic,
                &self.dirs[replica],
                &[],
                &env,
            ) {
                Ok(registry) => {
                    self.set_url(replica, Some(registry.base_url.clone()));
                    self.running[replica] = Some(registry);
                    return ended;
                }
                Err(log) if !failpoints.is_empty() && ended < 20 => {
                    ended += 1;
                    let _ = log;
                }
                Err(log) => panic!("replica {replica} does not start: {log}"),
            }
        }
    }

    fn set_url(&self, replica: usize, url: Option<String>) {
        self.shared
            .urls
            .write()
            .unwrap_or_else(PoisonError::into_inner)[replica] = url;
    }

    /// kill -9.
    fn kill(&mut self, replica: usize) {
        self.set_url(replica, None);
        if let Some(registry) = self.running[replica].take() {
            registry.kill();
        }
    }

    /// SIGTERM; a violation unless it exits with 0.
    fn stop(&mut self, replica: usize) {
        self.set_url(replica, None);
        if let Some(registry) = self.running[replica].take() {
            let log = registry.log_path.clone();
            if !registry.stop() {
                self.shared.violation(format!(
                    "replica {replica} did not stop cleanly: see {}",
                    log.display()
                ));
            }
        }
    }

    /// Whether replica `replica` is down (a failure injected into it ended it).
    fn has_exited(&mut self, replica: usize) -> bool {
        self.running[replica]
            .as_mut()
            .is_none_or(Registry::has_exited)
    }

    /// `audit` of the stopped replica's data dir against a replay of the log.
    fn audit(&self, replica: usize) {
        let output = tool(
            &["audit", "--json"],
            &self.bootstrap,
            &self.topic,
            &self.dirs[replica],
        );
        if !output.status.success() {
            let report = String::from_utf8_lossy(&output.stdout);
            let shown: String = report.chars().take(1_500).collect();
            self.shared.violation(format!(
                "audit of replica {replica} ({}): {shown}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
    }
}

/// The campaign's settings: `FAULT_SEED` (else one from the clock) and `FAULT_DURATION_SECS`.
fn settings() -> (u64, Duration) {
    let seed = std::env::var("FAULT_SEED").map_or_else(
        |_| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos();
            u64::from(nanos) | 1
        },
        |seed| {
            seed.parse()
                .unwrap_or_else(|_| panic!("FAULT_SEED={seed} is not a number"))
        },
    );
    let seconds = std::env::var("FAULT_DURATION_SECS").map_or(0, |seconds| {
        seconds
            .parse()
            .unwrap_or_else(|_| panic!("FAULT_DURATION_SECS={seconds} is not a number"))
    });
    (seed.max(1), Duration::from_secs(seconds))
}

#[test]
fn acknowledged_writes_survive_a_seeded_campaign_of_faults() {
    let (seed, duration) = settings();
    println!(
        "fault campaign: seed {seed}, {}s; to run it again: FAULT_SEED={seed} \
         FAULT_DURATION_SECS={} scripts/faults.sh (or scripts/faults.sh {seed} {})",
        duration.as_secs(),
        duration.as_secs(),
        duration.as_secs()
    );
    // The campaign stops and kills brokers: it has the cluster to itself.
    let cluster = cluster::exclusive();
    let bootstrap = cluster.bootstrap().to_owned();
    let topic = unique_topic("faults");
    let dir = tempfile::tempdir().unwrap();
    let shared = Arc::new(Shared {
        urls: RwLock::new([None, None]),
        reads_fail: [AtomicBool::new(false), AtomicBool::new(false)],
        gate: tokio::sync::RwLock::new(()),
        stop: AtomicBool::new(false),
        violations: Mutex::new(Vec::new()),
        position: Mutex::new(BTreeMap::new()),
        acknowledged: Mutex::new(BTreeMap::new()),
        failures: Mutex::new(BTreeMap::new()),
    });
    let mut replicas = Replicas {
        bootstrap: bootstrap.clone(),
        topic: topic.clone(),
        dirs: [dir.path().join("replica-0"), dir.path().join("replica-1")],
        running: [None, None],
        shared: Arc::clone(&shared),
    };
    replicas.start(0, "");
    replicas.start(1, "");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut next = generator(seed);
    let mut books = Vec::new();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|number| {
            let customers = Arc::new(Mutex::new(Vec::new()));
            books.push(Arc::clone(&customers));
            let mut client = Client {
                number,
                account: 700 + u32::try_from(number).unwrap(),
                next: Box::new(generator(
                    seed ^ 0x9E37_79B9_7F4A_7C15_u64.wrapping_mul(number as u64 + 1),
                )),
                customers,
                made: 0,
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .unwrap(),
                shared: Arc::clone(&shared),
            };
            runtime.spawn(async move {
                while !client.shared.stop.load(Ordering::SeqCst) {
                    let gate = Arc::clone(&client.shared);
                    let _turn = gate.gate.read().await;
                    client.step().await;
                    drop(_turn);
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();

    let mut survived: BTreeMap<String, u64> = BTreeMap::new();
    let mut count = |what: &str, n: u64| *survived.entry(what.to_owned()).or_default() += n;
    let started = Instant::now();
    let mut order = FAULTS.to_vec();
    let mut round = 0;
    let mut checked = 0;
    while round < FAULTS.len() || started.elapsed() < duration {
        if round % FAULTS.len() == 0 {
            // A new cycle: every kind once, in a seeded order.
            for at in (1..order.len()).rev() {
                order.swap(at, usize::try_from(next(at as u64 + 1)).unwrap());
            }
        }
        let fault = order[round % FAULTS.len()];
        round += 1;
        let replica = usize::try_from(next(2)).unwrap();
        let while_writes_go_on = || Duration::from_millis(1_000 + next_ms(seed, round, 3_000));
        println!(
            "round {round} ({:.0}s): {fault:?} on replica {replica}",
            started.elapsed().as_secs_f64()
        );
        match fault {
            Fault::RegistryKilled => {
                std::thread::sleep(while_writes_go_on());
                replicas.kill(replica);
                replicas.audit(replica);
                replicas.start(replica, "");
                count("registry killed (kill -9), audited, restarted", 1);
            }
            Fault::FlushFailed => {
                let point = if round % 2 == 0 {
                    "read-model-flush"
                } else {
                    "read-model-flush-commit"
                };
                replicas.kill(replica);
                let ended_at_start = replicas.start(replica, &format!("{point}=return"));
                // A flush is due 10 s after the first change it holds at the latest.
                let deadline = Instant::now() + Duration::from_secs(25);
                while !replicas.has_exited(replica) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(100));
                }
                let failed = ended_at_start > 0 || replicas.has_exited(replica);
                replicas.kill(replica);
                replicas.audit(replica);
                replicas.start(replica, "");
                count(
                    "flush failed (injected), replica restarted",
                    u64::from(failed),
                );
                count("flush failure rounds", 1);
            }
            Fault::FlushSlow => {
                replicas.kill(replica);
                replicas.start(replica, "read-model-flush=sleep(1500)");
                std::thread::sleep(while_writes_go_on());
                replicas.stop(replica);
                replicas.start(replica, "");
                count("slow flushes (1.5 s each), then SIGTERM", 1);
            }
            Fault::BrokerStopped | Fault::BrokerKilled => {
                let node = 1 + u8::try_from(next(u64::from(NODES))).unwrap();
                let kill = fault == Fault::BrokerKilled;
                cluster.stop_broker(node, kill);
                std::thread::sleep(while_writes_go_on());
                cluster.start_broker(node);
                wait_until_in_sync(&bootstrap, &topic);
                count(
                    if kill {
                        "broker killed (SIGKILL), restarted"
                    } else {
                        "broker stopped (SIGTERM), restarted"
                    },
                    1,
                );
            }
            Fault::CatchUpKilled => {
                replicas.kill(replica);
                std::thread::sleep(while_writes_go_on());
                // Each batch of the replay waits 200 ms, so the kill lands part-way through it.
                let (mut child, log) = launch(
                    &bootstrap,
                    &topic,
                    &replicas.dirs[replica],
                    &[("FAILPOINTS", "projection-apply=sleep(200)")],
                );
                std::thread::sleep(Duration::from_millis(200 + next_ms(seed, round, 1_500)));
                let _ = child.kill();
                let _ = child.wait();
                let caught_up = std::fs::read_to_string(&log)
                    .unwrap_or_default()
                    .contains("ready: the projection");
                replicas.audit(replica);
                replicas.start(replica, "");
                count("replica killed at restart, audited, restarted", 1);
                count(
                    "replica killed at restart before it had caught up",
                    u64::from(!caught_up),
                );
            }
            Fault::BoundaryFailures => {
                replicas.kill(replica);
                shared.reads_fail[replica].store(true, Ordering::SeqCst);
                let mut ended = replicas.start(replica, BOUNDARY_FAILPOINTS);
                let until = Instant::now() + while_writes_go_on() + Duration::from_secs(3);
                while Instant::now() < until {
                    if replicas.has_exited(replica) {
                        ended += 1;
                        replicas.kill(replica);
                        ended += replicas.start(replica, BOUNDARY_FAILPOINTS);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                replicas.kill(replica);
                shared.reads_fail[replica].store(false, Ordering::SeqCst);
                replicas.start(replica, "");
                count(
                    "boundary failure rounds (sled reads, produce, consume, offsets)",
                    1,
                );
                count("replica ended by a boundary failure, restarted", ended);
            }
        }
        checked += runtime.block_on(check(&shared, &books));
        let violations = lock(&shared.violations).clone();
        if !violations.is_empty() {
            // The evidence stays: both data dirs and the replicas' logs.
            let kept = dir.keep();
            panic!(
                "seed {seed}, round {round} ({fault:?}), topic {topic}, data dirs and logs kept \
                 in {}: {} violation(s):\n{}",
                kept.display(),
                violations.len(),
                violations.join("\n")
            );
        }
    }

    shared.stop.store(true, Ordering::SeqCst);
    for client in clients {
        runtime.block_on(client).unwrap();
    }
    replicas.stop(1);
    replicas.audit(1);
    let violations = lock(&shared.violations).clone();
    assert!(
        violations.is_empty(),
        "seed {seed}, at the end: {}",
        violations.join("\n")
    );
    let mut report = format!(
        "fault campaign seed {seed}: {round} rounds in {:.0}s, every oracle check passed \
         ({checked} customer checks)\n",
        started.elapsed().as_secs_f64()
    );
    for (what, times) in &survived {
        let _ = writeln!(report, "  survived: {what}: {times}");
    }
    for (what, times) in lock(&shared.acknowledged).iter() {
        let _ = writeln!(report, "  acknowledged: {what}: {times}");
    }
    for (what, times) in lock(&shared.failures).iter() {
        let _ = writeln!(
            report,
            "  refused or unknown (expected under faults): {what}: {times}"
        );
    }
    println!("{report}");
}

/// A pause in `0..bound` ms for round `round` of the campaign seeded `seed`.
fn next_ms(seed: u64, round: usize, bound: u64) -> u64 {
    generator(seed.wrapping_add(round as u64 * 7919))(bound)
}

/// The oracle, with the workload paused: both replicas, read at least as recent as every
/// acknowledged write, list every customer the clients know exactly once, at the acknowledged
/// version and last name (or one a change of unknown outcome gave it), none they deleted, and
/// list the same customers (unacknowledged creates that did apply included). Answers how many
/// customers it checked.
async fn check(shared: &Shared, books: &[Arc<Mutex<Vec<Known>>>]) -> u64 {
    let _quiet = shared.gate.write().await;
    let position = shared.min_position();
    let urls = shared
        .urls
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut checked = 0;
    for (number, book) in books.iter().enumerate() {
        let account = 700 + number;
        let known = lock(book).clone();
        let deadline = Instant::now() + PATIENCE;
        // Unacknowledged writes that did apply may still be reaching one replica: the two
        // listings must come to agree.
        let listings = loop {
            let mut listings = Vec::new();
            for url in urls.iter().flatten() {
                listings.push(listing(&http, url, account, &position).await);
            }
            if listings.windows(2).all(|pair| pair[0] == pair[1]) || Instant::now() > deadline {
                break listings;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        if listings.windows(2).any(|pair| pair[0] != pair[1]) {
            shared.violation(format!(
                "the replicas disagree on account {account}: {} against {} customers",
                listings[0].as_ref().map_or(0, BTreeMap::len),
                listings[1].as_ref().map_or(0, BTreeMap::len)
            ));
        }
        for (replica, listing) in listings.iter().enumerate() {
            let listing = match listing {
                Ok(listing) => listing,
                Err(why) => {
                    shared.violation(format!("replica {replica}, account {account}: {why}"));
                    continue;
                }
            };
            for customer in &known {
                checked += 1;
                if let Some(problem) = judge(customer, listing.get(&customer.id)) {
                    shared.violation(format!("replica {replica}, account {account}: {problem}"));
                }
            }
        }
    }
    checked
}

/// What is wrong with how a replica lists `known` (`None` when nothing is).
fn judge(known: &Known, listed: Option<&(u64, String)>) -> Option<String> {
    let id = &known.id;
    match (listed, known.deleted, &known.uncertain) {
        (None, true, _) | (None, false, Some(_)) => None,
        (Some(_), true, _) => Some(format!("{id} was deleted (acknowledged) and is listed")),
        (None, false, None) => Some(format!("{id} at version {} is missing", known.version)),
        (Some((version, last_name)), false, None) => {
            (*version != known.version || *last_name != known.last_name).then(|| {
                format!(
                    "{id} is at version {version} ({last_name}), acknowledged at {} ({})",
                    known.version, known.last_name
                )
            })
        }
        (Some((version, last_name)), false, Some(maybe)) => {
            let as_acknowledged = *version == known.version && *last_name == known.last_name;
            let as_attempted = *version == known.version + 1 && last_name == maybe;
            (!(as_acknowledged || as_attempted)).then(|| {
                format!(
                    "{id} is at version {version} ({last_name}); acknowledged at {} ({}), \
                     or at most one change of unknown outcome ({maybe})",
                    known.version, known.last_name
                )
            })
        }
    }
}

/// Every customer of `account` on the replica at `base`, page by page, read at least at
/// `position`: id → (version, last name). An id listed twice is an error.
async fn listing(
    http: &reqwest::Client,
    base: &str,
    account: usize,
    position: &str,
) -> Result<BTreeMap<String, (u64, String)>, String> {
    let mut listed = BTreeMap::new();
    let deadline = Instant::now() + PATIENCE;
    let mut offset = 0;
    loop {
        let mut request = http.get(format!(
            "{base}/api/v01/customers?accountId={account}&limit=1000&offset={offset}"
        ));
        if !position.is_empty() {
            request = request.header("x-min-log-position", position);
        }
        let answered = match request.send().await {
            Ok(response) => (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap_or(Value::Null),
            ),
            Err(error) => (0, Value::String(error.to_string())),
        };
        let page = match answered {
            (200, Value::Array(page)) => page,
            (503 | 0, why) if Instant::now() < deadline => {
                let _ = why;
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            (status, body) => return Err(format!("listing answered {status}: {body}")),
        };
        for customer in &page {
            let id = customer["id"].as_str().unwrap_or_default().to_owned();
            let entry = (
                customer["version"].as_u64().unwrap_or_default(),
                customer["lastName"].as_str().unwrap_or_default().to_owned(),
            );
            if listed.insert(id.clone(), entry).is_some() {
                return Err(format!("{id} is listed twice"));
            }
        }
        if page.len() < 1000 {
            return Ok(listed);
        }
        offset += page.len();
    }
}
