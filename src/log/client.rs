//! What librdkafka says about itself, kept out of the service's log at info level. During a
//! broker outage it reports every failed reconnect of every client, several lines a second; the
//! registry reports the outage itself, once when it starts, then less and less often, and once
//! when it ends ([`OutageLog`]). librdkafka's own lines stay available at debug level (target
//! `librdkafka`).

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use std::time::{Duration, Instant};

/// The settings every Kafka client of the service starts from: the brokers, and a reconnect
/// backoff of at most a second (librdkafka's default grows to 10 s, which kept clients away for
/// seconds after a broker's return) with a fast metadata refresh to find partitions' new leaders.
pub fn client_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("reconnect.backoff.max.ms", "1000")
        .set("topic.metadata.refresh.fast.interval.ms", "100");
    config
}

/// [`client_config`] for a consumer that reads logs through: one whose local queue is full
/// fetches again after 10 ms rather than librdkafka's 1 s, which left such readers idle (one that
/// drained its 64 MiB queue in a third of a second waited out the rest of the second: reading a
/// keys topic of 300,000 records took 2.2 s).
pub fn reader_config(bootstrap: &str) -> ClientConfig {
    let mut config = client_config(bootstrap);
    config.set("fetch.queue.backoff.ms", "10");
    config
}

/// Whether `error` says a partition's leadership is in flux, or that the client's metadata does
/// not know a topic just created yet: both pass by themselves, so a caller asks again within its
/// own bound.
pub fn leader_moving(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::NotLeaderForPartition
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::UnknownPartition
                | RDKafkaErrorCode::UnknownTopic
        )
    )
}

/// The client context of every Kafka client the service runs: librdkafka's logs and errors at
/// debug level.
#[derive(Clone, Copy, Debug, Default)]
pub struct KafkaLogs;

impl ClientContext for KafkaLogs {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        tracing::debug!(target: "librdkafka", ?level, facility, "{message}");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(target: "librdkafka", %error, reason);
    }
}

impl ConsumerContext for KafkaLogs {}

/// The first repeat of an outage's log line comes this long after it began; each next one twice
/// as long after the last, up to [`MAX_REPEAT`].
const FIRST_REPEAT: Duration = Duration::from_secs(1);
/// The longest silence while an outage lasts.
const MAX_REPEAT: Duration = Duration::from_secs(60);

/// Logs an outage of `what` (one line when it starts, repeats with exponential backoff saying
/// since when and how many failures, one line when it ends), however often it is told of a
/// failure.
pub struct OutageLog {
    what: &'static str,
    down: Option<Outage>,
}

struct Outage {
    since: Instant,
    since_utc: chrono::DateTime<chrono::Utc>,
    failures: u64,
    next_line: Instant,
    repeat: Duration,
}

impl OutageLog {
    /// A log of outages of `what` (e.g. "the event log").
    pub fn new(what: &'static str) -> Self {
        Self { what, down: None }
    }

    /// A failure: logged when it starts an outage, or when the backoff allows a repeat.
    pub fn failed(&mut self, error: &dyn std::fmt::Display) {
        let what = self.what;
        let now = Instant::now();
        match &mut self.down {
            None => {
                tracing::warn!(%error, "{what} is unreachable; retrying");
                self.down = Some(Outage {
                    since: now,
                    since_utc: chrono::Utc::now(),
                    failures: 1,
                    next_line: now + FIRST_REPEAT,
                    repeat: FIRST_REPEAT,
                });
            }
            Some(outage) => {
                outage.failures += 1;
                if now >= outage.next_line {
                    tracing::warn!(
                        %error,
                        down_since = %outage.since_utc.to_rfc3339(),
                        failures = outage.failures,
                        "{what} is still unreachable"
                    );
                    outage.repeat = (outage.repeat * 2).min(MAX_REPEAT);
                    outage.next_line = now + outage.repeat;
                }
            }
        }
    }

    /// A success: ends an outage, if one was under way, with one line.
    pub fn recovered(&mut self) {
        if let Some(outage) = self.down.take() {
            let what = self.what;
            tracing::info!(
                down_for_ms = outage.since.elapsed().as_millis() as u64,
                failures = outage.failures,
                "{what} is reachable again"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_one_state_however_many_failures_it_sees() {
        let mut log = OutageLog::new("the event log");
        for _ in 0..1_000 {
            log.failed(&"connection refused");
        }
        let outage = log.down.as_ref().unwrap();
        assert_eq!(outage.failures, 1_000);
        assert_eq!(
            outage.repeat, FIRST_REPEAT,
            "no repeat within the first second"
        );
        log.recovered();
        assert!(log.down.is_none());
    }

    #[test]
    fn a_partition_whose_leader_is_moving_is_asked_again_and_other_errors_are_not() {
        for moving in [
            RDKafkaErrorCode::NotLeaderForPartition,
            RDKafkaErrorCode::LeaderNotAvailable,
            RDKafkaErrorCode::UnknownTopicOrPartition,
            RDKafkaErrorCode::UnknownPartition,
            RDKafkaErrorCode::UnknownTopic,
        ] {
            assert!(leader_moving(&KafkaError::MetadataFetch(moving)));
        }
        assert!(!leader_moving(&KafkaError::MetadataFetch(
            RDKafkaErrorCode::BrokerTransportFailure
        )));
        assert!(!leader_moving(&KafkaError::Canceled));
    }
}
