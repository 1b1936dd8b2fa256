//! The topic is the source of truth, so it must never lose an event: the registry creates it with
//! unlimited retention and, on a cluster of three or more brokers, three replicas of which two
//! must confirm every write (`min.insync.replicas=2`, no unclean leader election), and refuses to
//! run on a topic whose settings would delete or could lose acknowledged events. It also reads
//! back the partitioning the newest records name ([`Partitioning`]), so that every replica routes
//! each customer to the same partition for the life of the topic.

use super::client::client_config;
use super::partitioning::{Partitioning, HEADER as PARTITIONING_HEADER};
use super::EventLogSettings;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// How long start-up waits for the cluster to answer.
const REACH_TIMEOUT: Duration = Duration::from_secs(10);

/// Topic settings that keep every event forever.
const UNLIMITED_RETENTION: [(&str, &str); 3] = [
    ("retention.ms", "-1"),
    ("retention.bytes", "-1"),
    ("cleanup.policy", "delete"),
];

/// Who stamps a record's time. The registry's own topic: the broker, at append
/// (`LogAppendTime`), so that `export --as-of` cuts the same wherever the record was written
/// from (registry replicas' clocks may be skewed). A copy made by `repartition`: the producer
/// (`CreateTime`), which carries the source's stamps over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stamps {
    Broker,
    Copied,
}

/// Brokers from which the registry asks for, and insists on, replicated durability.
pub const DURABLE_CLUSTER: usize = 3;

/// Replicas of every partition on a durable cluster, and how many must confirm each write.
const DURABLE_REPLICAS: i32 = 3;
const DURABLE_MIN_INSYNC: i32 = 2;

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
    /// On a cluster of three or more brokers, the topic's replication could lose an event Kafka
    /// acknowledged.
    #[error("topic {topic} has {setting}={value} on a cluster of {brokers} brokers: {why}. {fix}")]
    NotDurable {
        /// The topic.
        topic: String,
        /// The brokers the cluster has (at least).
        brokers: usize,
        /// The offending setting.
        setting: &'static str,
        /// Its current value.
        value: String,
        /// What could happen.
        why: &'static str,
        /// How to fix it.
        fix: String,
    },
    /// The keys topic would delete keys by retention, or keep every destroyed one.
    #[error(
        "the keys topic {topic} has cleanup.policy={policy}; it must be compact (alone), so that \
         no live key is ever deleted and a destroyed one leaves the brokers' disks. Fix it with \
         kafka-configs --alter --entity-type topics --entity-name {topic} --add-config \
         cleanup.policy=compact"
    )]
    KeysNotCompacted {
        /// The keys topic.
        topic: String,
        /// Its cleanup policy.
        policy: String,
    },
    /// The log's records were routed over different partition counts.
    #[error(
        "the records of topic {topic} were routed over different partition counts ({found}): \
         events of one customer may lie on two partitions, and a replay may meet a customer's \
         change before its create. Copy the log into a new topic, whose partitioning is fixed \
         for its life: customer-registry repartition --from {topic} --to NEW_TOPIC \
         --partitions N (a customer already split keeps the order the copy reads its events in; \
         `audit` on the new topic lists the changes that order refuses)"
    )]
    MixedPartitioning {
        /// The topic.
        topic: String,
        /// What was found.
        found: String,
    },
}

/// How many brokers hold the topic, and how many must confirm each write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durability {
    /// Brokers in the cluster, as far as the registry can tell (live brokers, or more when a
    /// partition has more replicas).
    pub brokers: usize,
    /// Replicas of each partition (the fewest any partition has).
    pub replication_factor: i32,
    /// `min.insync.replicas`: replicas that must have a record before Kafka acknowledges it.
    pub min_insync_replicas: i32,
}

/// The registry's topic, once it is known to keep events forever.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicLayout {
    /// Partition ids, ascending.
    pub partitions: Vec<i32>,
    /// The Kafka cluster's id, so a read model can tell which cluster's log it projects.
    pub cluster_id: String,
    /// How customers are routed to partitions, as recorded in the log.
    pub partitioning: Partitioning,
    /// Its replication.
    pub durability: Durability,
}

/// A client context that stays silent: start-up reports one clear error itself instead of
/// librdkafka's stream of connection-refused lines.
pub(super) struct Silent;

impl ClientContext for Silent {
    fn log(&self, _level: RDKafkaLogLevel, _facility: &str, _message: &str) {}
    fn error(&self, _error: KafkaError, _reason: &str) {}
}

impl ConsumerContext for Silent {}

/// Makes sure the registry's topic exists with unlimited retention and, on three or more
/// brokers, replicated durability, creating it when missing.
///
/// # Errors
/// [`TopicError::Unreachable`] when no broker answers within 10 s, [`TopicError::Refused`] when
/// the broker refuses to create or describe it, [`TopicError::FiniteRetention`] and
/// [`TopicError::NotDurable`] when it exists with settings that would delete or could lose
/// events, [`TopicError::MixedPartitioning`] when its records were routed inconsistently.
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

/// Creates `topic` as the registry would create its own (unlimited retention, replicated on a
/// durable cluster) with `partitions` partitions, and answers its layout. Fails when it exists.
///
/// # Errors
/// [`TopicError::Refused`] when it exists or the broker refuses, and the errors of
/// [`ensure_topic`].
pub async fn create_topic(
    settings: &EventLogSettings,
    partitions: i32,
) -> Result<TopicLayout, TopicError> {
    let admin = admin_client(settings)?;
    let topic = settings.topic.as_str();
    let found = describe(&admin, topic).map_err(unreachable(settings))?;
    if !found.partitions.is_empty() {
        return Err(TopicError::Refused {
            action: "create",
            topic: topic.to_owned(),
            reason: "it exists already".into(),
        });
    }
    create(&admin, settings, partitions, found.brokers, Stamps::Copied).await?;
    topic_layout(settings, Creation::MustExist).await
}

/// Whether a missing topic is created.
#[derive(PartialEq, Eq)]
enum Creation {
    CreateWhenMissing,
    MustExist,
}

pub(super) fn unreachable(settings: &EventLogSettings) -> impl Fn(KafkaError) -> TopicError + '_ {
    move |reason| TopicError::Unreachable {
        bootstrap: settings.kafka_bootstrap.clone(),
        reason,
    }
}

pub(super) fn admin_client(settings: &EventLogSettings) -> Result<AdminClient<Silent>, TopicError> {
    ClientConfig::new()
        .set("bootstrap.servers", &settings.kafka_bootstrap)
        .create_with_context(Silent)
        .map_err(unreachable(settings))
}

async fn topic_layout(
    settings: &EventLogSettings,
    creation: Creation,
) -> Result<TopicLayout, TopicError> {
    let topic = settings.topic.as_str();
    let admin = admin_client(settings)?;
    let mut found = describe(&admin, topic).map_err(unreachable(settings))?;
    if found.partitions.is_empty() && creation == Creation::MustExist {
        return Err(TopicError::Missing(topic.to_owned()));
    }
    if found.partitions.is_empty() {
        create(
            &admin,
            settings,
            settings.topic_partitions,
            found.brokers,
            Stamps::Broker,
        )
        .await?;
        found = wait_for_partitions(&admin, topic)
            .await
            .map_err(unreachable(settings))?;
    }

    let configs = topic_configs(&admin, topic).await?;
    check_retention(topic, &configs)?;
    if configs.get("message.timestamp.type").map(String::as_str) == Some("CreateTime") {
        tracing::warn!(
            topic,
            "the topic stamps records with the clocks of those who write them \
             (message.timestamp.type=CreateTime), so `export --as-of` cuts by registry replicas' \
             clocks; to have the brokers stamp them: kafka-configs.sh --alter --entity-type topics \
             --entity-name <topic> --add-config message.timestamp.type=LogAppendTime"
        );
    }
    let (durability, unclean) = durability_of(&found, &configs);
    check_durability(topic, durability, unclean, settings)?;

    let cluster_id = admin
        .inner()
        .fetch_cluster_id(REACH_TIMEOUT)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| TopicError::Refused {
            action: "describe the cluster of",
            topic: topic.to_owned(),
            reason: "the cluster id could not be read".into(),
        })?;
    let partition_count = i32::try_from(found.partitions.len()).expect("fewer than 2^31");
    let newest = newest_records(settings, &found.partitions).map_err(unreachable(settings))?;
    let partitioning = choose_partitioning(partition_count, &newest).map_err(|found| {
        TopicError::MixedPartitioning {
            topic: topic.to_owned(),
            found,
        }
    })?;
    if partitioning.count() < partition_count {
        tracing::warn!(
            topic,
            partitions = partition_count,
            %partitioning,
            "the topic has more partitions than its events are routed over (the count recorded \
             in the log when it got its first event): the others receive nothing, so that no \
             customer's events are split. To spread writes over more partitions, copy the log \
             with `customer-registry repartition`"
        );
    }
    Ok(TopicLayout {
        partitions: found.partitions,
        cluster_id,
        partitioning,
        durability,
    })
}

/// Creates the topic, replicated as [`replication_for`] says, with unlimited retention and, on a
/// durable cluster, `min.insync.replicas=2` and no unclean leader election.
async fn create(
    admin: &AdminClient<Silent>,
    settings: &EventLogSettings,
    partitions: i32,
    brokers: usize,
    stamps: Stamps,
) -> Result<(), TopicError> {
    let mut configs = UNLIMITED_RETENTION.to_vec();
    if stamps == Stamps::Broker {
        configs.push(("message.timestamp.type", "LogAppendTime"));
    }
    create_replicated(
        admin,
        settings,
        &settings.topic,
        partitions,
        brokers,
        &configs,
    )
    .await
}

/// Creates `topic` with `configs`, replicated as [`replication_for`] says and, on a durable
/// cluster, with `min.insync.replicas=2` and no unclean leader election. One created by someone
/// else meanwhile is no error: its settings are checked next.
pub(super) async fn create_replicated(
    admin: &AdminClient<Silent>,
    settings: &EventLogSettings,
    topic: &str,
    partitions: i32,
    brokers: usize,
    configs: &[(&str, &str)],
) -> Result<(), TopicError> {
    let replication = replication_for(settings.topic_replication, brokers);
    if brokers >= DURABLE_CLUSTER && replication < DURABLE_REPLICAS {
        return Err(not_durable_replication(topic, brokers, replication));
    }
    let mut new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
    for (key, value) in configs {
        new_topic = new_topic.set(key, value);
    }
    let min_insync = DURABLE_MIN_INSYNC.to_string();
    if replication >= DURABLE_REPLICAS {
        new_topic = new_topic
            .set("min.insync.replicas", &min_insync)
            .set("unclean.leader.election.enable", "false");
    }
    let options = AdminOptions::new().request_timeout(Some(REACH_TIMEOUT));
    let results = admin
        .create_topics([&new_topic], &options)
        .await
        .map_err(unreachable(settings))?;
    for result in results {
        match result {
            Ok(_) => tracing::info!(topic, partitions, replication, ?configs, "created topic"),
            // Another replica created it first: fine, its settings are checked next.
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
    Ok(())
}

/// How `found` is replicated by its `configs`, and whether unclean leader election is on.
pub(super) fn durability_of(
    found: &Described,
    configs: &BTreeMap<String, String>,
) -> (Durability, bool) {
    let durability = Durability {
        brokers: found.brokers,
        replication_factor: found.fewest_replicas,
        min_insync_replicas: configs
            .get("min.insync.replicas")
            .and_then(|value| value.parse().ok())
            .unwrap_or(1),
    };
    let unclean = configs
        .get("unclean.leader.election.enable")
        .is_some_and(|value| value == "true");
    (durability, unclean)
}

/// The replication factor of a new topic: the one asked for, or as many replicas as the cluster
/// has brokers, up to three.
fn replication_for(asked: Option<i32>, brokers: usize) -> i32 {
    asked
        .unwrap_or_else(|| i32::try_from(brokers.clamp(1, DURABLE_CLUSTER)).expect("at most three"))
}

fn not_durable_replication(topic: &str, brokers: usize, replication: i32) -> TopicError {
    TopicError::NotDurable {
        topic: topic.to_owned(),
        brokers,
        setting: "replication.factor",
        value: replication.to_string(),
        why: "with fewer than three replicas, losing one broker's disk can lose acknowledged events, \
              or stop writes",
        fix: format!(
            "Give every partition three replicas (kafka-reassign-partitions with a plan naming \
             three brokers per partition), or copy the log into a new topic, which the registry \
             creates with three: customer-registry repartition --from {topic} --to NEW_TOPIC \
             --partitions N"
        ),
    }
}

/// Refuses, on a cluster of three or more brokers, settings under which Kafka could acknowledge
/// an event and then lose it: fewer than three replicas, fewer than two that must confirm, or
/// unclean leader election (an out-of-sync replica becoming leader drops what it missed). On
/// fewer brokers the topic cannot be replicated that way: one warning says so.
pub(super) fn check_durability(
    topic: &str,
    durability: Durability,
    unclean: bool,
    settings: &EventLogSettings,
) -> Result<(), TopicError> {
    let Durability {
        brokers,
        replication_factor,
        min_insync_replicas,
    } = durability;
    if brokers < DURABLE_CLUSTER {
        tracing::warn!(
            topic,
            brokers,
            replication_factor,
            "the event log has no redundancy: fewer than three brokers cannot keep every \
             acknowledged event through the loss of one (run three brokers; the registry then \
             replicates its topic three times with min.insync.replicas=2)"
        );
        return Ok(());
    }
    if replication_factor < DURABLE_REPLICAS {
        return Err(not_durable_replication(topic, brokers, replication_factor));
    }
    let alter = |setting: &str, value: &str| {
        format!(
            "Fix it with kafka-configs --bootstrap-server {} --alter --entity-type topics \
             --entity-name {topic} --add-config {setting}={value}",
            settings.kafka_bootstrap
        )
    };
    if min_insync_replicas < DURABLE_MIN_INSYNC {
        return Err(TopicError::NotDurable {
            topic: topic.to_owned(),
            brokers,
            setting: "min.insync.replicas",
            value: min_insync_replicas.to_string(),
            why: "Kafka acknowledges a write that only the leader holds, and loses it if that \
                  broker dies before a follower copied it",
            fix: alter("min.insync.replicas", "2"),
        });
    }
    if unclean {
        return Err(TopicError::NotDurable {
            topic: topic.to_owned(),
            brokers,
            setting: "unclean.leader.election.enable",
            value: "true".into(),
            why: "a replica that is not in sync may become leader and drop acknowledged events",
            fix: alter("unclean.leader.election.enable", "false"),
        });
    }
    if min_insync_replicas >= replication_factor {
        tracing::warn!(
            topic,
            min_insync_replicas,
            replication_factor,
            "every replica must confirm each write: losing one broker stops writes until it returns"
        );
    }
    Ok(())
}

/// The topic's effective configuration (broker defaults included). Every topic has each
/// retention setting, if only as the broker's default; a broker asked right after the topic was
/// created may not know its configuration yet and answer without them (seen on the three-node
/// cluster: `retention.ms` absent). That is no answer: asked again until they are there, within
/// the start-up bound, so that only a value, never an absence, is judged.
pub(super) async fn topic_configs(
    admin: &AdminClient<Silent>,
    topic: &str,
) -> Result<BTreeMap<String, String>, TopicError> {
    let deadline = tokio::time::Instant::now() + REACH_TIMEOUT;
    loop {
        let configs = described_configs(admin, topic).await?;
        let known = UNLIMITED_RETENTION
            .iter()
            .all(|(setting, _)| configs.contains_key(*setting));
        if known || tokio::time::Instant::now() >= deadline {
            return Ok(configs);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One answer of the brokers about the topic's configuration.
async fn described_configs(
    admin: &AdminClient<Silent>,
    topic: &str,
) -> Result<BTreeMap<String, String>, TopicError> {
    let refused = |reason: String| TopicError::Refused {
        action: "describe",
        topic: topic.to_owned(),
        reason,
    };
    let options = AdminOptions::new().request_timeout(Some(REACH_TIMEOUT));
    let described = admin
        .describe_configs([&ResourceSpecifier::Topic(topic)], &options)
        .await
        .map_err(|error| refused(error.to_string()))?;
    let resource = described
        .into_iter()
        .next()
        .ok_or_else(|| refused("no configuration returned".into()))?
        .map_err(|code| refused(code.to_string()))?;
    Ok(resource
        .entries
        .into_iter()
        .filter_map(|entry| Some((entry.name, entry.value?)))
        .collect())
}

fn check_retention(topic: &str, configs: &BTreeMap<String, String>) -> Result<(), TopicError> {
    for (setting, wanted) in UNLIMITED_RETENTION {
        let value = configs.get(setting).cloned().unwrap_or_default();
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

/// What cluster metadata says of the topic.
pub(super) struct Described {
    /// Its partitions, ascending; empty when it does not exist.
    pub partitions: Vec<i32>,
    /// Whether every partition has a leader and no error.
    all_led: bool,
    /// The fewest replicas any partition has (0 when there are none).
    pub fewest_replicas: i32,
    /// Brokers in the cluster: those that answer, and any other that holds a replica of some
    /// topic (a broker down right now is still one of the cluster's).
    pub brokers: usize,
}

/// The topic as cluster metadata describes it. A blocking call, made only at start-up.
pub(super) fn describe(admin: &AdminClient<Silent>, topic: &str) -> Result<Described, KafkaError> {
    // Asks for all topics, so the request can never auto-create this one.
    let metadata = admin.inner().fetch_metadata(None, REACH_TIMEOUT)?;
    let mut partitions = Vec::new();
    let mut all_led = true;
    let mut fewest_replicas = i32::MAX;
    let mut brokers: BTreeSet<i32> = metadata
        .brokers()
        .iter()
        .map(|broker| broker.id())
        .collect();
    for found in metadata.topics() {
        for partition in found.partitions() {
            brokers.extend(partition.replicas());
            if found.name() != topic {
                continue;
            }
            partitions.push(partition.id());
            all_led &= partition.leader() >= 0 && partition.error().is_none();
            let replicas = i32::try_from(partition.replicas().len()).unwrap_or(i32::MAX);
            fewest_replicas = fewest_replicas.min(replicas);
        }
    }
    partitions.sort_unstable();
    Ok(Described {
        fewest_replicas: if partitions.is_empty() {
            0
        } else {
            fewest_replicas
        },
        partitions,
        all_led,
        brokers: brokers.len(),
    })
}

/// A topic just created may take a moment to appear in metadata, and its partitions a moment
/// more to elect leaders: until they have, reading its watermarks fails with "not leader".
pub(super) async fn wait_for_partitions(
    admin: &AdminClient<Silent>,
    topic: &str,
) -> Result<Described, KafkaError> {
    let deadline = tokio::time::Instant::now() + REACH_TIMEOUT;
    loop {
        let found = describe(admin, topic)?;
        if (!found.partitions.is_empty() && found.all_led)
            || tokio::time::Instant::now() >= deadline
        {
            return Ok(found);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The newest record of a partition, as far as routing goes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct NewestRecord {
    /// Its partition.
    partition: i32,
    /// Its key.
    key: Option<Vec<u8>>,
    /// The partitioning it names, when it names one (records written before they did, or by
    /// someone else, name none).
    named: Option<Partitioning>,
}

/// The newest record of each partition that holds any and delivers it within the start-up
/// bound (a partition whose newest offset is a transaction marker, or whose leader is moving,
/// is passed over: the others decide). A blocking call, made only at start-up.
fn newest_records(
    settings: &EventLogSettings,
    partitions: &[i32],
) -> Result<Vec<NewestRecord>, KafkaError> {
    let consumer = layout_consumer(settings)?;
    let topic = settings.topic.as_str();
    let mut assignment = TopicPartitionList::new();
    let mut waiting = BTreeSet::new();
    for &partition in partitions {
        let Ok((low, high)) = watermarks(&consumer, topic, partition) else {
            continue;
        };
        if high > low {
            assignment.add_partition_offset(topic, partition, Offset::Offset(high - 1))?;
            waiting.insert(partition);
        }
    }
    let mut found = Vec::with_capacity(waiting.len());
    if waiting.is_empty() {
        return Ok(found);
    }
    consumer.assign(&assignment)?;
    let deadline = Instant::now() + NEWEST_RECORD_WAIT;
    while !waiting.is_empty() && Instant::now() < deadline {
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        if !waiting.remove(&message.partition()) {
            continue;
        }
        let named = message.headers().and_then(|headers| {
            headers
                .iter()
                .find(|header| header.key == PARTITIONING_HEADER)
                .and_then(|header| header.value)
                .and_then(|value| std::str::from_utf8(value).ok())
                .and_then(|text| Partitioning::parse(text).ok())
        });
        found.push(NewestRecord {
            partition: message.partition(),
            key: message.key().map(<[u8]>::to_vec),
            named,
        });
    }
    if !waiting.is_empty() {
        tracing::debug!(
            ?waiting,
            "no newest record read from these partitions at start"
        );
    }
    Ok(found)
}

/// What tells one incarnation of a topic from another under the same name: a record of it, as
/// `<partition>:<offset>:<Kafka timestamp ms>:<SHA-256 of key and value, 16 hex digits>`. The log
/// is kept forever, so the record at a place never changes; a topic deleted and created again
/// (whose offsets may have grown past a read model's) holds another there, or none. Kafka's own
/// topic id is not offered by the client library's API.
///
/// The origin of the topic's first record (the lowest partition holding any, at its first
/// offset); `None` while the topic is empty. (A read model notes the origin of the first record
/// its projector applies, or, built before origins were noted, this one.)
///
/// # Errors
/// [`TopicError`] when the log cannot be read.
pub fn first_origin(
    settings: &EventLogSettings,
    partitions: &[i32],
) -> Result<Option<String>, TopicError> {
    let consumer = layout_consumer(settings).map_err(unreachable(settings))?;
    for &partition in partitions {
        let (low, high) =
            watermarks(&consumer, &settings.topic, partition).map_err(unreachable(settings))?;
        if high > low {
            return origin_at(&consumer, settings, partition, low).map(Some);
        }
    }
    Ok(None)
}

/// The origin of the record now at the place `noted` (an origin noted earlier) names; `None` when
/// the topic holds none there (or `noted` names no place).
///
/// # Errors
/// [`TopicError`] when the log cannot be read, or the record not within the wait.
pub fn origin_now(settings: &EventLogSettings, noted: &str) -> Result<Option<String>, TopicError> {
    let mut parts = noted.split(':');
    let (Some(Ok(partition)), Some(Ok(offset))) = (
        parts.next().map(str::parse::<i32>),
        parts.next().map(str::parse::<i64>),
    ) else {
        return Ok(None);
    };
    let consumer = layout_consumer(settings).map_err(unreachable(settings))?;
    match watermarks(&consumer, &settings.topic, partition) {
        Ok((low, high)) if (low..high).contains(&offset) => {
            origin_at(&consumer, settings, partition, offset).map(Some)
        }
        Ok(_) => Ok(None),
        // Even a partition the metadata does not list (yet) is an error to retry, not proof of
        // another log: that verdict has the operator delete the data dir.
        Err(error) => Err(unreachable(settings)(error)),
    }
}

/// The origin of the record at `partition`:`offset`, read with `consumer` (which the caller read
/// the partition's watermarks with).
fn origin_at(
    consumer: &BaseConsumer<Silent>,
    settings: &EventLogSettings,
    partition: i32,
    offset: i64,
) -> Result<String, TopicError> {
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(&settings.topic, partition, Offset::Offset(offset))
        .and_then(|()| consumer.assign(&assignment))
        .map_err(unreachable(settings))?;
    let deadline = Instant::now() + NEWEST_RECORD_WAIT;
    while Instant::now() < deadline {
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        if (message.partition(), message.offset()) == (partition, offset) {
            return Ok(origin_of(&message));
        }
    }
    Err(TopicError::Refused {
        action: "read the record that identifies",
        topic: settings.topic.clone(),
        reason: format!(
            "the record at {partition}:{offset} was not read within {NEWEST_RECORD_WAIT:?}"
        ),
    })
}

/// The origin `message` gives its topic (see [`first_origin`]).
pub fn origin_of(message: &impl Message) -> String {
    use sha2::{Digest, Sha256};
    let mut digest = Sha256::new();
    for part in [message.key(), message.payload()] {
        let part = part.unwrap_or_default();
        digest.update((part.len() as u64).to_be_bytes());
        digest.update(part);
    }
    let digest = crate::hex::encode(&digest.finalize()[..8]);
    let millis = message.timestamp().to_millis().unwrap_or(-1);
    format!(
        "{}:{}:{millis}:{digest}",
        message.partition(),
        message.offset()
    )
}

/// A consumer for reading the topic's layout and chosen records, outside any group's offsets.
fn layout_consumer(settings: &EventLogSettings) -> Result<BaseConsumer<Silent>, KafkaError> {
    client_config(&settings.kafka_bootstrap)
        .set("group.id", "customer-registry.layout")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create_with_context(Silent)
}

/// How long start-up waits for the newest records of the topic's partitions.
const NEWEST_RECORD_WAIT: Duration = Duration::from_secs(5);

/// A partition's watermarks, retried while its leadership is being settled.
fn watermarks(
    consumer: &BaseConsumer<Silent>,
    topic: &str,
    partition: i32,
) -> Result<(i64, i64), KafkaError> {
    let deadline = Instant::now() + REACH_TIMEOUT;
    loop {
        match consumer.fetch_watermarks(topic, partition, REACH_TIMEOUT) {
            Err(error)
                if Instant::now() < deadline
                    && matches!(
                        error.rdkafka_error_code(),
                        Some(
                            RDKafkaErrorCode::NotLeaderForPartition
                                | RDKafkaErrorCode::LeaderNotAvailable
                        )
                    ) =>
            {
                std::thread::sleep(Duration::from_millis(100));
            }
            outcome => return outcome,
        }
    }
}

/// The partitioning to route by, from the newest record of each partition: the one they name
/// when they agree; the topic's partition count when none names one (an empty topic, or one
/// written before records named their partitioning, which the Kafka client's default
/// partitioner spread over the count it had, the same hash as ours). Refused, with what was
/// found: records naming different counts, or a count past the topic's; and records naming
/// none that the topic's count would not have put where they are (the topic grew since they
/// were written, so some customers' events are already split).
fn choose_partitioning(
    partition_count: i32,
    newest: &[NewestRecord],
) -> Result<Partitioning, String> {
    let named: BTreeSet<i32> = newest
        .iter()
        .filter_map(|record| record.named)
        .map(|partitioning| partitioning.count())
        .collect();
    let describe = |counts: &BTreeSet<i32>| {
        counts
            .iter()
            .map(|&count| Partitioning::over(count).to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match named.len() {
        0 => {}
        1 => {
            let count = *named.first().expect("one");
            if count > partition_count {
                return Err(format!(
                    "{}, on a topic of {partition_count} partitions",
                    describe(&named)
                ));
            }
            return Ok(Partitioning::over(count));
        }
        _ => return Err(describe(&named)),
    }
    let current = Partitioning::over(partition_count);
    let misplaced = newest.iter().find(|record| {
        record
            .key
            .as_deref()
            .is_some_and(|key| current.partition_of_key(key) != record.partition)
    });
    match misplaced {
        Some(record) => Err(format!(
            "no partitioning named, and a record on partition {} that {current} would not have \
             put there: written while the topic had another partition count",
            record.partition
        )),
        None => Ok(current),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> EventLogSettings {
        EventLogSettings {
            kafka_bootstrap: "127.0.0.1:9092".into(),
            topic: "customers.events".into(),
            topic_partitions: 12,
            topic_replication: None,
        }
    }

    fn newest(key: &str, partition: i32, named: Option<Partitioning>) -> NewestRecord {
        NewestRecord {
            partition,
            key: Some(key.as_bytes().to_vec()),
            named,
        }
    }

    /// A record without a header on the partition `count` partitions give `key`.
    fn legacy(key: &str, count: i32) -> NewestRecord {
        newest(
            key,
            Partitioning::over(count).partition_of_key(key.as_bytes()),
            None,
        )
    }

    #[test]
    fn the_recorded_partitioning_wins_over_partitions_added_later() {
        let twelve = Partitioning::over(12);
        assert_eq!(choose_partitioning(12, &[]), Ok(twelve));
        let mixed = [newest("a", 3, Some(twelve)), legacy("b", 12)];
        assert_eq!(choose_partitioning(17, &mixed), Ok(twelve));
        assert_eq!(
            choose_partitioning(17, &[legacy("a", 17), legacy("b", 17)]),
            Ok(Partitioning::over(17)),
            "records from before the header: the count their producers hashed over"
        );
        let two = [
            newest("a", 1, Some(twelve)),
            newest("b", 2, Some(Partitioning::over(17))),
        ];
        assert!(choose_partitioning(17, &two).is_err());
        assert!(
            choose_partitioning(6, &[newest("a", 1, Some(twelve))]).is_err(),
            "more than the topic has"
        );
    }

    #[test]
    fn an_old_log_that_grew_under_the_default_partitioner_is_refused() {
        // Written over 3 partitions, before records named their partitioning; the topic has 8
        // now. A customer whose newest record sits where 8 would not put it is split.
        let key = (0..100)
            .map(|n| format!("customer-{n}"))
            .find(|key| {
                Partitioning::over(3).partition_of_key(key.as_bytes())
                    != Partitioning::over(8).partition_of_key(key.as_bytes())
            })
            .unwrap();
        let error = choose_partitioning(8, &[legacy(&key, 3)]).unwrap_err();
        assert!(error.contains("would not have put there"), "{error}");
    }

    #[test]
    fn replication_follows_the_cluster_up_to_three() {
        assert_eq!(replication_for(None, 1), 1);
        assert_eq!(replication_for(None, 2), 2);
        assert_eq!(replication_for(None, 3), 3);
        assert_eq!(replication_for(None, 7), 3);
        assert_eq!(replication_for(Some(5), 7), 5);
    }

    #[test]
    fn a_durable_cluster_refuses_settings_that_could_lose_an_acknowledged_event() {
        let durable = Durability {
            brokers: 3,
            replication_factor: 3,
            min_insync_replicas: 2,
        };
        assert!(check_durability("t", durable, false, &settings()).is_ok());
        let refused =
            |durability, unclean| match check_durability("t", durability, unclean, &settings()) {
                Err(TopicError::NotDurable { setting, .. }) => setting,
                other => panic!("{other:?}"),
            };
        let thin = Durability {
            replication_factor: 2,
            ..durable
        };
        assert_eq!(refused(thin, false), "replication.factor");
        let lax = Durability {
            min_insync_replicas: 1,
            ..durable
        };
        assert_eq!(refused(lax, false), "min.insync.replicas");
        assert_eq!(refused(durable, true), "unclean.leader.election.enable");
        let single = Durability {
            brokers: 1,
            replication_factor: 1,
            min_insync_replicas: 1,
        };
        assert!(
            check_durability("t", single, true, &settings()).is_ok(),
            "one broker: a warning, not a refusal"
        );
    }

    #[test]
    fn a_refusal_names_the_setting_and_the_fix() {
        let error = check_durability(
            "customers.events",
            Durability {
                brokers: 3,
                replication_factor: 3,
                min_insync_replicas: 1,
            },
            false,
            &settings(),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("min.insync.replicas=1"), "{error}");
        assert!(
            error.contains("--add-config min.insync.replicas=2"),
            "{error}"
        );
    }
}
