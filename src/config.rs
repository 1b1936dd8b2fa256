//! Typed settings for every command, from flags with environment-variable equivalents.

use crate::auth::keys_tool::KeysAction;
use crate::auth::Scope;
use crate::log::EventLogSettings;
use crate::read_model::FlushPolicy;
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The command line of the `customer-registry` binary.
#[derive(Debug, Parser)]
#[command(name = "customer-registry", version, about)]
pub struct Cli {
    /// How log lines are written to stderr: `text` for people, `json` (one object a line) for
    /// log shippers.
    #[arg(long, env = "REGISTRY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text,
          global = true)]
    pub log_format: LogFormat,

    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The form of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text an event (colours on a terminal).
    Text,
    /// One JSON object an event: `timestamp`, `level`, `fields` (`message` among them), `target`.
    Json,
}

/// The binary's subcommands. Tools exit 0 on success, 1 on drift (`audit`), 2 on error.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API and project the event log into the read model.
    Serve(ServeSettings),
    /// Build a fresh read model from offset 0 beside the live one and swap it in atomically.
    Rebuild(ToolSettings),
    /// Replay the log independently and compare it with the read model, customer by customer.
    Audit(ToolSettings),
    /// The registry as it stood at a moment, from the log alone, as JSON Lines or CSV.
    Export(ExportSettings),
    /// Write a snapshot of a read model (a running `serve`'s too) to a file, for new replicas to
    /// start from (`serve --restore-from`).
    Snapshot(SnapshotSettings),
    /// Copy the log into a new topic with another partition count, each customer's events in
    /// order on the partition the new count gives it; resumable, and checked against the source.
    Repartition(RepartitionSettings),
    /// List the erasures (a ledger without personal data), as the keys topic records them: each
    /// request, its customer, when, and whether the customer's keys are destroyed and gone from
    /// the brokers' storage.
    Erasures(ErasuresSettings),
    /// Copy a log into a new topic with every personal field sealed (contract v2), so that
    /// erasure covers the customers written before encryption; resumable, and checked against
    /// the source.
    Migrate(MigrateSettings),
    /// Read the event log as downstream consumers receive it.
    Events {
        /// What to do with the log.
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Manage the API key file that `serve --api-keys` reads.
    Keys {
        /// What to do with the key file.
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Manage the file of key-encryption keys, which wrap each customer's data key.
    Kek {
        /// What to do with the KEK file.
        #[command(subcommand)]
        command: KekCommand,
    },
}

/// Subcommands of `customer-registry kek`.
#[derive(Debug, Subcommand)]
pub enum KekCommand {
    /// Append a new random KEK to the file (created, mode 0600, when missing) and print its id.
    /// The newest KEK wraps new data keys; the older ones still unwrap theirs (rotation).
    Add(KekFileArgs),
}

/// The KEK file a `kek` subcommand works on.
#[derive(Debug, Clone, Args)]
pub struct KekFileArgs {
    /// The file of key-encryption keys (JSON Lines of id, key, createdAt; never in Kafka).
    #[arg(long, env = "REGISTRY_KEK_FILE")]
    pub file: PathBuf,
}

/// Subcommands of `customer-registry keys`. A running `serve` picks changes up by itself.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a random key, append its hash to the file, and print the key on the last line of
    /// stdout (the only time it is shown).
    Add(KeysAddSettings),
    /// Show each key's name and scope (never the keys, which the file does not hold).
    List(KeyFileSettings),
    /// Remove a key from the file.
    Revoke(KeysRevokeSettings),
}

impl KeysCommand {
    /// What the subcommand asks, as the keys tool takes it.
    pub fn action(&self) -> KeysAction {
        match self {
            KeysCommand::Add(settings) => KeysAction::Add {
                file: settings.file.clone(),
                name: settings.name.clone(),
                scope: if settings.admin {
                    Scope::Admin
                } else {
                    Scope::accounts(settings.accounts.clone())
                },
            },
            KeysCommand::List(settings) => KeysAction::List {
                file: settings.file.clone(),
                json: settings.json,
            },
            KeysCommand::Revoke(settings) => KeysAction::Revoke {
                file: settings.file.clone(),
                name: settings.name.clone(),
            },
        }
    }
}

/// The key file a `keys` subcommand works on.
#[derive(Debug, Clone, Args)]
pub struct KeyFileSettings {
    /// The API key file (JSON Lines of name, SHA-256 and scope).
    #[arg(long, env = "REGISTRY_API_KEYS")]
    pub file: PathBuf,

    /// Print one JSON object a key instead of a table (`list` only).
    #[arg(long)]
    pub json: bool,
}

/// Settings of `customer-registry keys add`.
#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("scope").required(true).args(["accounts", "admin"])))]
pub struct KeysAddSettings {
    /// The API key file; created (mode 0600) when missing.
    #[arg(long, env = "REGISTRY_API_KEYS")]
    pub file: PathBuf,

    /// The key's name: the `actor` of the events its requests cause.
    #[arg(long)]
    pub name: String,

    /// The accounts the key may reach, comma-separated (e.g. `42,43`).
    #[arg(long, value_delimiter = ',', num_args = 1.., value_parser = parse_account_id)]
    pub accounts: Vec<crate::domain::AccountId>,

    /// The key may reach every account and the admin endpoints.
    #[arg(long)]
    pub admin: bool,
}

/// Settings of `customer-registry keys revoke`.
#[derive(Debug, Clone, Args)]
pub struct KeysRevokeSettings {
    /// The API key file.
    #[arg(long, env = "REGISTRY_API_KEYS")]
    pub file: PathBuf,

    /// The name of the key to remove.
    #[arg(long)]
    pub name: String,
}

fn parse_account_id(text: &str) -> Result<crate::domain::AccountId, String> {
    let number: i64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not an account id"))?;
    crate::domain::AccountId::parse(number)
        .map_err(|_| format!("an account id is in 1..={}", crate::domain::AccountId::MAX))
}

/// Subcommands of `customer-registry events`.
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Print events as JSON Lines as they arrive, with partition, offset and timestamp.
    Tail(TailSettings),
}

/// Settings shared by the replay tools: where the log is, where the read model is, how to report.
#[derive(Debug, Clone, Args)]
pub struct ToolSettings {
    /// The event log.
    #[command(flatten)]
    pub event_log: EventLogArgs,

    /// The file of key-encryption keys, to open sealed events (schema version 2). Without it,
    /// each sealed event that carries personal fields is counted unreadable.
    #[arg(long, env = "REGISTRY_KEK_FILE")]
    pub kek_file: Option<PathBuf>,

    /// Directory of the sled read model.
    #[arg(long, env = "REGISTRY_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Print the result as one JSON object, for machines.
    #[arg(long)]
    pub json: bool,
}

/// Output formats of `export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// One customer JSON object per line.
    Jsonl,
    /// A header row, then one row per customer.
    Csv,
}

/// Settings of `customer-registry export`.
#[derive(Debug, Clone, Args)]
pub struct ExportSettings {
    /// Log, data dir and report format.
    #[command(flatten)]
    pub tool: ToolSettings,

    /// Only events written at or before this moment (RFC 3339).
    #[arg(long, conflicts_with = "until")]
    pub as_of: Option<chrono::DateTime<chrono::Utc>>,

    /// Only events before this log position (`partition:offset,...`, as X-Log-Position gives it;
    /// partitions it leaves out are not read).
    #[arg(long)]
    pub until: Option<String>,

    /// Output format.
    #[arg(long, value_enum, default_value = "jsonl")]
    pub format: ExportFormat,

    /// Write here instead of stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// Settings of `customer-registry erasures`.
#[derive(Debug, Clone, Args)]
pub struct ErasuresSettings {
    /// The event log (its keys topic is read).
    #[command(flatten)]
    pub event_log: EventLogArgs,

    /// Print one JSON object per erasure, for machines.
    #[arg(long)]
    pub json: bool,
}

/// Settings of `customer-registry snapshot`.
#[derive(Debug, Clone, Args)]
pub struct SnapshotSettings {
    /// The data dir whose read model to snapshot; a `serve` may be running on it.
    #[arg(long, env = "REGISTRY_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// The file to write (replaced only once the snapshot is whole).
    #[arg(long)]
    pub out: PathBuf,

    /// Print the result as one JSON object, for machines.
    #[arg(long)]
    pub json: bool,
}

/// Settings of `customer-registry repartition`.
#[derive(Debug, Clone, Args)]
pub struct RepartitionSettings {
    /// The cluster, the topics and the report.
    #[command(flatten)]
    pub copy: CopyArgs,

    /// Partitions of the new topic; its customers are routed over all of them.
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=10_000))]
    pub partitions: i32,
}

/// What `repartition` and `migrate` share: a copy of one topic into a new one.
#[derive(Debug, Clone, Args)]
pub struct CopyArgs {
    /// Kafka bootstrap servers, comma-separated host:port.
    #[arg(
        long,
        env = "REGISTRY_KAFKA_BOOTSTRAP",
        default_value = "127.0.0.1:9092"
    )]
    pub kafka_bootstrap: String,

    /// The topic to copy.
    #[arg(long)]
    pub from: String,

    /// The topic to copy into: created when missing; a copy that stopped part-way resumes.
    #[arg(long)]
    pub to: String,

    /// Replication factor of the new topic; by default as many replicas as the cluster has
    /// brokers, up to three.
    #[arg(long, env = "REGISTRY_TOPIC_REPLICATION",
          value_parser = clap::value_parser!(i32).range(1..=16))]
    pub topic_replication: Option<i32>,

    /// Print the result as one JSON object, for machines.
    #[arg(long)]
    pub json: bool,

    /// Fault injection for the crash tests: abort the process (no flush) once this many records
    /// were sent.
    #[arg(long, env = "REGISTRY_TEST_CRASH_AFTER", hide = true)]
    pub test_crash_after: Option<u64>,
}

impl CopyArgs {
    /// The settings of `topic` on this cluster, created with `partitions` partitions.
    pub fn topic(&self, topic: &str, partitions: i32) -> EventLogSettings {
        EventLogSettings {
            kafka_bootstrap: self.kafka_bootstrap.clone(),
            topic: topic.to_owned(),
            topic_partitions: partitions,
            topic_replication: self.topic_replication,
        }
    }
}

/// Settings of `customer-registry migrate`.
#[derive(Debug, Clone, Args)]
pub struct MigrateSettings {
    /// The cluster, the topics (the new one gets the source's partitioning, and a keys topic)
    /// and the report.
    #[command(flatten)]
    pub copy: CopyArgs,

    /// Seal every personal field on the way (the migration this command makes: required, so
    /// that the command line says it).
    #[arg(long, required = true)]
    pub encrypt: bool,

    /// The file of key-encryption keys: the newest wraps the data keys minted for the copy.
    #[arg(long, env = "REGISTRY_KEK_FILE")]
    pub kek_file: PathBuf,
}

/// Settings of `customer-registry events tail`.
#[derive(Debug, Clone, Args)]
pub struct TailSettings {
    /// The event log.
    #[command(flatten)]
    pub event_log: EventLogArgs,

    /// The file of key-encryption keys, to print sealed events (schema version 2) opened.
    /// Without it they are printed as written, their personal fields sealed.
    #[arg(long, env = "REGISTRY_KEK_FILE")]
    pub kek_file: Option<PathBuf>,

    /// Start at offset 0 instead of the end.
    #[arg(long)]
    pub from_beginning: bool,

    /// Only events about customers of this account.
    #[arg(long)]
    pub account: Option<u32>,

    /// Only events of this type (e.g. `CustomerCreated`).
    #[arg(long = "type")]
    pub event_type: Option<String>,
}

impl TailSettings {
    /// Whether a record's value passes `--account` and `--type`.
    pub fn wants(&self, event: &serde_json::Value) -> bool {
        let account_ok = self
            .account
            .is_none_or(|account| event["data"]["accountId"].as_u64() == Some(u64::from(account)));
        let type_ok = self
            .event_type
            .as_deref()
            .is_none_or(|wanted| event["eventType"].as_str() == Some(wanted));
        account_ok && type_ok
    }
}

/// Where the event log lives: the Kafka cluster and the topic (flags of every command that reads
/// or writes it; [`EventLogArgs::settings`] gives the log its own settings).
#[derive(Debug, Clone, Args)]
pub struct EventLogArgs {
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
    /// Each customer's events go to one of them, for the life of the topic: the count is recorded
    /// on every record, and partitions added later receive nothing (see `repartition`). Twelve
    /// leaves room to spread consumers of the topic over up to twelve processes.
    #[arg(long, env = "REGISTRY_TOPIC_PARTITIONS", default_value_t = 12,
          value_parser = clap::value_parser!(i32).range(1..=10_000))]
    pub topic_partitions: i32,

    /// Replication factor of the topic when the registry creates it; by default as many replicas
    /// as the cluster has brokers, up to three.
    #[arg(long, env = "REGISTRY_TOPIC_REPLICATION",
          value_parser = clap::value_parser!(i32).range(1..=16))]
    pub topic_replication: Option<i32>,
}

impl EventLogArgs {
    /// The event log's settings, as `log` takes them.
    pub fn settings(&self) -> EventLogSettings {
        EventLogSettings {
            kafka_bootstrap: self.kafka_bootstrap.clone(),
            topic: self.topic.clone(),
            topic_partitions: self.topic_partitions,
            topic_replication: self.topic_replication,
        }
    }
}

/// Settings of `customer-registry serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeSettings {
    /// Address the HTTP API listens on (port 0 picks a free port and logs it).
    #[arg(long, env = "REGISTRY_LISTEN", default_value = crate::http::server::DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// A second address serving only `GET /metrics`, to anyone who reaches it (no key). Without
    /// it, `/metrics` on `--listen` answers loopback clients and admin keys only.
    #[arg(long, env = "REGISTRY_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// The API key file (see `customer-registry keys add`); requests then need
    /// `Authorization: Bearer <key>`. Read again on SIGHUP and when it changes.
    #[arg(long, env = "REGISTRY_API_KEYS")]
    pub api_keys: Option<PathBuf>,

    /// Serve without authentication: anyone who reaches the port may read and write every
    /// account. Only for local development; `serve` refuses to start with neither this nor
    /// `--api-keys`. In the environment: `1`, `true`, `yes` or `on` (`0`, `false`, ... for off).
    #[arg(long, env = "REGISTRY_NO_AUTH", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_auth: bool,

    /// The event log.
    #[command(flatten)]
    pub event_log: EventLogArgs,

    /// The file of key-encryption keys (see `customer-registry kek add`): events are written
    /// with their personal fields sealed under per-customer data keys, which it wraps. `serve`
    /// refuses to start with neither this nor `--no-encryption`.
    #[arg(long, env = "REGISTRY_KEK_FILE")]
    pub kek_file: Option<PathBuf>,

    /// Write events in plain text (schema version 1), for experiments: nothing can then be
    /// erased (an erasure answers 409). In the environment: `1`, `true`, `yes` or `on`.
    #[arg(long, env = "REGISTRY_NO_ENCRYPTION", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_encryption: bool,

    /// Directory of the sled read model (created when missing).
    #[arg(long, env = "REGISTRY_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// A snapshot (`customer-registry snapshot`) to start from when the data dir holds no read
    /// model yet: restored, checked against the topic and cluster, then caught up from its
    /// offsets. Ignored, with a line in the log, when the data dir holds a read model already.
    #[arg(long, env = "REGISTRY_RESTORE_FROM")]
    pub restore_from: Option<PathBuf>,

    /// How long a create waits for this replica's projection to apply its event before answering,
    /// and how long a read waits for the position in `X-Min-Log-Position`.
    #[arg(long, env = "REGISTRY_PROJECTION_WAIT_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub projection_wait_ms: u64,

    /// How often the projector looks for partitions added to the topic.
    #[arg(long, env = "REGISTRY_PARTITION_CHECK_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub partition_check_ms: u64,

    /// Most HTTP connections open at once; more wait in the listen backlog.
    #[arg(long, env = "REGISTRY_MAX_CONNECTIONS", default_value_t = 1_024,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,

    /// Most requests answered at once (probes and /metrics aside); past it, 503 at once.
    #[arg(long, env = "REGISTRY_MAX_IN_FLIGHT", default_value_t = 512,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_in_flight: u64,

    /// Most requests answered at once for one API key (by the Authorization header sent);
    /// past it, 429 at once.
    #[arg(long, env = "REGISTRY_MAX_IN_FLIGHT_PER_KEY", default_value_t = 128,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_in_flight_per_key: u64,

    /// How long a request's head may take to arrive, and an idle connection may stay open.
    #[arg(long, env = "REGISTRY_HEADER_READ_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub header_read_timeout_ms: u64,

    /// How long a request's body may take to arrive once its head has; past it, 408.
    #[arg(long, env = "REGISTRY_BODY_READ_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub body_read_timeout_ms: u64,

    /// How long a request may take before it is answered 503.
    #[arg(long, env = "REGISTRY_REQUEST_DEADLINE_MS", default_value_t = 40_000,
          value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub request_deadline_ms: u64,

    /// `/readyz` answers 503 while the projection trails the log's end by more records than this.
    #[arg(long, env = "REGISTRY_READY_MAX_LAG", default_value_t = 1_000)]
    pub ready_max_lag: u64,

    /// The read model commits what it applied once this many customers changed...
    #[arg(long, env = "REGISTRY_FLUSH_CHANGES", default_value_t = 50_000,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub flush_changes: u64,

    /// ... or this long after the first change not yet committed: what a restart replays.
    #[arg(long, env = "REGISTRY_FLUSH_INTERVAL_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub flush_interval_ms: u64,

    /// Fault injection for the crash tests: pause this long before each commit of the read model.
    #[arg(
        long,
        env = "REGISTRY_TEST_FLUSH_PAUSE_MS",
        default_value_t = 0,
        hide = true
    )]
    pub test_flush_pause_ms: u64,
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

    /// The bounds of the HTTP server.
    pub fn server_limits(&self) -> crate::http::server::Limits {
        crate::http::server::Limits {
            max_connections: self.max_connections as usize,
            max_in_flight: self.max_in_flight as usize,
            max_in_flight_per_key: self.max_in_flight_per_key as usize,
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
            body_read_timeout: Duration::from_millis(self.body_read_timeout_ms),
            request_deadline: Duration::from_millis(self.request_deadline_ms),
        }
    }

    /// When the read model commits what it applied.
    pub fn flush_policy(&self) -> FlushPolicy {
        FlushPolicy {
            changes: self.flush_changes as usize,
            interval: Duration::from_millis(self.flush_interval_ms),
            pause_before_commit: Duration::from_millis(self.test_flush_pause_ms),
            replay: false,
        }
    }
}
