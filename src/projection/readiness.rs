//! Whether this replica should be sent traffic: its projection has applied what the log held at
//! start, it trails the log's end by at most a bound, and the brokers answer. A background task
//! reads the log's end every second; `/readyz` reports its last verdict.

use super::ProjectionProgress;
use crate::log::{client_config, ClusterHealth, KafkaLogs, LogPosition};
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
        aged(verdict, at.elapsed())
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

/// One check: the log's end per partition, read now, against what the projection has applied
/// ([`judge`]); not ready when an end cannot be read.
fn check(
    consumer: &BaseConsumer<KafkaLogs>,
    topic: &str,
    progress: &ProjectionProgress,
    max_lag: u64,
) -> Verdict {
    let applied = progress.position();
    let mut ends = Vec::new();
    for partition in progress.partitions() {
        match watermarks(consumer, topic, partition) {
            Ok((_, high)) => ends.push((partition, high)),
            Err(error) => {
                let reason = format!("the event log cannot be reached: {error}");
                return not_ready(&reason, None);
            }
        }
    }
    judge(&ends, &applied, progress.is_caught_up(), max_lag)
}

/// The verdict on a projection at `applied`, given the log's end of each partition as read now
/// (`ends`, partition and high watermark), whether it has `caught_up` with the log end seen at
/// start, and the most records it may trail by (`max_lag`): ready when caught up and within the
/// bound. The lag is summed over partitions; a partition applied past the end read (the
/// projector got there between the two reads) trails by none.
fn judge(ends: &[(i32, i64)], applied: &LogPosition, caught_up: bool, max_lag: u64) -> Verdict {
    let partition_lag: Vec<(i32, i64)> = ends
        .iter()
        .map(|&(partition, high)| (partition, (high - applied.next_offset(partition)).max(0)))
        .collect();
    let lag: i64 = partition_lag.iter().map(|(_, behind)| behind).sum();
    let reason = if !caught_up {
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

/// `verdict` as it stands `age` after the check that gave it: not ready once that is over
/// [`STALE_AFTER`] (the checker stalled, and the verdict may no longer hold).
fn aged(verdict: Verdict, age: Duration) -> Verdict {
    if age > STALE_AFTER {
        return not_ready("the readiness check has not run for over 10 s", None);
    }
    verdict
}

/// A verdict of not ready, for `reason`, with `lag` when it is known.
fn not_ready(reason: &str, lag: Option<i64>) -> Verdict {
    Verdict {
        ready: false,
        reason: Some(reason.to_owned()),
        lag,
        partition_lag: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A projection that has applied partitions 0 and 1 up to 100 and 50.
    fn applied() -> LogPosition {
        LogPosition::from_next_offsets([(0, 100), (1, 50)].into())
    }

    #[test]
    fn a_replica_caught_up_and_within_the_lag_bound_is_ready() {
        let verdict = judge(&[(0, 103), (1, 52)], &applied(), true, 5);
        assert_eq!(
            verdict,
            Verdict {
                ready: true,
                reason: None,
                lag: Some(5),
                partition_lag: vec![(0, 3), (1, 2)],
            }
        );
    }

    #[test]
    fn a_replica_trailing_the_log_by_more_than_the_bound_is_not_ready() {
        let verdict = judge(&[(0, 103), (1, 53)], &applied(), true, 5);
        assert!(!verdict.ready);
        assert_eq!(verdict.lag, Some(6));
        assert!(verdict
            .reason
            .unwrap()
            .contains("trails the log by 6 records (at most 5)"));
    }

    #[test]
    fn a_replica_replaying_what_the_log_held_at_start_is_not_ready_whatever_its_lag() {
        let verdict = judge(&[(0, 100), (1, 50)], &applied(), false, 5);
        assert!(!verdict.ready);
        assert_eq!(verdict.lag, Some(0));
        assert_eq!(
            verdict.reason.as_deref(),
            Some("catching up with the log after a restart")
        );
    }

    #[test]
    fn a_partition_applied_past_the_end_read_trails_by_nothing_and_one_never_applied_by_all() {
        let verdict = judge(&[(0, 90), (2, 7)], &applied(), true, 10);
        assert_eq!(verdict.partition_lag, vec![(0, 0), (2, 7)]);
        assert_eq!(verdict.lag, Some(7));
        assert!(verdict.ready);
    }

    #[test]
    fn a_verdict_the_checker_has_not_renewed_for_over_10_s_is_not_ready() {
        let ready = judge(&[(0, 100)], &applied(), true, 5);
        assert_eq!(aged(ready.clone(), Duration::from_secs(10)), ready);
        let stale = aged(ready, Duration::from_secs(11));
        assert!(!stale.ready);
        assert_eq!(stale.lag, None);
    }
}
