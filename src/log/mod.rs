//! The event log, as every layer above uses it: Kafka clients set up one way (reconnecting
//! within a second, librdkafka's own logs kept at debug), positions in the log, the topic's
//! administration, the producer that appends events, and the readers that replay the log or read
//! single records back. `write`, `projection`, `audit` and `http` all build on this module; it
//! depends on none of them.

pub mod client;
mod position;
mod producer;
mod reader;
mod topic;

pub use client::{client_config, KafkaLogs, OutageLog};
pub use position::{LogPosition, RecordPosition};
pub use producer::{EventLog, EventLogError};
pub use reader::{
    reader, replay, replay_ends, HistoryPermit, HistoryReader, LogReadError, PublishedRecord,
    HISTORY_READERS,
};
pub use topic::{ensure_topic, existing_topic, TopicError, TopicLayout};
