//! The event log, as every layer above uses it: Kafka clients set up one way (reconnecting
//! within a second, librdkafka's own logs kept at debug), positions in the log, the topic's
//! administration and durability, the partitioning that keeps each customer on one partition,
//! the cluster's health as writes see it, the producer that appends events, and the readers that
//! replay the log or read single records back. `write`, `projection`, `audit` and `http` all build on this module; it
//! depends on none of them.

pub mod client;
mod health;
mod partitioning;
mod position;
mod producer;
mod reader;
mod topic;

pub use client::{client_config, KafkaLogs, OutageLog};
pub use health::{ClusterHealth, ReplicaShortage};
pub use partitioning::{Partitioning, HEADER as PARTITIONING_HEADER};
pub use position::{LogPosition, RecordPosition};
pub use producer::{EventLog, EventLogError};
pub use reader::{
    reader, replay, replay_ends, HistoryPermit, HistoryReader, LogReadError, PublishedRecord,
    HISTORY_READERS, HISTORY_READERS_PER_ACCOUNT,
};
pub use topic::{
    create_topic, ensure_topic, existing_topic, first_origin, origin_now, origin_of, Durability,
    TopicError, TopicLayout,
};
