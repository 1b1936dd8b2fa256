//! `scripts/kafka.sh` with `KAFKA_BROKERS=3`: a three-node cluster of this test's own, on free
//! ports and in a temporary dir, whose nodes stop and start one at a time; and the shared cluster
//! that `scripts/test.sh` starts for the suite's tests of node failures.

use crate::common::{cluster, free_ports, text};
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::ClientConfig;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

/// A private cluster, stopped when dropped so that a failing test leaves no JVM behind.
struct Cluster {
    base_port: u16,
    dir: tempfile::TempDir,
}

impl Cluster {
    fn new() -> Cluster {
        Cluster {
            // Client ports are the base and +2, +4; controller ports +1, +3, +5.
            base_port: free_ports::<6>()[0],
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// `scripts/kafka.sh ARGS`; `KAFKA_BROKERS` only when given, as the data dir records it.
    fn kafka_sh(&self, args: &[&str], brokers: Option<&str>) -> Output {
        let mut command =
            Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka.sh"));
        command
            .args(args)
            .env("KAFKA_PORT", self.base_port.to_string())
            .env("KAFKA_CONTROLLER_PORT", (self.base_port + 1).to_string())
            .env("KAFKA_DATA_DIR", self.dir.path())
            .env("KAFKA_HEAP_OPTS", "-Xms128m -Xmx384m")
            .env_remove("KAFKA_BROKERS");
        if let Some(brokers) = brokers {
            command.env("KAFKA_BROKERS", brokers);
        }
        command.output().expect("running scripts/kafka.sh")
    }

    fn run(&self, args: &[&str]) -> Output {
        self.kafka_sh(args, None)
    }

    /// Node `node`'s pid, from its pid file.
    fn pid(&self, node: u8) -> String {
        let pid_file = self.dir.path().join(format!("node-{node}/kafka.pid"));
        std::fs::read_to_string(pid_file).unwrap().trim().to_owned()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.run(&["stop"]);
    }
}

fn alive(pid: &str) -> bool {
    Path::new("/proc").join(pid).exists()
}

/// The node numbers `status` says are running, from its one line per node.
fn running_nodes(status: &Output) -> Vec<u8> {
    let stdout = String::from_utf8_lossy(&status.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "one line per node: {stdout}");
    (1..=3)
        .filter(|node| lines[usize::from(node - 1)].starts_with(&format!("node {node}: running ")))
        .collect()
}

#[test]
fn a_cluster_starts_loses_a_node_gets_it_back_and_stops() {
    let cluster = Cluster::new();

    let started = cluster.kafka_sh(&["start"], Some("3"));
    assert!(started.status.success(), "{}", text(&started));
    // From here on, the data dir tells the script it holds three nodes.
    let status = cluster.run(&["status"]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    assert_eq!(running_nodes(&status), [1, 2, 3], "{}", text(&status));

    let killed_pid = cluster.pid(2);
    let killed = cluster.run(&["stop-broker", "2", "--kill"]);
    assert!(killed.status.success(), "{}", text(&killed));
    assert!(
        !alive(&killed_pid),
        "stop-broker waits until the node has exited"
    );
    let status = cluster.run(&["status"]);
    assert_eq!(status.status.code(), Some(3), "{}", text(&status));
    assert_eq!(running_nodes(&status), [1, 3], "{}", text(&status));

    let restarted = cluster.run(&["start-broker", "2"]);
    assert!(restarted.status.success(), "{}", text(&restarted));
    let status = cluster.run(&["status"]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status));
    assert_eq!(running_nodes(&status), [1, 2, 3], "{}", text(&status));

    let pids = [1, 2, 3].map(|node| cluster.pid(node));
    let stopped = cluster.run(&["stop"]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    for pid in &pids {
        assert!(!alive(pid), "stop waits until every node has exited");
    }
    let status = cluster.run(&["status"]);
    assert_eq!(status.status.code(), Some(3), "{}", text(&status));
    assert_eq!(running_nodes(&status), [0u8; 0], "{}", text(&status));
}

/// The helpers of `common::cluster` against the shared cluster, which this test has to itself.
#[test]
fn the_shared_cluster_runs_three_nodes_and_gets_a_killed_one_back() {
    let cluster = cluster::exclusive();
    let bootstrap = cluster.bootstrap();
    assert_eq!(cluster.brokers_running(), 3);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("creating a client");
    let metadata = producer
        .client()
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("fetching the cluster's metadata");
    assert_eq!(metadata.brokers().len(), 3, "{bootstrap}");

    cluster.stop_broker(2, true);
    assert_eq!(cluster.brokers_running(), 2);
    cluster.start_broker(2);
    assert_eq!(cluster.brokers_running(), 3);
}
