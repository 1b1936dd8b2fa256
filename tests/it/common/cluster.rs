//! The shared three-node Kafka cluster for tests of node failures: the one `scripts/test.sh`
//! starts (`KAFKA_BROKERS=3 scripts/kafka.sh start` on the ports and data dir it exports as
//! `KAFKA_CLUSTER_PORT`, `KAFKA_CLUSTER_CONTROLLER_PORT` and `KAFKA_CLUSTER_DATA_DIR`), and the
//! means to stop and restart one of its nodes.
//!
//! Every test that uses the cluster shares it, and cargo runs them in parallel threads of one
//! process. So a test reaches it only through a turn: [`shared`] for one that needs every node
//! up (any number of those at once), [`exclusive`] for one that stops nodes (alone, and only
//! its turn can stop or start one; every node runs again when the turn ends, failed test or not).

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

/// The turns: read for [`shared`], write for [`exclusive`]. A tokio lock for its owned guards,
/// which a test can hand to a blocking task; first come, first served, so a test waiting for
/// the cluster alone is not starved by a stream of shared turns.
static TURNS: LazyLock<Arc<RwLock<()>>> = LazyLock::new(Arc::default);

/// The cluster with every node running, while this lives: other tests may use it meanwhile, none
/// may stop a node.
pub struct SharedCluster {
    bootstrap: String,
    _turn: OwnedRwLockReadGuard<()>,
}

/// Waits for a shared turn on the cluster (the calling thread blocks: a test has nothing else to
/// do meanwhile). Fails the test, saying how to start the cluster, when no node answers.
pub fn shared() -> SharedCluster {
    let turn = futures::executor::block_on(Arc::clone(&TURNS).read_owned());
    SharedCluster {
        bootstrap: cluster_bootstrap(),
        _turn: turn,
    }
}

impl SharedCluster {
    /// The cluster's bootstrap servers.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }
}

/// The cluster for one test alone, while this lives: the only handle that stops and starts its
/// nodes. Every node runs again when it is dropped, however the test ends.
pub struct ExclusiveCluster {
    bootstrap: String,
    _turn: OwnedRwLockWriteGuard<()>,
}

/// Waits until no other test uses the cluster (the calling thread blocks), starts whichever nodes
/// are not running (a run interrupted part-way may have left one down), and answers the cluster
/// for this test alone. Fails the test when no node answers.
pub fn exclusive() -> ExclusiveCluster {
    let turn = futures::executor::block_on(Arc::clone(&TURNS).write_owned());
    start_missing_nodes();
    ExclusiveCluster {
        bootstrap: cluster_bootstrap(),
        _turn: turn,
    }
}

impl ExclusiveCluster {
    /// The cluster's bootstrap servers.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// Stops node `n` (1 to 3) and waits until it has exited: with SIGTERM (a controlled
    /// shutdown, which first moves its partitions' leadership away) or, when `kill`, with SIGKILL
    /// (a crash). Fails the test when `scripts/kafka.sh stop-broker` fails.
    pub fn stop_broker(&self, n: u8, kill: bool) {
        let node = n.to_string();
        let mut args = vec!["stop-broker", &node];
        if kill {
            args.push("--kill");
        }
        run_kafka_sh(&args);
    }

    /// Starts node `n` (1 to 3) again, and returns once it answers and has started (which takes
    /// a controller quorum: a second node must be running). Fails the test when
    /// `scripts/kafka.sh start-broker` fails.
    pub fn start_broker(&self, n: u8) {
        run_kafka_sh(&["start-broker", &n.to_string()]);
    }

    /// How many of the cluster's nodes run and answer, as `scripts/kafka.sh status` tells.
    pub fn brokers_running(&self) -> usize {
        let output = kafka_sh(&["status"]);
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|line| line.contains(": running "))
            .count()
    }
}

impl Drop for ExclusiveCluster {
    fn drop(&mut self) {
        start_missing_nodes();
    }
}

/// The cluster's nodes, numbered 1 to `NODES` as `scripts/kafka.sh` numbers them.
pub const NODES: u8 = 3;

/// The cluster's bootstrap servers: its three nodes' client addresses, comma-separated, from
/// `KAFKA_CLUSTER_PORT` (default 9192; node N listens 2(N-1) above it). Fails the test, saying
/// how to start the cluster, when no node answers.
fn cluster_bootstrap() -> String {
    let addresses: Vec<SocketAddr> = (1..=NODES)
        .map(|node| SocketAddr::from(([127, 0, 0, 1], client_port(node))))
        .collect();
    let bootstrap = addresses
        .iter()
        .map(SocketAddr::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let reachable = addresses
        .iter()
        .any(|address| TcpStream::connect_timeout(address, Duration::from_secs(2)).is_ok());
    assert!(
        reachable,
        "no node of the three-node Kafka cluster answers at {bootstrap}: these tests need it. Run \
         `scripts/test.sh`, which starts it for you, or start it with `KAFKA_BROKERS=3 \
         KAFKA_PORT={} KAFKA_CONTROLLER_PORT={} KAFKA_DATA_DIR={} scripts/kafka.sh start`.",
        client_port(1),
        setting("KAFKA_CLUSTER_CONTROLLER_PORT", 9193),
        data_dir().display()
    );
    bootstrap
}

/// Runs `scripts/kafka.sh` on the cluster and fails the test, with its output, unless it succeeds.
fn run_kafka_sh(args: &[&str]) {
    let output = kafka_sh(args);
    assert!(
        output.status.success(),
        "scripts/kafka.sh {} failed ({}):\n{}{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn kafka_sh(args: &[&str]) -> Output {
    Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka.sh"))
        .args(args)
        .env("KAFKA_BROKERS", NODES.to_string())
        .env("KAFKA_PORT", client_port(1).to_string())
        .env(
            "KAFKA_CONTROLLER_PORT",
            setting("KAFKA_CLUSTER_CONTROLLER_PORT", 9193).to_string(),
        )
        .env("KAFKA_DATA_DIR", data_dir())
        .output()
        .expect("running scripts/kafka.sh")
}

/// Node `node`'s client port, as `scripts/kafka.sh` lays the cluster out.
fn client_port(node: u8) -> u16 {
    setting("KAFKA_CLUSTER_PORT", 9192) + 2 * u16::from(node - 1)
}

/// A port setting from the environment `scripts/test.sh` exports, else its default there.
fn setting(name: &str, default: u16) -> u16 {
    std::env::var(name).map_or(default, |value| {
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value} is not a port number"))
    })
}

/// `KAFKA_CLUSTER_DATA_DIR`, else `.kafka-cluster/` in the repo, as in `scripts/test.sh`.
fn data_dir() -> PathBuf {
    std::env::var_os("KAFKA_CLUSTER_DATA_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join(".kafka-cluster"),
        PathBuf::from,
    )
}

/// Starts whichever nodes of the cluster are not running (`scripts/kafka.sh start` starts the
/// missing ones), ignoring failure: for a turn's `Drop`, which must not panic while a failed
/// test unwinds.
fn start_missing_nodes() {
    let _ = kafka_sh(&["start"]);
}

/// Waits until every partition of `topic` has all three replicas in sync again (a restarted node
/// catches up before it rejoins), failing the test after a minute.
pub fn wait_until_in_sync(bootstrap: &str, topic: &str) {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("a metadata client");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let in_sync = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .is_ok_and(|metadata| {
                metadata.topics().iter().all(|found| {
                    !found.partitions().is_empty()
                        && found
                            .partitions()
                            .iter()
                            .all(|partition| partition.isr().len() == usize::from(NODES))
                })
            });
        if in_sync {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "topic {topic} did not get all {NODES} replicas in sync within a minute"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
