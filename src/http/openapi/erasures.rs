//! Erasure: the request (`POST /api/v01/customers/{customerId}/erasure`), its status
//! (`GET /api/v01/erasures/{requestId}`) and the schema of both answers.

use super::answers::{self, ProblemSchemas, SHED};
use super::headers::{named, retry_after};
use super::text::UUID_LOWER;
use super::{either_format, reference, ProblemType as P};
use serde_json::{json, Map, Value};

/// What an erasure does, for both operations' descriptions.
const WHAT_IT_DOES: &str = "An erasure forgets a customer's personal data (crypto-shredding): \
    the customer's erased marker is written to the keys topic (no replica mints it a key again), \
    each of its data keys gets a tombstone (compaction then removes the keys from the brokers' \
    disks), and a `CustomerErased` event is appended, on which every replica purges the customer \
    from its read model. The events stay in the log, in order, their personal part unreadable \
    noise. After it, get, update, patch and delete answer 410 /problems/customer-erased, find \
    never returns or counts the customer, and its history lists every event marked \
    `personalErased`.";

/// `POST /api/v01/customers/{customerId}/erasure`.
pub fn erase(problems: &mut ProblemSchemas) -> Value {
    json!({
        "operationId": "eraseCustomer",
        "tags": ["customers"],
        "summary": "Erase a customer's personal data",
        "description": format!(
            "{WHAT_IT_DOES} Admin keys, or keys scoped to the customer's account; live and \
             deleted customers alike. The request id derives from the customer (UUIDv5 of its id \
             in the namespace events/README gives), so repeating the request answers the same \
             erasure, and a replica killed half-way finishes it when it restarts. Answers 202 \
             once the event is written, with where each step is (this replica's purge is usually \
             done, the keys' removal from storage takes up to the documented compaction bound). \
             Takes no body and no query parameter. Checks run in this order: API key (401), \
             Accept (406), query string (400), X-Min-Log-Position (400), catching up / waiting \
             (503), the lookup (404), encryption (409), then the erasure (500, 503)."
        ),
        "parameters": [
            reference("parameters", "MinLogPosition"),
            reference("parameters", "XRequestId"),
        ],
        "responses": {
            "202": {
                "description": "The erasure, requested now or before.",
                "headers": {
                    "Location": {
                        "description": "The erasure's status: `/api/v01/erasures/{requestId}`.",
                        "schema": {"type": "string", "pattern": "^/api/v01/erasures/[0-9a-f-]{36}$"},
                    },
                    "X-Request-Id": reference("headers", "X-Request-Id"),
                },
                "content": either_format("Erasure", false),
            },
            "400": problems.reply(
                &[P::ValidationFailed, P::MalformedRequest],
                "A query parameter (an erasure takes none), or a malformed X-Min-Log-Position.",
                false,
            ).build(),
            "401": answers::unauthorized(false),
            "404": problems.reply(
                &[P::NotFound],
                "No customer with this id (an id not in canonical hyphenated UUID form names \
                 none), or one of an account the API key does not reach: the rules of get.",
                false,
            ).build(),
            "406": answers::not_acceptable(false),
            "409": problems.reply(
                &[P::ErasureUnavailable],
                "The registry runs with --no-encryption, or the log holds some of the customer's \
                 events in plain text (written before encryption): no key destruction erases \
                 them.",
                false,
            ).build(),
            "431": answers::head_too_large(false),
            "500": problems.reply(
                &[P::ReadModelFailure, P::InternalError],
                "The read model failed.",
                false,
            ).build(),
            "503": problems.reply(
                &[&[
                    P::EventLogUnavailable,
                    P::NotEnoughReplicas,
                    P::EventLogUnreadable,
                    P::CatchingUp,
                    P::ReplicaBehind,
                ][..], &SHED[..]].concat(),
                "Kafka did not confirm the marker, a tombstone or the event, or the keys topic \
                 was not read in time: repeat the request (it resumes where it stopped).",
                false,
            )
            .header("Retry-After", retry_after(Some("event-log-unavailable"), None))
            .sometimes_request_id()
            .build(),
        },
    })
}

/// `GET` (or `HEAD`) `/api/v01/erasures/{requestId}`.
pub fn status(head: bool, problems: &mut ProblemSchemas) -> Value {
    json!({
        "operationId": if head { "getErasureHead" } else { "getErasure" },
        "tags": ["customers"],
        "summary": if head { "An erasure's status (headers only)" } else { "An erasure's status" },
        "description": format!(
            "{WHAT_IT_DOES} Each place, as this replica knows it; `keyRemovedFromStorage` is \
             asked of the brokers on each request (a fetch per key record). Admin keys, or keys \
             scoped to the customer's account. Checks run in this order: API key (401), Accept \
             (406), query string (400), the lookup (404)."
        ),
        "parameters": [reference("parameters", "XRequestId")],
        "responses": {
            "200": {
                "description": "The erasure.",
                "headers": named(&[("X-Request-Id", true)]),
                "content": either_format("Erasure", head),
            },
            "400": problems.reply(
                &[P::ValidationFailed],
                "A query parameter: the status takes none.",
                head,
            ).build(),
            "401": answers::unauthorized(head),
            "404": problems.reply(
                &[P::NotFound],
                "No erasure with this id whose marker this replica has read, or one of an \
                 account the API key does not reach.",
                head,
            ).build(),
            "406": answers::not_acceptable(head),
            "409": problems.reply(
                &[P::ErasureUnavailable],
                "The registry runs with --no-encryption: it holds no erasures.",
                head,
            ).build(),
            "431": answers::head_too_large(head),
            "500": problems.reply(&[P::ReadModelFailure], "The read model failed.", head).build(),
            "503": problems.reply(&SHED, "Load shedding or the request deadline.", head)
                .header("Retry-After", retry_after(None, None))
                .without_request_id()
                .build(),
        },
    })
}

/// The `requestId` path parameter.
pub fn request_id_parameter() -> Value {
    json!({
        "name": "requestId",
        "in": "path",
        "required": true,
        "description": "The erasure request's id, as the erasure's `Location` gives it (canonical \
            hyphenated UUID).",
        "schema": {"type": "string", "format": "uuid", "minLength": 36, "maxLength": 36},
    })
}

/// The `Erasure` schema.
pub fn components() -> Map<String, Value> {
    let place = |description: &str| json!({"type": "boolean", "description": description});
    let mut schemas = Map::new();
    schemas.insert(
        "Erasure".into(),
        json!({
            "type": "object",
            "description": "An erasure request and where each of its steps is. XML: \
                `<erasure>`, each member an element.",
            "required": ["requestId", "customerId", "requestedAt", "done", "places"],
            "properties": {
                "requestId": {"type": "string", "format": "uuid", "pattern": UUID_LOWER},
                "customerId": {"type": "string", "format": "uuid", "pattern": UUID_LOWER},
                "accountId": {
                    "type": "integer",
                    "description": "Absent while this replica holds no record of the customer.",
                },
                "requestedAt": {"type": "string", "format": "date-time"},
                "done": {"type": "boolean", "description": "Every place is reached."},
                "places": {
                    "type": "object",
                    "required": [
                        "eventWritten", "keyDestroyed", "keyRemovedFromStorage", "readModelPurged",
                    ],
                    "properties": {
                        "eventWritten": place("The `CustomerErased` event is in the log (this \
                            replica has read it)."),
                        "keyDestroyed": place("The erased marker is on the keys topic and every \
                            key of the customer's has a tombstone: no replica opens its events."),
                        "keyRemovedFromStorage": {
                            "type": ["boolean", "null"],
                            "description": "Compaction removed every key record of the \
                                customer's from the keys topic's storage (within the bound the \
                                README gives); null when the brokers could not be asked.",
                        },
                        "readModelPurged": place("This replica's read model holds no personal \
                            field or index entry of the customer, on disk as in memory."),
                    },
                },
            },
            "xml": {"name": "erasure"},
        }),
    );
    schemas
}
