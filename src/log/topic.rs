//! The topic is the source of truth, so it must never age out: the registry creates it with
//! unlimited retention and refuses to run on one that deletes or compacts old events.

use crate::config::EventLogSettings;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::ClientConfig;
use std::time::Duration;

/// How long start-up waits for the cluster to answer.
const REACH_TIMEOUT: Duration = Duration::from_secs(10);

/// Topic settings that keep every event forever.
const UNLIMITED_RETENTION: [(&str, &str); 3] = [
    ("retention.ms", "-1"),
    ("retention.bytes", "-1"),
    ("cleanup.policy", "delete"),
];

/// Why the topic could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// No broker answered.
    #[error(
        "cannot reach Kafka at {bootstrap} ({reason}); start a broker with `scripts/kafka.sh start`, \
         or point --kafka-bootstrap / REGISTRY_KAFKA_BOOTSTRAP at a running one"
    )]
    Unreachable {
        /// Where the registry looked.
        bootstrap: String,
        /// librdkafka's account of the failure.
        reason: KafkaError,
    },
    /// The broker answered but refused an admin request.
    #[error("Kafka refused to {action} topic {topic}: {reason}")]
    Refused {
        /// What was asked (`create`, `describe`).
        action: &'static str,
        /// The topic.
        topic: String,
        /// The broker's answer.
        reason: String,
    },
    /// The topic does not exist (and the caller must not create it).
    #[error("topic {0} does not exist on this cluster; check --topic / REGISTRY_TOPIC")]
    Missing(String),
    /// The topic exists but would lose events.
    #[error(
        "topic {topic} has {setting}={value}, so Kafka would delete events; the event log must keep \
         every event (retention.ms=-1, retention.bytes=-1, cleanup.policy=delete). Fix it with \
         kafka-configs --alter --entity-type topics --entity-name {topic} --add-config {setting}={wanted}"
    )]
    FiniteRetention {
        /// The topic.
        topic: String,
        /// The offending setting.
        setting: &'static str,
        /// Its current value.
        value: String,
        /// The value it needs.
        wanted: &'static str,
    },
}

/// The partitions of the registry's topic, once it is known to keep events forever.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicLayout {
    /// Partition ids, ascending.
    pub partitions: Vec<i32>,
    /// The Kafka cluster's id, so a read model can tell which cluster's log it projects.
    pub cluster_id: String,
}

/// A client context that stays silent: start-up reports one clear error itself instead of
/// librdkafka's stream of connection-refused lines.
struct Silent;

impl ClientContext for Silent {
    fn log(&self, _level: RDKafkaLogLevel, _facility: &str, _message: &str) {}
    fn error(&self, _error: KafkaError, _reason: &str) {}
}

/// Makes sure the registry's topic exists with unlimited retention, creating it when missing.
///
/// # Errors
/// [`TopicError::Unreachable`] when no broker answers within 10 s, [`TopicError::Refused`] when
/// the broker refuses to create or describe it, and [`TopicError::FiniteRetention`] when it exists
/// with settings that would delete events.
pub async fn ensure_topic(settings: &EventLogSettings) -> Result<TopicLayout, TopicError> {
    topic_layout(settings, Creation::CreateWhenMissing).await
}

/// The layout of the registry's topic, which must already exist: for the tools, which read the
/// log and must never create an empty one because of a mistyped `--topic`.
///
/// # Errors
/// [`TopicError::Missing`] when the topic does not exist, and the errors of [`ensure_topic`].
pub async fn existing_topic(settings: &EventLogSettings) -> Result<TopicLayout, TopicError> {
    topic_layout(settings, Creation::MustExist).await
}

/// Whether a missing topic is created.
#[derive(PartialEq, Eq)]
enum Creation {
    CreateWhenMissing,
    MustExist,
}

async fn topic_layout(
    settings: &EventLogSettings,
    creation: Creation,
) -> Result<TopicLayout, TopicError> {
    let topic = settings.topic.as_str();
    let unreachable = |reason| TopicError::Unreachable {
        bootstrap: settings.kafka_bootstrap.clone(),
        reason,
    };
    let admin: AdminClient<Silent> = ClientConfig::new()
        .set("bootstrap.servers", &settings.kafka_bootstrap)
        .create_with_context(Silent)
        .map_err(unreachable)?;
    let options = AdminOptions::new().request_timeout(Some(REACH_TIMEOUT));

    let mut partitions = partitions_of(&admin, topic).map_err(unreachable)?;
    if partitions.is_empty() && creation == Creation::MustExist {
        return Err(TopicError::Missing(topic.to_owned()));
    }
    if partitions.is_empty() {
        let mut new_topic = NewTopic::new(
            topic,
            settings.topic_partitions,
            TopicReplication::Fixed(settings.topic_replication),
        );
        for (key, value) in UNLIMITED_RETENTION {
            new_topic = new_topic.set(key, value);
        }
        let results = admin
            .create_topics([&new_topic], &options)
            .await
            .map_err(unreachable)?;
        for result in results {
            match result {
                Ok(_) => tracing::info!(topic, "created topic with unlimited retention"),
                // Another replica created it first: fine, its settings are checked below.
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => {
                    return Err(TopicError::Refused {
                        action: "create",
                        topic: topic.to_owned(),
                        reason: code.to_string(),
                    })
                }
            }
        }
        partitions = wait_for_partitions(&admin, topic)
            .await
            .map_err(unreachable)?;
    }

    check_retention(&admin, topic, &options).await?;
    let cluster_id = admin
        .inner()
        .fetch_cluster_id(REACH_TIMEOUT)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| TopicError::Refused {
            action: "describe the cluster of",
            topic: topic.to_owned(),
            reason: "the cluster id could not be read".into(),
        })?;
    Ok(TopicLayout {
        partitions,
        cluster_id,
    })
}

async fn check_retention(
    admin: &AdminClient<Silent>,
    topic: &str,
    options: &AdminOptions,
) -> Result<(), TopicError> {
    let refused = |reason: String| TopicError::Refused {
        action: "describe",
        topic: topic.to_owned(),
        reason,
    };
    let described = admin
        .describe_configs([&ResourceSpecifier::Topic(topic)], options)
        .await
        .map_err(|error| refused(error.to_string()))?;
    let resource = described
        .into_iter()
        .next()
        .ok_or_else(|| refused("no configuration returned".into()))?
        .map_err(|code| refused(code.to_string()))?;
    for (setting, wanted) in UNLIMITED_RETENTION {
        let value = resource
            .get(setting)
            .and_then(|entry| entry.value.clone())
            .unwrap_or_default();
        if value != wanted {
            return Err(TopicError::FiniteRetention {
                topic: topic.to_owned(),
                setting,
                value,
                wanted,
            });
        }
    }
    Ok(())
}

/// The topic's partitions from cluster metadata; empty when the topic does not exist.
fn partitions_of(admin: &AdminClient<Silent>, topic: &str) -> Result<Vec<i32>, KafkaError> {
    // A blocking call, made only at start-up, before the service takes requests.
    partitions_and_leadership(admin, topic).map(|(partitions, _)| partitions)
}

/// A topic just created may take a moment to appear in metadata, and its partitions a moment
/// more to elect leaders: until they have, reading its watermarks fails with "not leader".
async fn wait_for_partitions(
    admin: &AdminClient<Silent>,
    topic: &str,
) -> Result<Vec<i32>, KafkaError> {
    let deadline = tokio::time::Instant::now() + REACH_TIMEOUT;
    loop {
        let (partitions, all_led) = partitions_and_leadership(admin, topic)?;
        if (!partitions.is_empty() && all_led) || tokio::time::Instant::now() >= deadline {
            return Ok(partitions);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The topic's partitions, and whether every one of them has a leader and no error.
fn partitions_and_leadership(
    admin: &AdminClient<Silent>,
    topic: &str,
) -> Result<(Vec<i32>, bool), KafkaError> {
    // Asks for all topics, so the request can never auto-create this one.
    let metadata = admin.inner().fetch_metadata(None, REACH_TIMEOUT)?;
    let mut partitions = Vec::new();
    let mut all_led = true;
    for found in metadata.topics().iter().filter(|t| t.name() == topic) {
        for partition in found.partitions() {
            partitions.push(partition.id());
            all_led &= partition.leader() >= 0 && partition.error().is_none();
        }
    }
    partitions.sort_unstable();
    Ok((partitions, all_led))
}
