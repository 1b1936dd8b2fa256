//! The shared three-node Kafka cluster for tests of node failures: the one `scripts/test.sh`
//! starts (`KAFKA_BROKERS=3 scripts/kafka.sh start` on the ports and data dir it exports as
//! `KAFKA_CLUSTER_PORT`, `KAFKA_CLUSTER_CONTROLLER_PORT` and `KAFKA_CLUSTER_DATA_DIR`), and the
//! means to stop and restart one of its nodes.
//!
//! Every test of a test binary shares the cluster, and cargo runs them in parallel threads: a test
//! that stops a node must serialise itself with every other test of its binary that uses the
//! cluster (one `static` mutex they all hold, say), and start the node again before it ends, even
//! when it fails.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// The cluster's nodes, numbered 1 to `NODES` as `scripts/kafka.sh` numbers them.
pub const NODES: u8 = 3;

/// The cluster's bootstrap servers: its three nodes' client addresses, comma-separated, from
/// `KAFKA_CLUSTER_PORT` (default 9192; node N listens 2(N-1) above it). Fails the test, saying
/// how to start the cluster, when no node answers.
pub fn cluster_bootstrap() -> String {
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

/// Stops node `n` (1 to 3) of the cluster and waits until it has exited: with SIGTERM (a
/// controlled shutdown, which first moves its partitions' leadership away) or, when `kill`, with
/// SIGKILL (a crash). Fails the test when `scripts/kafka.sh stop-broker` fails.
pub fn stop_broker(n: u8, kill: bool) {
    let node = n.to_string();
    let mut args = vec!["stop-broker", &node];
    if kill {
        args.push("--kill");
    }
    run_kafka_sh(&args);
}

/// Starts node `n` (1 to 3) of the cluster again, and returns once it answers and has started
/// (which takes a controller quorum: a second node must be running). Fails the test when
/// `scripts/kafka.sh start-broker` fails.
pub fn start_broker(n: u8) {
    run_kafka_sh(&["start-broker", &n.to_string()]);
}

/// How many of the cluster's nodes run and answer, as `scripts/kafka.sh status` tells.
pub fn brokers_running() -> usize {
    let output = kafka_sh(&["status"]);
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.contains(": running "))
        .count()
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
/// missing ones), ignoring failure: for a guard's `Drop`, which must not panic while a failed
/// test unwinds.
pub fn start_missing_nodes() {
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
