//! The event log, as every layer above uses it: Kafka clients set up one way (reconnecting
//! within a second, librdkafka's own logs kept at debug), positions in the log, the topic's
//! administration and durability, the partitioning that keeps each customer on one partition,
//! the cluster's health as writes see it, the producer that appends events, and the readers that
//! replay the log or read single records back. `write`, `projection`, `audit` and `http` all
//! build on this module; it depends on none of them (its settings are its own plain struct,
//! [`EventLogSettings`], which `config` fills from the command line).

pub mod client;
mod health;
mod keys;
mod keys_topic;
mod partitioning;
mod position;
mod producer;
mod reader;
mod topic;

pub use client::{client_config, leader_moving, reader_config, KafkaLogs, OutageLog};
pub use health::{ClusterHealth, ReplicaShortage};
pub use keys::{keys_topic, records_still_held, KeyLog, KeyTail, KeyTopicRecord};
pub use keys_topic::{ensure_keys_topic, existing_keys_topic, KEYS_TOPIC_CONFIGS};
pub use partitioning::{Partitioning, HEADER as PARTITIONING_HEADER};
pub use position::{LogPosition, RecordPosition};
pub use producer::{record_headers, EventLog, EventLogError, Payload, DELIVERY_TIMEOUT};
pub use reader::{
    reader, replay, replay_ends, HistoryPermit, HistoryReader, LogReadError, PublishedRecord,
    HISTORY_READERS, HISTORY_READERS_PER_ACCOUNT,
};
/// Where the event log lives: the Kafka cluster and the topic, and how a topic the registry
/// creates is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLogSettings {
    /// Kafka bootstrap servers, comma-separated host:port.
    pub kafka_bootstrap: String,
    /// The topic holding the customer events.
    pub topic: String,
    /// Partitions of the topic when the registry creates it (an existing topic keeps its own).
    pub topic_partitions: i32,
    /// Replication factor of the topic when the registry creates it; `None`: as many replicas
    /// as the cluster has brokers, up to three.
    pub topic_replication: Option<i32>,
}

pub use topic::{
    create_topic, ensure_topic, existing_topic, first_origin, origin_now, origin_of, Durability,
    TopicError, TopicLayout,
};
