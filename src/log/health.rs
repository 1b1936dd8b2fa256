//! Whether the topic's partitions can take a write now. Kafka acknowledges a write (`acks=all`)
//! only once `min.insync.replicas` replicas hold it; with fewer in sync, the broker refuses it and
//! the producer retries until its delivery timeout, so a client would wait seconds for an answer
//! that says only "timed out". The readiness check looks at the cluster each round, about every
//! second (metadata:
//! each partition's in-sync replicas; a TCP connect to each broker, since a cluster that lost its
//! controller quorum keeps listing dead brokers as in sync), and the producer refuses at once,
//! saying why, a write to a partition that has too few in-sync replicas that answer.

use super::client::KafkaLogs;
use parking_lot::RwLock;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a look at the cluster may take to fetch metadata.
const METADATA_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a broker may take to accept a TCP connection before it counts as down.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// An observation older than this is not acted on: writes are then tried, as without one. The
/// readiness check takes up to a few seconds a round while brokers are unreachable (a metadata
/// request and a watermark request, each up to 2 s), so this covers its slowest rounds.
const FRESH_FOR: Duration = Duration::from_secs(10);

/// Why a partition cannot take a write now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaShortage {
    /// The partition.
    pub partition: i32,
    /// Its in-sync replicas that answer.
    pub in_sync: usize,
    /// How many must hold a write before Kafka acknowledges it (`min.insync.replicas`).
    pub required: usize,
    /// Brokers that answer.
    pub brokers_up: usize,
    /// Brokers the cluster lists (as metadata last listed them, when none answers).
    pub brokers: usize,
}

impl ReplicaShortage {
    /// Whether no broker answers at all (an outage, rather than a cluster short of replicas).
    pub fn no_broker_answers(&self) -> bool {
        self.brokers_up == 0
    }
}

impl fmt::Display for ReplicaShortage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.no_broker_answers() {
            return write!(f, "no broker of the event log answers");
        }
        write!(
            f,
            "not enough in-sync replicas: partition {} has {} in-sync replica(s) that answer, and \
             the topic requires {} (min.insync.replicas) before Kafka acknowledges a write; {} of \
             {} brokers answer",
            self.partition, self.in_sync, self.required, self.brokers_up, self.brokers
        )
    }
}

/// What one look at the cluster found.
#[derive(Debug)]
enum Observation {
    /// Metadata answered: each partition's in-sync replicas that answer.
    Seen {
        in_sync: BTreeMap<i32, usize>,
        brokers_up: usize,
        brokers: usize,
    },
    /// No broker accepts a connection.
    NoBrokerAnswers { brokers: usize },
}

/// The latest look at the cluster, shared by the readiness check (which takes it) and the
/// producer (which acts on it). Cheap to clone.
#[derive(Clone)]
pub struct ClusterHealth {
    required: usize,
    latest: Arc<RwLock<Option<(Instant, Observation)>>>,
    /// The brokers' addresses as metadata last listed them: tried, with the bootstrap servers,
    /// when metadata cannot be fetched.
    known_brokers: Arc<RwLock<Vec<String>>>,
}

impl ClusterHealth {
    /// A view with nothing observed yet, for a topic whose writes need `min_insync_replicas`.
    pub fn new(min_insync_replicas: i32) -> Self {
        Self {
            required: usize::try_from(min_insync_replicas.max(1)).unwrap_or(1),
            latest: Arc::new(RwLock::new(None)),
            known_brokers: Arc::default(),
        }
    }

    /// Looks at the cluster through `consumer`: `topic`'s metadata, and whether each broker
    /// accepts a connection. When metadata cannot be fetched, `bootstrap`'s addresses and the
    /// brokers metadata listed last are tried: only when none answers is the cluster taken to be
    /// down. A blocking call.
    pub fn observe(&self, consumer: &BaseConsumer<KafkaLogs>, topic: &str, bootstrap: &str) {
        let observation = match consumer.fetch_metadata(Some(topic), METADATA_TIMEOUT) {
            Ok(metadata) => {
                let brokers = metadata.brokers();
                *self.known_brokers.write() = brokers
                    .iter()
                    .map(|broker| format!("{}:{}", broker.host(), broker.port()))
                    .collect();
                let up: BTreeSet<i32> = brokers
                    .iter()
                    .filter(|broker| answers(&format!("{}:{}", broker.host(), broker.port())))
                    .map(|broker| broker.id())
                    .collect();
                let in_sync = metadata
                    .topics()
                    .iter()
                    .flat_map(|topic| topic.partitions())
                    .map(|partition| {
                        let answering = partition
                            .isr()
                            .iter()
                            .filter(|replica| up.contains(replica))
                            .count();
                        (partition.id(), answering)
                    })
                    .collect();
                Observation::Seen {
                    in_sync,
                    brokers_up: up.len(),
                    brokers: brokers.len(),
                }
            }
            Err(_) => {
                let mut addresses: BTreeSet<String> = bootstrap
                    .split(',')
                    .map(|address| address.trim().to_owned())
                    .collect();
                addresses.extend(self.known_brokers.read().iter().cloned());
                if addresses.iter().any(|address| answers(address)) {
                    // Reachable but slow to answer: nothing is known, nothing is refused.
                    *self.latest.write() = None;
                    return;
                }
                Observation::NoBrokerAnswers {
                    brokers: self.known_brokers.read().len(),
                }
            }
        };
        *self.latest.write() = Some((Instant::now(), observation));
    }

    /// Why `partition` cannot take a write now, when the latest look (no older than a few
    /// seconds) says so.
    pub fn shortage(&self, partition: i32) -> Option<ReplicaShortage> {
        let latest = self.latest.read();
        let (at, observation) = latest.as_ref()?;
        if at.elapsed() > FRESH_FOR {
            return None;
        }
        let shortage = match observation {
            Observation::NoBrokerAnswers { brokers } => ReplicaShortage {
                partition,
                in_sync: 0,
                required: self.required,
                brokers_up: 0,
                brokers: *brokers,
            },
            Observation::Seen {
                in_sync,
                brokers_up,
                brokers,
            } => ReplicaShortage {
                partition,
                // A partition metadata does not list yet is left to Kafka.
                in_sync: *in_sync.get(&partition)?,
                required: self.required,
                brokers_up: *brokers_up,
                brokers: *brokers,
            },
        };
        (shortage.in_sync < shortage.required).then_some(shortage)
    }
}

/// Whether something accepts a TCP connection at `address` (`host:port`), at any address the
/// name resolves to.
fn answers(address: &str) -> bool {
    address.to_socket_addrs().is_ok_and(|mut resolved| {
        resolved.any(|resolved| TcpStream::connect_timeout(&resolved, CONNECT_TIMEOUT).is_ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(health: &ClusterHealth, in_sync: &[(i32, usize)], brokers_up: usize) {
        *health.latest.write() = Some((
            Instant::now(),
            Observation::Seen {
                in_sync: in_sync.iter().copied().collect(),
                brokers_up,
                brokers: 3,
            },
        ));
    }

    #[test]
    fn a_partition_short_of_in_sync_replicas_is_refused_and_says_why() {
        let health = ClusterHealth::new(2);
        assert_eq!(
            health.shortage(0),
            None,
            "nothing observed: writes are tried"
        );
        seen(&health, &[(0, 2), (1, 1)], 2);
        assert_eq!(health.shortage(0), None);
        let shortage = health.shortage(1).unwrap();
        assert_eq!((shortage.in_sync, shortage.required), (1, 2));
        assert!(shortage.to_string().contains("not enough in-sync replicas"));
        assert_eq!(
            health.shortage(7),
            None,
            "unknown partitions are left to Kafka"
        );
    }

    #[test]
    fn an_old_observation_is_not_acted_on() {
        let health = ClusterHealth::new(2);
        *health.latest.write() = Some((
            Instant::now() - FRESH_FOR - Duration::from_millis(1),
            Observation::NoBrokerAnswers { brokers: 3 },
        ));
        assert_eq!(health.shortage(0), None);
    }

    #[test]
    fn no_broker_answering_is_an_outage() {
        let health = ClusterHealth::new(1);
        *health.latest.write() =
            Some((Instant::now(), Observation::NoBrokerAnswers { brokers: 1 }));
        let shortage = health.shortage(3).unwrap();
        assert!(shortage.no_broker_answers());
        assert_eq!(shortage.to_string(), "no broker of the event log answers");
    }

    #[test]
    fn nothing_listening_does_not_answer() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        assert!(answers(&address));
        drop(listener);
        assert!(!answers(&address));
        assert!(!answers("not an address"));
    }
}
