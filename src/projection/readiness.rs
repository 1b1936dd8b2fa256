//! Whether this replica should be sent traffic: its projection has applied what the log held at
//! start, it trails the log's end by at most a bound, and the brokers answer. A background task
//! reads the log's end every second; `/readyz` reports its last verdict.

use super::ProjectionProgress;
use crate::log::{client_config, ClusterHealth, KafkaLogs};
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::Serialize;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often the log's end is read.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long one partition's watermarks may take to read.
const WATERMARK_TIMEOUT: Duration = Duration::from_secs(2);
/// A verdict older than this (the checker stalled) counts as not ready.
const STALE_AFTER: Duration = Duration::from_secs(10);

/// What `/readyz` answers.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the replica is ready.
    pub ready: bool,
    /// Why not, for a person.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Records of the log not yet applied, summed over partitions, when the log's end is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag: Option<i64>,
    /// The same, partition by partition (for metrics), when the log's end is known.
    #[serde(skip)]
    pub partition_lag: Vec<(i32, i64)>,
}

/// A cloneable view of the latest verdict.
#[derive(Clone)]
pub struct Readiness {
    latest: watch::Receiver<(Verdict, Instant)>,
}

impl Readiness {
    /// Waits until a check finds the replica ready (at once if the checker has stopped).
    pub async fn ready(&self) {
        let mut latest = self.latest.clone();
        let _ = latest.wait_for(|(verdict, _)| verdict.ready).await;
    }

    /// The latest verdict; not ready when the checker has not spoken for a while.
    pub fn verdict(&self) -> Verdict {
        let (verdict, at) = self.latest.borrow().clone();
        if at.elapsed() > STALE_AFTER {
            return not_ready("the readiness check has not run for over 10 s", None);
        }
        verdict
    }
}

/// Starts checking `topic`'s end against `progress` in the background, until `stop` turns true.
/// Ready means caught up with the log end seen at start and at most `max_lag` records behind.
/// Each check first looks at the cluster for `health` (which partitions can take writes).
///
/// # Errors
/// [`rdkafka::error::KafkaError`] when the checker's client cannot be created.
pub fn spawn(
    bootstrap: &str,
    topic: &str,
    progress: ProjectionProgress,
    max_lag: u64,
    health: ClusterHealth,
    mut stop: watch::Receiver<bool>,
) -> Result<Readiness, rdkafka::error::KafkaError> {
    let bootstrap = bootstrap.to_owned();
    let mut consumer = Some(checker_client(&bootstrap)?);
    let topic = topic.to_owned();
    let first = not_ready("not checked yet", None);
    let (publish, latest) = watch::channel((first, Instant::now()));
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(CHECK_EVERY);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
            let (bootstrap, topic, progress, health) = (
                bootstrap.clone(),
                topic.clone(),
                progress.clone(),
                health.clone(),
            );
            let client = consumer.take();
            let checked = tokio::task::spawn_blocking(move || {
                let client = match client {
                    Some(client) => client,
                    None => match checker_client(&bootstrap) {
                        Ok(client) => client,
                        Err(error) => {
                            let reason = format!("cannot create a Kafka client: {error}");
                            return (None, not_ready(&reason, None));
                        }
                    },
                };
                health.observe(&client, &topic, &bootstrap);
                let verdict = check(&client, &topic, &progress, max_lag);
                // A client whose check failed is replaced: librdkafka can keep a stale view of the
                // topic from a broker that was restarting (a partition "unknown" for minutes).
                let keep = verdict.lag.is_some().then_some(client);
                (keep, verdict)
            })
            .await;
            let Ok((client, verdict)) = checked else {
                return;
            };
            consumer = client;
            publish.send_replace((verdict, Instant::now()));
        }
    });
    Ok(Readiness { latest })
}

/// The checker's own Kafka client.
fn checker_client(bootstrap: &str) -> Result<BaseConsumer<KafkaLogs>, rdkafka::error::KafkaError> {
    client_config(bootstrap)
        .set("group.id", "customer-registry.readiness")
        .set("enable.auto.commit", "false")
        .set("allow.auto.create.topics", "false")
        .create_with_context(KafkaLogs)
}

/// One check: the log's end per partition, against what the projection has applied.
/// The low and high watermarks of `partition` (a failpoint, `log-offset-read`, fails it in tests).
fn watermarks(
    consumer: &BaseConsumer<KafkaLogs>,
    topic: &str,
    partition: i32,
) -> rdkafka::error::KafkaResult<(i64, i64)> {
    fail::fail_point!("log-offset-read", |_| Err(
        rdkafka::error::KafkaError::MetadataFetch(
            rdkafka::error::RDKafkaErrorCode::BrokerTransportFailure
        )
    ));
    consumer.fetch_watermarks(topic, partition, WATERMARK_TIMEOUT)
}

fn check(
    consumer: &BaseConsumer<KafkaLogs>,
    topic: &str,
    progress: &ProjectionProgress,
    max_lag: u64,
) -> Verdict {
    let applied = progress.position();
    let mut lag = 0i64;
    let mut partition_lag = Vec::new();
    for partition in progress.partitions() {
        match watermarks(consumer, topic, partition) {
            Ok((_, high)) => {
                let behind = (high - applied.next_offset(partition)).max(0);
                partition_lag.push((partition, behind));
                lag += behind;
            }
            Err(error) => {
                let reason = format!("the event log cannot be reached: {error}");
                return not_ready(&reason, None);
            }
        }
    }
    let reason = if !progress.is_caught_up() {
        Some("catching up with the log after a restart".to_owned())
    } else if lag > i64::try_from(max_lag).unwrap_or(i64::MAX) {
        Some(format!(
            "the projection trails the log by {lag} records (at most {max_lag})"
        ))
    } else {
        None
    };
    Verdict {
        ready: reason.is_none(),
        reason,
        lag: Some(lag),
        partition_lag,
    }
}

fn not_ready(reason: &str, lag: Option<i64>) -> Verdict {
    Verdict {
        ready: false,
        reason: Some(reason.to_owned()),
        lag,
        partition_lag: Vec::new(),
    }
}
