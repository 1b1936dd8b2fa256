//! Test helpers: a real Kafka broker (started by `scripts/kafka.sh`), the real binary on a free
//! port with its own topic and temporary data dir, a raw consumer to read what was published, and
//! one HTTP client's answers ([`Answer`], [`send`]). Beside them: [`cluster`], the shared
//! three-node cluster and the turns tests take on it; [`contract`], the event contract's files and
//! schemas; [`load`], concurrent clients that retry until acknowledged.

pub mod cluster;
pub mod contract;
pub mod load;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::Value;
use std::fs;
use std::io::Read;
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a test waits for something that should happen promptly (start-up, a projection).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// How long a SIGTERM may take: the service promises 10 s; the rest is slack for a loaded machine.
const STOP_PATIENCE: Duration = Duration::from_secs(15);

/// The broker the tests use: `KAFKA_BOOTSTRAP`, else 127.0.0.1:`KAFKA_PORT` (default 9092).
/// Fails the test, saying how to start one, when nothing answers there.
pub fn kafka_bootstrap() -> String {
    let bootstrap = std::env::var("KAFKA_BOOTSTRAP").unwrap_or_else(|_| {
        let port = std::env::var("KAFKA_PORT").unwrap_or_else(|_| "9092".into());
        format!("127.0.0.1:{port}")
    });
    let reachable = bootstrap
        .to_socket_addrs()
        .ok()
        .and_then(|mut addresses| addresses.next())
        .is_some_and(|address| {
            TcpStream::connect_timeout(&address, Duration::from_secs(2)).is_ok()
        });
    assert!(
        reachable,
        "no Kafka broker answers at {bootstrap}: these tests need a real one. Start it with \
         `scripts/kafka.sh start` (or run `scripts/test.sh`, which starts it for you), or set \
         KAFKA_BOOTSTRAP to a running broker."
    );
    bootstrap
}

/// The process's failpoints, none set, until the answer is dropped: it holds the `fail` crate's
/// one scenario lock. Failpoints are process-wide and tests run in parallel threads of one
/// process, so a test that sets failpoints holds one, and so does a test that runs the library
/// in-process where failpoints fire (the read model's store reads and flushes), lest another
/// test's failpoint reach it.
pub fn failpoints() -> fail::FailScenario<'static> {
    fail::FailScenario::setup()
}

/// A topic name no other test uses.
pub fn unique_topic(test: &str) -> String {
    format!("test.{test}.{}", uuid::Uuid::now_v7().simple())
}

/// Creates `topic` with `partitions` partitions and one replica, keeping events forever, as an
/// operator (or an older registry) would have before the registry starts on it.
pub async fn create_topic_kept_forever(bootstrap: &str, topic: &str, partitions: i32) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("an admin client");
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1))
        .set("retention.ms", "-1")
        .set("retention.bytes", "-1");
    let created = admin
        .create_topics([&new_topic], &AdminOptions::new())
        .await
        .expect("creating a topic");
    assert!(created.iter().all(Result::is_ok), "{created:?}");
}

/// A finished process's output as text: its stdout, then its stderr.
pub fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `N` consecutive free ports on 127.0.0.1, for servers a test starts itself (brokers, a
/// balancer). They come from below the kernel's ephemeral range (32768 and up), where every
/// `127.0.0.1:0` listener and outgoing connection of the tests running beside this one takes its
/// port, and no port is handed out twice in this process: a port is free when answered, not
/// reserved, and a broker takes seconds to bind it. (Each process starts at an offset of its
/// own, and the fixed ports of the dev broker and CI's, 9092-9197 and 19092-29197, lie outside.)
pub fn free_ports<const N: usize>() -> [u16; N] {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 21_000;
    const SPAN: u32 = 8_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        (std::process::id() * 97) % SPAN,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    let width = u32::try_from(N).expect("a few ports");
    for _ in 0..SPAN {
        let offset = NEXT.fetch_add(width, Ordering::Relaxed) % SPAN;
        if offset + width > SPAN {
            continue;
        }
        let first = FIRST + offset;
        let ports: [u16; N] =
            std::array::from_fn(|n| u16::try_from(first + n as u32).expect("below 29000"));
        if ports
            .iter()
            .all(|&port| TcpListener::bind(("127.0.0.1", port)).is_ok())
        {
            return ports;
        }
    }
    panic!(
        "no {N} consecutive free ports in 127.0.0.1:{FIRST}..{}",
        FIRST + SPAN
    );
}

/// A small deterministic generator (xorshift64): `next(bound)` is in `0..bound`, the same
/// sequence for the same seed, so a test's random mix is repeatable.
pub fn generator(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut state = seed;
    move |bound| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % bound
    }
}

/// A running `customer-registry serve` process.
pub struct Registry {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// Where the process's output goes.
    pub log_path: PathBuf,
}

impl Registry {
    /// Starts the binary on a free port and waits until it listens and has caught up with the
    /// log (it answers reads only then).
    pub fn start(bootstrap: &str, topic: &str, data_dir: &Path) -> Registry {
        Self::start_with(bootstrap, topic, data_dir, &[])
    }

    /// [`Registry::start`] on a topic of its own named after `test`, in a temporary directory
    /// (kept while the returned guard lives).
    pub fn start_alone(test: &str) -> (Registry, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let registry = Self::start(
            &kafka_bootstrap(),
            &unique_topic(test),
            &dir.path().join("data"),
        );
        (registry, dir)
    }

    /// [`Registry::start`] with extra `serve` flags.
    pub fn start_with(bootstrap: &str, topic: &str, data_dir: &Path, extra: &[&str]) -> Registry {
        Self::start_with_env(bootstrap, topic, data_dir, extra, &[])
    }

    /// [`Registry::start_with`], with extra environment variables.
    pub fn start_with_env(
        bootstrap: &str,
        topic: &str,
        data_dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Registry {
        Self::try_start_with_env(bootstrap, topic, data_dir, extra, env)
            .unwrap_or_else(|log| panic!("customer-registry exited during start-up:\n{log}"))
    }

    /// [`Registry::start_with_env`] for a process that may exit during start-up (failures
    /// injected into it): answers its log then. Fails the test when it neither starts nor exits
    /// within [`PATIENCE`].
    pub fn try_start_with_env(
        bootstrap: &str,
        topic: &str,
        data_dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Registry, String> {
        let log_path = log_path_for(data_dir);
        let mut child = spawn(bootstrap, topic, data_dir, extra, env, &log_path);
        let deadline = Instant::now() + PATIENCE;
        loop {
            let log = fs::read_to_string(&log_path).unwrap_or_default();
            let address = log
                .lines()
                .find_map(|line| line.split("listening on http://").nth(1))
                .map(|rest| {
                    // The address alone, whether the line is text or JSON.
                    let end = rest
                        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':'))
                        .unwrap_or(rest.len());
                    &rest[..end]
                });
            if let (Some(address), true) = (address, log.contains("ready: the projection")) {
                return Ok(Registry {
                    child,
                    base_url: format!("http://{address}"),
                    log_path,
                });
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("({status})\n{log}"));
            }
            assert!(
                Instant::now() < deadline,
                "customer-registry did not start:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the process has exited (a projector that failed ends it).
    pub fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// `base_url` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The process id, for signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process outright (SIGKILL) and waits for it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the process to exit; returns whether it exited with 0. Fails
    /// the test if the process still runs well past the 10 s the service promises.
    pub fn stop(mut self) -> bool {
        let pid = self.child.id().to_string();
        let signalled = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(
            signalled.is_ok_and(|status| status.success()),
            "cannot signal {pid}"
        );
        let deadline = Instant::now() + STOP_PATIENCE;
        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .expect("waiting for customer-registry")
            {
                return status.success();
            }
            assert!(
                Instant::now() < deadline,
                "customer-registry still runs {STOP_PATIENCE:?} after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `customer-registry serve` to completion (for start-up failures), failing the test if it
/// has not exited within `limit`; returns its exit code and output.
pub fn run_to_exit(
    bootstrap: &str,
    topic: &str,
    data_dir: &Path,
    limit: Duration,
) -> (Option<i32>, String) {
    run_to_exit_with(bootstrap, topic, data_dir, limit, &[], &[])
}

/// [`run_to_exit`] with extra `serve` flags and environment variables.
pub fn run_to_exit_with(
    bootstrap: &str,
    topic: &str,
    data_dir: &Path,
    limit: Duration,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (Option<i32>, String) {
    let log_path = log_path_for(data_dir);
    let mut child = spawn(bootstrap, topic, data_dir, extra, env, &log_path);
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("polling customer-registry") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("customer-registry did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut output = String::new();
    fs::File::open(&log_path)
        .and_then(|mut file| file.read_to_string(&mut output))
        .expect("reading the log");
    (status.code(), output)
}

/// Starts `customer-registry serve` on a free port without waiting for anything (to kill it
/// part-way through its start-up); answers the process and the file next to `data_dir` that its
/// output goes to.
pub fn launch(
    bootstrap: &str,
    topic: &str,
    data_dir: &Path,
    env: &[(&str, &str)],
) -> (Child, PathBuf) {
    let log_path = log_path_for(data_dir);
    let child = spawn(bootstrap, topic, data_dir, &[], env, &log_path);
    (child, log_path)
}

fn log_path_for(data_dir: &Path) -> PathBuf {
    fs::create_dir_all(data_dir).expect("creating the data dir");
    let name = format!("registry-{}.log", uuid::Uuid::now_v7().simple());
    data_dir.parent().unwrap_or(data_dir).join(name)
}

fn spawn(
    bootstrap: &str,
    topic: &str,
    data_dir: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
    log_path: &Path,
) -> Child {
    let log = fs::File::create(log_path).expect("creating the log file");
    // Tests about other things serve without authentication; a test that gives a key file (or
    // says REGISTRY_NO_AUTH itself) gets exactly what it asked for.
    let chooses_auth = extra.iter().any(|flag| flag.starts_with("--api-keys"))
        || env
            .iter()
            .any(|(name, _)| *name == "REGISTRY_API_KEYS" || *name == "REGISTRY_NO_AUTH");
    let no_auth: &[(&str, &str)] = if chooses_auth {
        &[]
    } else {
        &[("REGISTRY_NO_AUTH", "1")]
    };
    // Every registry of the run seals its events under one KEK file (as every replica of a
    // deployment shares one), unless the test chooses.
    let chooses_encryption = extra
        .iter()
        .any(|flag| flag.starts_with("--kek-file") || flag.starts_with("--no-encryption"))
        || env
            .iter()
            .any(|(name, _)| *name == "REGISTRY_KEK_FILE" || *name == "REGISTRY_NO_ENCRYPTION");
    let kek: Vec<(&str, &Path)> = if chooses_encryption {
        Vec::new()
    } else {
        vec![("REGISTRY_KEK_FILE", kek_file())]
    };
    Command::new(env!("CARGO_BIN_EXE_customer-registry"))
        .arg("serve")
        .args([
            "--listen",
            "127.0.0.1:0",
            "--kafka-bootstrap",
            bootstrap,
            "--topic",
            topic,
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .env("RUST_LOG", "info")
        .env_remove("REGISTRY_API_KEYS")
        .env_remove("REGISTRY_NO_AUTH")
        .env_remove("REGISTRY_KEK_FILE")
        .env_remove("REGISTRY_NO_ENCRYPTION")
        .envs(no_auth.iter().copied())
        .envs(kek)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("duplicating the log handle"))
        .stderr(log)
        .spawn()
        .expect("starting customer-registry")
}

/// One record read back from the topic.
#[derive(Debug)]
pub struct Record {
    /// Its partition.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
    /// The record key, as text.
    pub key: String,
    /// The value as a version 1 reader would see it: a sealed (version 2) event opened with the
    /// run's KEK file and written in version 1's form; anything else (an erased customer's
    /// events included) as published.
    pub value: Value,
    /// The value as published, parsed as JSON (null for a tombstone).
    pub published: Value,
    /// Header name → value, as text.
    pub headers: Vec<(String, String)>,
}

impl Record {
    /// The value of its header `name`, if it has one.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Every record on `topic`, read from offset 0 up to the end of each partition as it is now.
pub fn read_topic(bootstrap: &str, topic: &str) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "customer-registry.tests")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("creating a test consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("fetching topic metadata");
    let mut assignment = TopicPartitionList::new();
    // Partitions not read to their end yet, with that end (a compacted topic has gaps, so
    // records are not counted: a partition is read once a record at or past end - 1 came).
    let mut unread = std::collections::HashMap::new();
    for partition in metadata.topics()[0].partitions() {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition.id(), Duration::from_secs(10))
            .expect("fetching watermarks");
        assignment
            .add_partition_offset(topic, partition.id(), Offset::Offset(low))
            .expect("assigning a partition");
        if high > low {
            unread.insert(partition.id(), high);
        }
    }
    let ends = unread.clone();
    consumer.assign(&assignment).expect("assigning partitions");
    let mut records = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while !unread.is_empty() {
        assert!(
            Instant::now() < deadline,
            "topic {topic} did not yield its records"
        );
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.expect("reading a record");
        let end = ends.get(&message.partition()).copied().unwrap_or(0);
        if message.offset() >= end {
            continue;
        }
        if message.offset() + 1 >= end {
            unread.remove(&message.partition());
        }
        let headers = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|header| {
                        let value = header
                            .value
                            .map(String::from_utf8_lossy)
                            .unwrap_or_default();
                        (header.key.to_owned(), value.into_owned())
                    })
                    .collect()
            })
            .unwrap_or_default();
        // A tombstone (the keys topic's destroyed keys) reads as null.
        let published: Value = match message.payload() {
            None => Value::Null,
            Some(bytes) => serde_json::from_slice(bytes).expect("a record value that is JSON"),
        };
        records.push(Record {
            partition: message.partition(),
            offset: message.offset(),
            key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
            value: published.clone(),
            published,
            headers,
        });
    }
    open_sealed(bootstrap, topic, &mut records);
    records
}

/// Gives each sealed record of `topic` its opened value (see [`Record::value`]), with the keys
/// of the topic's keys topic and the run's KEK file.
fn open_sealed(bootstrap: &str, topic: &str, records: &mut [Record]) {
    use customer_registry::domain::{
        EventDecodeError, OpenError, RegistryEvent, SEALED_SCHEMA_VERSION,
    };
    let sealed = |record: &Record| record.published["schemaVersion"] == SEALED_SCHEMA_VERSION;
    let Some(first) = records.iter().find(|record| sealed(record)) else {
        return;
    };
    let partitioning = first
        .header("partitioning")
        .and_then(|value| customer_registry::log::Partitioning::parse(value).ok())
        .expect("a sealed record names its partitioning");
    let settings = customer_registry::log::EventLogSettings {
        kafka_bootstrap: bootstrap.to_owned(),
        topic: topic.to_owned(),
        topic_partitions: partitioning.count(),
        topic_replication: None,
    };
    let keyring =
        customer_registry::crypto::data_key::Keyring::load(kek_file()).expect("the run's KEK file");
    let keys = customer_registry::crypto::Keys::start(&settings, partitioning, keyring)
        .expect("reading the keys topic");
    for record in records.iter_mut().filter(|record| sealed(record)) {
        let bytes = serde_json::to_vec(&record.published).expect("JSON serialises");
        let event = match RegistryEvent::decode_with(&bytes, keys.as_ref()) {
            Ok(event) => event,
            // An erased customer's events stay shut: their value is as published.
            Err(EventDecodeError::Sealed(OpenError::Erased)) => continue,
            Err(error) => panic!(
                "a sealed record at {}:{} does not open: {error}",
                record.partition, record.offset
            ),
        };
        record.value = serde_json::from_slice(&event.encode()).expect("an event is JSON");
    }
    keys.stop();
}

/// The names of the cluster's topics.
pub fn topic_names(bootstrap: &str) -> Vec<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("creating a metadata client");
    consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("fetching metadata")
        .topics()
        .iter()
        .map(|topic| topic.name().to_owned())
        .collect()
}

/// An HTTP client for the tests.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("building an HTTP client")
}

/// An HTTP answer, read whole.
pub struct Answer {
    /// Its status code.
    pub status: u16,
    /// Its headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body as text.
    pub text: String,
    /// The body as JSON: `Null` when empty, and the text as a JSON string when it is not JSON (so
    /// that an assertion's message still shows it).
    pub body: Value,
}

impl Answer {
    /// Header `name` as text; empty when the answer has none.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    }

    /// `X-Log-Position`, the position of the write answered in the log, which a later request
    /// sends as `X-Min-Log-Position`; empty when the answer has none.
    pub fn position(&self) -> &str {
        self.header("x-log-position")
    }
}

/// Sends `request` and reads its answer whole; fails the test when none comes (see [`try_send`]).
pub async fn send(request: reqwest::RequestBuilder) -> Answer {
    try_send(request).await.expect("an HTTP answer")
}

/// Sends `request` and reads its answer whole, or answers why there is none (the connection
/// refused or dropped, the client's timeout).
pub async fn try_send(request: reqwest::RequestBuilder) -> Result<Answer, reqwest::Error> {
    let response = request.send().await?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(text.clone()))
    };
    Ok(Answer {
        status,
        headers,
        text,
        body,
    })
}

/// Sends a request that is safe to repeat (a keyed write, a read) until it is answered with
/// something else than 503 or no answer at all, as a careful client does; answers that and how
/// many tries it took. Fails the test after 2 minutes.
pub async fn until_answered(request: impl Fn() -> reqwest::RequestBuilder) -> (Answer, usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut tries = 0;
    loop {
        tries += 1;
        match try_send(request()).await {
            Ok(answered) if answered.status != 503 => return (answered, tries),
            _ => {
                assert!(
                    Instant::now() < deadline,
                    "a request was refused for 2 minutes"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// PUTs `body` as JSON to the registry's create endpoint; returns status and parsed body.
pub async fn create(registry: &Registry, body: &Value) -> (u16, Value) {
    let response = http()
        .put(registry.url("/api/v01/customers"))
        .json(body)
        .send()
        .await
        .expect("PUT /api/v01/customers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON answer"))
}

/// Creates every one of `bodies` in turn, asserting each answers 201; returns the customers.
pub async fn create_all(registry: &Registry, bodies: &[Value]) -> Vec<Value> {
    let mut created = Vec::with_capacity(bodies.len());
    for body in bodies {
        let (status, customer) = create(registry, body).await;
        assert_eq!(status, 201, "{customer}");
        created.push(customer);
    }
    created
}

/// GETs `path` from the registry; returns status and parsed body.
pub async fn get(registry: &Registry, path: &str) -> (u16, Value) {
    let response = http().get(registry.url(path)).send().await.expect("GET");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON answer"))
}

/// GETs `path` from a registry just (re)started, waiting while it answers 503 catching-up (its
/// projection has not caught up with the log yet); fails on any other answer than 200, or
/// after [`PATIENCE`]. Returns the 200 answer's body.
pub async fn get_caught_up(registry: &Registry, path: &str) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, body) = get(registry, path).await;
        match status {
            200 => return body,
            503 if body["type"] == "/problems/catching-up" => assert!(
                Instant::now() < deadline,
                "{path} still answers 503 catching-up after {PATIENCE:?}: {body}"
            ),
            _ => panic!("{path} answered {status}: {body}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `find` at `path` (through [`get_caught_up`]) until it answers `expected_len`
/// customers (a fresh projection catching up), failing after [`PATIENCE`].
pub async fn find_eventually(registry: &Registry, path: &str, expected_len: usize) -> Vec<Value> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let body = get_caught_up(registry, path).await;
        let customers = body.as_array().expect("find answers an array").clone();
        if customers.len() == expected_len {
            return customers;
        }
        assert!(
            Instant::now() < deadline,
            "{path} still answers {} customers, not {expected_len}",
            customers.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Writes `payload` to `partition` of `topic` as another producer would (no validation), and
/// returns its offset.
pub async fn produce_raw(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    key: &str,
    payload: &[u8],
) -> i64 {
    produce_with_headers(bootstrap, topic, partition, key, payload, &[]).await
}

/// [`produce_raw`], with `headers` on the record.
pub async fn produce_with_headers(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    key: &str,
    payload: &[u8],
    headers: &[(&str, &str)],
) -> i64 {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("creating a test producer");
    let mut owned = OwnedHeaders::new();
    for (name, value) in headers {
        owned = owned.insert(Header {
            key: name,
            value: Some(*value),
        });
    }
    let record = FutureRecord::to(topic)
        .key(key)
        .payload(payload)
        .partition(partition)
        .headers(owned);
    producer
        .send(record, Duration::from_secs(10))
        .await
        .map(|delivery| delivery.offset)
        .map_err(|(error, _)| error)
        .expect("producing a raw record")
}

impl Registry {
    /// [`Registry::stop`] for a test that must know when the signal went: sends SIGTERM once
    /// (straight from this process, so the instants bracket it closely) and waits for the process
    /// to exit; returns whether it exited with 0, and the instants just before and just after the
    /// signal was sent. Fails the test like [`Registry::stop`] when the process outlives
    /// `STOP_PATIENCE`.
    pub fn stop_timed(mut self) -> (bool, Instant, Instant) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("a pid that fits pid_t");
        let before = Instant::now();
        // SAFETY: kill(2) takes no pointers; the pid is our own child, not yet waited for.
        let signalled = unsafe { libc::kill(pid, libc::SIGTERM) };
        let after = Instant::now();
        assert_eq!(
            signalled,
            0,
            "cannot signal {pid}: {}",
            std::io::Error::last_os_error()
        );
        let deadline = after + STOP_PATIENCE;
        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .expect("waiting for customer-registry")
            {
                return (status.success(), before, after);
            }
            assert!(
                Instant::now() < deadline,
                "customer-registry still runs {STOP_PATIENCE:?} after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A customer as the API answers it, as `CustomerCreated` carries it: without `version` and
/// `updatedAt` (a created customer's are 1 and its `createdAt`, which this checks).
pub fn as_created(customer: &Value) -> Value {
    assert_eq!(customer["version"], 1, "{customer} is as created");
    assert_eq!(customer["updatedAt"], customer["createdAt"], "{customer}");
    let mut created = customer.clone();
    let fields = created.as_object_mut().expect("a customer is an object");
    fields.remove("version");
    fields.remove("updatedAt");
    created
}

/// The KEK file every registry and tool of this test run shares: made once, by `customer-registry
/// kek add`, in a directory of the run's own.
pub fn kek_file() -> &'static Path {
    static FILE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!(
            "customer-registry-tests-{}",
            uuid::Uuid::now_v7().simple()
        ));
        fs::create_dir_all(&dir).expect("creating the KEK file's directory");
        let file = dir.join("keks.jsonl");
        let made = Command::new(env!("CARGO_BIN_EXE_customer-registry"))
            .args(["kek", "add", "--file"])
            .arg(&file)
            .output()
            .expect("running customer-registry kek add");
        assert!(made.status.success(), "kek add failed: {made:?}");
        file
    })
}

/// Runs a `customer-registry` tool (`rebuild`, `audit`, `export`, ...) on `data_dir` to
/// completion, with the run's KEK file, and returns its output.
pub fn tool(args: &[&str], bootstrap: &str, topic: &str, data_dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_customer-registry"))
        .env("REGISTRY_KEK_FILE", kek_file())
        .args(args)
        .args(["--kafka-bootstrap", bootstrap, "--topic", topic])
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("running a customer-registry tool")
}
