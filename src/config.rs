//! Typed settings for every command, from flags with environment-variable equivalents.

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The command line of the `customer-registry` binary.
#[derive(Debug, Parser)]
#[command(name = "customer-registry", version, about)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The binary's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API and project the event log into the read model.
    Serve(ServeSettings),
}

/// Where the event log lives: the Kafka cluster and the topic.
#[derive(Debug, Clone, Args)]
pub struct EventLogSettings {
    /// Kafka bootstrap servers, comma-separated host:port.
    #[arg(
        long,
        env = "REGISTRY_KAFKA_BOOTSTRAP",
        default_value = "127.0.0.1:9092"
    )]
    pub kafka_bootstrap: String,

    /// The topic holding the customer events.
    #[arg(long, env = "REGISTRY_TOPIC", default_value = "customers.events")]
    pub topic: String,

    /// Partitions of the topic when the registry creates it (an existing topic keeps its own).
    #[arg(long, env = "REGISTRY_TOPIC_PARTITIONS", default_value_t = 3,
          value_parser = clap::value_parser!(i32).range(1..=10_000))]
    pub topic_partitions: i32,

    /// Replication factor of the topic when the registry creates it.
    #[arg(long, env = "REGISTRY_TOPIC_REPLICATION", default_value_t = 1,
          value_parser = clap::value_parser!(i32).range(1..=16))]
    pub topic_replication: i32,
}

/// Settings of `customer-registry serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeSettings {
    /// Address the HTTP API listens on (port 0 picks a free port and logs it).
    #[arg(long, env = "REGISTRY_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// The event log.
    #[command(flatten)]
    pub event_log: EventLogSettings,

    /// Directory of the sled read model (created when missing).
    #[arg(long, env = "REGISTRY_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// How long a create waits for this replica's projection to apply its event before answering,
    /// and how long a read waits for the position in `X-Min-Log-Position`.
    #[arg(long, env = "REGISTRY_PROJECTION_WAIT_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub projection_wait_ms: u64,

    /// How often the projector looks for partitions added to the topic.
    #[arg(long, env = "REGISTRY_PARTITION_CHECK_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub partition_check_ms: u64,
}

impl ServeSettings {
    /// How often the projector looks for partitions added to the topic.
    pub fn partition_check(&self) -> Duration {
        Duration::from_millis(self.partition_check_ms)
    }

    /// The bound on a create's wait for its own event to reach the read model.
    pub fn projection_wait(&self) -> Duration {
        Duration::from_millis(self.projection_wait_ms)
    }
}
