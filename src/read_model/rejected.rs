//! Records the projector could not apply. They stay in the log (the log is never edited) and are
//! listed here, with where they are and why, for an operator to look at.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Why a record was kept out of the read model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectionKind {
    /// Not an event at all: no payload, not JSON, or a payload that breaks its schema.
    Malformed,
    /// An `eventType` this build does not know.
    UnknownType,
    /// A `schemaVersion` newer than this build reads.
    UnsupportedVersion,
    /// A `CustomerCreated` for a customer id that already exists, from a different event; or a
    /// change naming another account than the customer's.
    Conflict,
    /// An update or delete whose version is not the customer's next one: another change to the
    /// customer took that version first (the request that wrote it was answered 412).
    VersionConflict,
    /// An update or delete of a customer the log never created, or deleted already (the request
    /// that wrote it was answered 404).
    CustomerAbsent,
    /// A sealed event (schema version 2) whose personal fields do not open: its data key is not
    /// in the keys topic, does not unwrap with the KEK file, or the bytes were altered.
    Unreadable,
}

impl RejectionKind {
    /// Every kind, as the rejected-events listing may name them.
    pub const ALL: [RejectionKind; 7] = [
        RejectionKind::Malformed,
        RejectionKind::UnknownType,
        RejectionKind::UnsupportedVersion,
        RejectionKind::Conflict,
        RejectionKind::VersionConflict,
        RejectionKind::CustomerAbsent,
        RejectionKind::Unreadable,
    ];
}

/// One record kept out of the read model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RejectedEvent {
    /// The record's partition.
    pub partition: i32,
    /// The record's offset.
    pub offset: i64,
    /// Why it was rejected.
    pub kind: RejectionKind,
    /// The details, in words.
    pub reason: String,
    /// When the projector rejected it.
    pub rejected_at: DateTime<Utc>,
}
