//! The log's records as answers show them: a customer's history (the events as published) and
//! the records the projector rejected.

use super::schema;
use super::schemas::customer_properties;
use super::text::{MILLIS, UUID_LOWER};
use super::MAX_REQUEST_ID;
use crate::domain::{PLAIN_SCHEMA_VERSION, SEALED_SCHEMA_VERSION};
use crate::read_model::RejectionKind;
use serde_json::{json, Map, Value};

/// The records' schemas, by component name.
pub fn components() -> Map<String, Value> {
    let mut schemas = Map::new();
    schemas.insert(
        "CustomerCreatedEvent".into(),
        event(
            "CustomerCreated",
            "events/customer-created.v1.schema.json. Consumers ignore members they do not know",
            schema("CreatedCustomer"),
        ),
    );
    let mut created = customer_properties();
    created.shift_remove("updatedAt");
    created.shift_remove("version");
    schemas.insert(
        "CreatedCustomer".into(),
        json!({
            "type": "object",
            "description": "A customer as `CustomerCreated` carries it: a Customer without \
                `updatedAt` and `version` (a created customer's are its createdAt and 1).",
            "required": ["id", "accountId", "createdAt"],
            "properties": created,
        }),
    );
    schemas.insert(
        "CustomerUpdatedEvent".into(),
        event(
            "CustomerUpdated",
            "events/customer-updated.v1.schema.json",
            change_data(true),
        ),
    );
    schemas.insert(
        "CustomerDeletedEvent".into(),
        event(
            "CustomerDeleted",
            "events/customer-deleted.v1.schema.json",
            change_data(false),
        ),
    );
    schemas.insert(
        "CustomerErasedEvent".into(),
        event(
            "CustomerErased",
            "events/customer-erased.v2.schema.json",
            json!({
                "type": "object",
                "required": ["id", "accountId", "erasureRequestId"],
                "properties": {
                    "id": {"type": "string", "format": "uuid", "pattern": UUID_LOWER},
                    "accountId": {"type": "integer"},
                    "erasureRequestId": {"type": "string", "format": "uuid", "pattern": UUID_LOWER},
                },
            }),
        ),
    );
    schemas.insert("HistoryRecord".into(), history_record());
    schemas.insert(
        "HistoryRecordList".into(),
        json!({
            "type": "array",
            "description": "The records that built the customer, in log order (JSON form).",
            "items": schema("HistoryRecord"),
        }),
    );
    schemas.insert("HistoryRecordXml".into(), history_record_xml());
    schemas.insert(
        "HistoryRecordXmlList".into(),
        json!({
            "type": "array",
            "description": "`<records>` holding one `<record>` per record, in log order.",
            "items": schema("HistoryRecordXml"),
            "xml": {"name": "records", "wrapped": true},
        }),
    );
    schemas.insert("RejectedEvent".into(), rejected_event());
    schemas.insert(
        "RejectedEventList".into(),
        json!({
            "type": "array",
            "description": "Rejected records in log order. XML: `<rejectedEvents>` holding \
                `<rejectedEvent>` elements.",
            "items": schema("RejectedEvent"),
            "xml": {"name": "rejectedEvents", "wrapped": true},
        }),
    );
    schemas
}

/// An event as published: the envelope around `data`.
fn event(event_type: &str, published_as: &str, data: Value) -> Value {
    json!({
        "type": "object",
        "description": format!(
            "A `{event_type}` event as published ({published_as}; v2 in the -v2 schema beside \
             it). A version 2 event's sealed personal fields are shown opened, back where \
             version 1 carries them; when they do not open (an erased customer's), `data.personal` \
             stays sealed and `data.personalUnreadable` says why."
        ),
        "required": ["eventId", "eventType", "schemaVersion", "occurredAt", "data"],
        "properties": {
            "eventId": {"type": "string", "format": "uuid", "pattern": UUID_LOWER},
            "eventType": {"type": "string", "const": event_type},
            "schemaVersion": {
                "type": "integer",
                "enum": [PLAIN_SCHEMA_VERSION, SEALED_SCHEMA_VERSION],
            },
            "occurredAt": {"type": "string", "format": "date-time", "pattern": MILLIS},
            "requestId": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_REQUEST_ID,
                "pattern": "^[!-~]+$",
            },
            "actor": {"type": "string", "minLength": 1},
            "data": with_sealed_members(data),
        },
    })
}

/// `data`, with the members a version 2 event keeps when its personal fields do not open.
fn with_sealed_members(mut data: Value) -> Value {
    data["properties"]["personal"] = json!({
        "type": "object",
        "description": "The personal fields, sealed (only when they did not open).",
        "required": ["keyId", "sealed"],
        "properties": {
            "keyId": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
            "sealed": {"type": "string", "format": "byte"},
        },
    });
    data["properties"]["personalUnreadable"] = json!({
        "type": "string",
        "description": "Why the personal fields did not open.",
    });
    data["properties"]["personalErased"] = json!({
        "type": "boolean",
        "const": true,
        "description": "Present when they do not open because the customer was erased.",
    });
    data
}

/// `data` of a `CustomerUpdated` (`with_changes`) or a `CustomerDeleted`.
fn change_data(with_changes: bool) -> Value {
    let mut data = json!({
        "type": "object",
        "required": ["id", "accountId", "version"],
        "properties": {
            "id": {"type": "string", "format": "uuid", "pattern": UUID_LOWER},
            "accountId": schema("AccountId"),
            "version": {"type": "integer", "minimum": 2},
        },
    });
    if with_changes {
        data["properties"]["changes"] = json!({
            "type": "object",
            "minProperties": 1,
            "description": "A JSON merge patch of the customer: each changed field's new value, \
                or null when cleared.",
        });
        // Absent from an update whose sealed personal fields did not open.
        data["required"] = json!(["id", "accountId", "version"]);
    }
    data
}

fn history_record() -> Value {
    json!({
        "type": "object",
        "description": "One record of the log that built the customer, as it sits in Kafka, its \
            sealed personal fields opened (JSON form).",
        "required": ["partition", "offset", "timestamp", "key", "headers", "event"],
        "additionalProperties": false,
        "properties": {
            "partition": {"type": "integer", "minimum": 0, "format": "int32"},
            "offset": {"type": "integer", "minimum": 0, "format": "int64"},
            "timestamp": {
                "type": ["string", "null"],
                "format": "date-time",
                "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{3})?Z$",
                "description": "When Kafka says it was written (UTC; milliseconds shown unless \
                    zero); null when the record has none.",
            },
            "key": {
                "type": ["string", "null"],
                "description": "The record key as text (the customer id); null when the record \
                    has none.",
            },
            "headers": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "The record's headers, name to value (event-type, \
                    schema-version, content-type, the CloudEvents ce_* attributes; \
                    idempotency-key and request-digest on a change made with an \
                    Idempotency-Key).",
            },
            "event": {
                "description": "The record's value as published: the event's JSON; the bytes \
                    as text when they are not JSON; null when there is no value.",
                "anyOf": [
                    schema("CustomerCreatedEvent"),
                    schema("CustomerUpdatedEvent"),
                    schema("CustomerDeletedEvent"),
                    schema("CustomerErasedEvent"),
                    {"type": "string"},
                    {"type": "null"},
                ],
            },
        },
        "xml": {"name": "record"},
    })
}

fn history_record_xml() -> Value {
    json!({
        "type": "object",
        "description": "One record in the XML form: `<record>` with `<partition>`, `<offset>`, \
            `<timestamp>` (omitted when Kafka has none), `<key>` (omitted when none) and \
            `<value>`, the value as published (JSON text).",
        "required": ["partition", "offset", "value"],
        "additionalProperties": false,
        "properties": {
            "partition": {"type": "integer", "minimum": 0},
            "offset": {"type": "integer", "minimum": 0},
            "timestamp": {
                "type": "string",
                "format": "date-time",
                "pattern": MILLIS,
                "description": "RFC 3339, UTC, three fractional digits.",
            },
            "key": {"type": "string"},
            "value": {
                "type": "string",
                "description": "The record's value as JSON text (`null` when it has none).",
            },
        },
        "xml": {"name": "record"},
    })
}

fn rejected_event() -> Value {
    let kinds: Vec<Value> = RejectionKind::ALL
        .iter()
        .map(|kind| serde_json::to_value(kind).expect("a kind serialises as its name"))
        .collect();
    let meanings: Vec<String> = RejectionKind::ALL
        .iter()
        .zip(&kinds)
        .map(|(kind, name)| {
            format!(
                "`{}`: {}",
                name.as_str().unwrap_or_default(),
                meaning(*kind)
            )
        })
        .collect();
    json!({
        "type": "object",
        "description": "A record the projector kept out of the read model.",
        "required": ["partition", "offset", "kind", "reason", "rejectedAt"],
        "additionalProperties": false,
        "properties": {
            "partition": {"type": "integer", "minimum": 0, "format": "int32"},
            "offset": {"type": "integer", "minimum": 0, "format": "int64"},
            "kind": {
                "type": "string",
                "enum": kinds,
                "description": format!("{}.", meanings.join("; ")),
            },
            "reason": {"type": "string", "description": "The details, in words."},
            "rejectedAt": {
                "type": "string",
                "format": "date-time",
                "description": "When the projector rejected it: RFC 3339 UTC (`Z`), with 0, 3, \
                    6 or 9 fractional digits.",
            },
        },
        "xml": {"name": "rejectedEvent"},
    })
}

/// Why the projector keeps a record of `kind` out of the read model.
fn meaning(kind: RejectionKind) -> &'static str {
    match kind {
        RejectionKind::Malformed => "no payload, not JSON, or a payload that breaks its schema",
        RejectionKind::UnknownType => "an eventType this build does not know",
        RejectionKind::UnsupportedVersion => "a newer schemaVersion",
        RejectionKind::Conflict => {
            "a CustomerCreated for an existing customer id from another event, or a change \
             naming another account than the customer's"
        }
        RejectionKind::VersionConflict => {
            "an update or delete whose version is not the customer's next one: another change \
             took that version first (its request was answered 412, or retried)"
        }
        RejectionKind::CustomerAbsent => {
            "an update or delete of a customer the log never created or had deleted (its \
             request was answered 404)"
        }
        RejectionKind::Unreadable => {
            "a sealed event (schemaVersion 2) whose personal fields do not open: its data key is \
             not in the keys topic, does not unwrap with the KEK file, or the bytes were altered"
        }
    }
}
