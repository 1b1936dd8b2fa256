//! What each problem type (from [`ProblemType`]) and field-error code means, and the schemas of
//! problem documents.

use super::text::UUID_LOWER;
use super::{
    thousands, Format, ProblemType, ERRORS_LISTED, MAX_BODY_BYTES, MAX_HEAD_BYTES,
    MAX_POSITION_HEADER,
};
use crate::domain::{AccountId, IdempotencyKey, Phone, NAME_SHOWN};
use crate::log::{HISTORY_READERS, HISTORY_READERS_PER_ACCOUNT};
use crate::read_model::{MAX_LIMIT, MAX_WORK};
use crate::write::{MAX_ATTEMPTS, MAX_BACKOFF_MS};
use serde_json::{json, Map, Value};

/// What causes a problem of type `kind`.
fn cause(kind: ProblemType) -> String {
    match kind {
        ProblemType::ValidationFailed => "The request broke validation rules (fields, query parameters or the Idempotency-Key / X-Min-Log-Position headers); `errors` names each.".into(),
        ProblemType::MalformedRequest => "The body is not well-formed JSON or XML (the detail gives line and column), is not a JSON object / `<customer>` document, carries a DOCTYPE or an unknown entity, or the connection broke while it streamed in. Also the HTTP layer's answer (any path; application/problem+json only, no X-Request-Id, connection closed) to a request that is not well-formed HTTP/1.1: a broken request line or header, a Content-Length that is not a number or is given twice with different values; an HTTP/1.1 request without exactly one Host header.".into(),
        ProblemType::Unauthorized => "No valid API key: missing, not `Bearer <key>`, unknown or revoked.".into(),
        ProblemType::Forbidden => "The API key's scope does not reach the account (or the admin endpoint, or /metrics from a non-loopback client).".into(),
        ProblemType::NotFound => "No such customer (or one of an account the key does not reach), or no resource at the path.".into(),
        ProblemType::MethodNotAllowed => "A known path with a method it does not route; `Allow` lists the methods. (Not produced by any documented operation.)".into(),
        ProblemType::CustomerErased => "The customer's personal data was erased (POST /api/v01/customers/{customerId}/erasure): get, update, patch and delete answer 410, and a create with the erased customer's code (which names the same customer id) too; codes are never reused. Its history stays readable, every event marked `personalErased`.".into(),
        ProblemType::ErasureUnavailable => "An erasure asked of a registry started with --no-encryption, or of a customer some of whose events the log holds in plain text (written before encryption was on): destroying a key cannot erase them. Copy the log with `customer-registry migrate --encrypt`, serve the copy, then erase.".into(),
        ProblemType::NotAcceptable => "`Accept` allows neither JSON nor XML. Always answered as application/problem+json.".into(),
        ProblemType::UriTooLong => format!("The HTTP layer's answer to an over-long URI (application/problem+json only, no X-Request-Id). Not reachable in practice: a head over {} KiB is refused first with 431.", MAX_HEAD_BYTES / 1024),
        ProblemType::RequestHeadTooLarge => format!("The HTTP layer's answer (any path) to a request line and headers, query string included, larger than {MAX_HEAD_BYTES} bytes: application/problem+json only, no X-Request-Id, connection closed."),
        ProblemType::PayloadTooLarge => format!("The create body is over {MAX_BODY_BYTES} bytes (by Content-Length, or while it streams in)."),
        ProblemType::UnsupportedMediaType => "The create body's Content-Type is not application/json, application/xml or text/xml, or names a charset other than UTF-8.".into(),
        ProblemType::DuplicateCode => "Another customer of the account has the create's `code` (a deleted customer keeps its code): `customerId` and `Location` name it, and `errors` holds one `duplicate_code` error of field `code`.".into(),
        ProblemType::IdempotencyKeyReused => "The Idempotency-Key already created a customer in this account with other details, or made another change to this customer.".into(),
        ProblemType::VersionMismatch => "An update or delete with `If-Match` found the customer at another version (or another change took that version first); `currentVersion` and the `ETag` header give the version it is at.".into(),
        ProblemType::Contended => format!("An update or delete without `If-Match` lost the race for the customer's next version {MAX_ATTEMPTS} times in a row, each retry after a random pause of up to {MAX_BACKOFF_MS} ms (Retry-After: 1)."),
        ProblemType::ChangePending => "The update or delete is in the log, but this replica did not apply it within --projection-wait-ms, so its outcome is not known here; `X-Log-Position` includes it (Retry-After: 1). Read the customer with it as X-Min-Log-Position to learn the outcome.".into(),
        ProblemType::QueryTooBroad => format!("The find would need more than MAX_WORK ({} units); `errors` names its filters (and offset) with code `query_too_broad`.", thousands(MAX_WORK)),
        ProblemType::ReadModelFailure => "The read model (sled) failed.".into(),
        ProblemType::InternalError => "A worker task was cancelled (find, history or listing).".into(),
        ProblemType::EventLogUnavailable => "Kafka did not confirm the create (Retry-After: 5). The detail says whether the outcome is unknown; retry with the same Idempotency-Key.".into(),
        ProblemType::NotEnoughReplicas => "The event's partition has fewer in-sync replicas that answer than the topic's min.insync.replicas, so Kafka cannot acknowledge a write (two of three brokers down): refused at once, nothing written, or found after a send that failed, when the detail says the outcome is unknown (Retry-After: 5). Retry with the same Idempotency-Key; reads keep answering.".into(),
        ProblemType::EventLogUnreadable => "A customer's records could not be read back from Kafka (Retry-After: 5).".into(),
        ProblemType::CatchingUp => "The replica is still replaying the log it saw at start (Retry-After: 1).".into(),
        ProblemType::ReplicaBehind => "The replica did not reach X-Min-Log-Position within --projection-wait-ms, or, for a create with an Idempotency-Key or a code, the end of the customer's partition it decides on (Retry-After: 1).".into(),
        ProblemType::HistoryBusy => format!("HISTORY_READERS ({HISTORY_READERS}) history reads are already running, or {HISTORY_READERS_PER_ACCOUNT} of them for customers of the same account (Retry-After: 1)."),
        ProblemType::Overloaded => "Load shedding: --max-in-flight requests are already being answered (Retry-After: 1). Never for /healthz, /readyz, /metrics. Carries no X-Request-Id.".into(),
        ProblemType::TooManyRequests => "One API key's share of the request slots is taken: --max-in-flight-per-key (128) requests carrying its Authorization value are in flight on this replica (Retry-After: 1). Carries no X-Request-Id.".into(),
        ProblemType::BodyTimeout => "The request body did not arrive whole within --body-read-timeout-ms of its head (the connection is closed). Bodies are read before the request takes one of --max-in-flight slots, so a slow body holds only its own connection.".into(),
        ProblemType::DeadlineExceeded => "The request was not answered within --request-deadline-ms (Retry-After: 1). Carries no X-Request-Id.".into(),
    }
}

/// The codes of field errors (`errors[].code`), each with what causes it.
fn field_error_codes() -> Vec<(&'static str, String)> {
    vec![
        ("required", "`accountId` is missing (or null) in a create body.".into()),
        ("invalid_type", "Wrong JSON type for a field (accountId not an integer, a text field not a string); a find/listing count (`offset`, `limit`) that is not digits only, or an `accountId` filter that is not an integer.".into()),
        ("out_of_range", format!("`accountId` outside 1..={}; `limit` outside 1..={MAX_LIMIT}; `offset` larger than the platform's usize.", AccountId::MAX)),
        ("too_long", format!("A value longer than its field allows (characters after trimming and NFC; phone: more than {} digits or {} characters); an X-Min-Log-Position over {MAX_POSITION_HEADER} bytes.", Phone::MAX_DIGITS, Phone::MAX_CHARS)),
        ("invalid_format", format!("A value that breaks its field's format (email, phone, state, zipCode, countryCode); a find filter that folds to nothing; a query parameter that is not well-formed percent-encoded UTF-8; an Idempotency-Key that is not 1-{} visible ASCII characters, or is sent twice; an X-Min-Log-Position that is not `partition:offset` pairs or holds non-ASCII bytes.", IdempotencyKey::MAX_LEN)),
        ("empty", "A find filter (`accountId`, `code` or a text field) given with an empty or blank value: leave the parameter out not to filter by it.".into()),
        ("noncharacter", "A value holding a Unicode noncharacter (U+FFFE, U+FFFF, U+FDD0-U+FDEF, the last two code points of every plane): no text holds them, and XML cannot.".into()),
        ("control_character", "A value holding a control character (C0, DEL, C1, anywhere) or a bidirectional control (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069).".into()),
        ("unknown_field", format!("A create or update body member that is not a Customer field (e.g. a typo such as `lastname`); the name is quoted up to {NAME_SHOWN} characters.")),
        ("repeated_field", "A create or update body member given twice.".into()),
        ("create_only", "`accountId` or `code` sent in an update body: both are fixed when the customer is created.".into()),
        ("duplicate_code", "In a 409 /problems/duplicate-code: the account has a customer with this code.".into()),
        ("server_assigned", "`id`, `createdAt`, `updatedAt` or `version` sent in a body.".into()),
        ("unknown_parameter", "A query parameter the find or listing does not take.".into()),
        ("repeated_parameter", "A query parameter given twice.".into()),
        ("unknown_partition", "X-Min-Log-Position names a partition the topic does not have (as known to this replica).".into()),
        ("beyond_log_end", "X-Min-Log-Position names an offset past its partition's end now: no write was acknowledged there, so no wait could reach it.".into()),
        ("query_too_broad", "In a 422 /problems/query-too-broad: each parameter that shapes the refused find.".into()),
    ]
}

/// Every field-error code with its cause, a line each.
pub fn codes_table() -> String {
    let lines: Vec<String> = field_error_codes()
        .iter()
        .map(|(code, cause)| format!("- `{code}`: {cause}"))
        .collect();
    lines.join("\n")
}

/// Every problem type with its status and cause, a line each.
pub fn types_table() -> String {
    let lines: Vec<String> = ProblemType::ALL
        .iter()
        .map(|kind| {
            let status = kind.status().as_u16();
            format!("- `{}` ({status}): {}", kind.uri(), cause(*kind))
        })
        .collect();
    lines.join("\n")
}

/// The schemas of problem documents: `Problem` and `FieldError`.
pub fn components() -> Map<String, Value> {
    let mut schemas = Map::new();
    let codes: Vec<&str> = field_error_codes().iter().map(|(code, _)| *code).collect();
    schemas.insert(
        "FieldError".into(),
        json!({
            "type": "object",
            "description": format!(
                "One broken rule. XML: an `<i>` element of `<errors>` with `<field>`, `<code>`, \
                 `<message>`.\n\nCodes:\n{}",
                codes_table()
            ),
            "required": ["field", "code", "message"],
            "additionalProperties": false,
            "properties": {
                "field": {
                    "type": "string",
                    "description": format!(
                        "The field, query parameter or header as the client spelled it (a name \
                         the client sent is quoted up to {NAME_SHOWN} characters, then `…`), \
                         e.g. `lastName`, `limit`, `Idempotency-Key`, `X-Min-Log-Position`."
                    ),
                },
                "code": {"type": "string", "enum": codes},
                "message": {"type": "string", "description": "What was wrong, in words."},
            },
        }),
    );
    let types: Vec<&str> = ProblemType::ALL.iter().map(|kind| kind.uri()).collect();
    schemas.insert(
        "Problem".into(),
        json!({
            "type": "object",
            "description": format!(
                "An RFC 9457 problem document. JSON: {}. XML: {}, root `<problem \
                 xmlns=\"urn:ietf:rfc:7807\">`, array items as `<i>`.\n\nTypes:\n{}",
                Format::Json.problem_content_type(),
                Format::Xml.problem_content_type(),
                types_table()
            ),
            "required": ["type", "title", "status", "detail"],
            "additionalProperties": false,
            "properties": {
                "type": {
                    "type": "string",
                    "format": "uri-reference",
                    "enum": types,
                    "description": "The problem's type, relative to the API's host.",
                },
                "title": {"type": "string", "description": "Fixed per type."},
                "status": {
                    "type": "integer",
                    "minimum": 400,
                    "maximum": 599,
                    "description": "The HTTP status.",
                },
                "detail": {"type": "string", "description": "What went wrong, for a person."},
                "errors": {
                    "type": "array",
                    "maxItems": ERRORS_LISTED,
                    "description": format!(
                        "Validation failures (and query_too_broad): every broken rule, in the \
                         order checked; at most the first {ERRORS_LISTED}."
                    ),
                    "items": {"$ref": "#/components/schemas/FieldError", "xml": {"name": "i"}},
                    "xml": {"wrapped": true},
                },
                "omittedErrors": {
                    "type": "integer",
                    "minimum": 1,
                    "description": format!(
                        "How many errors past the first {ERRORS_LISTED} were left out of \
                         `errors`."
                    ),
                },
                "currentVersion": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "In a 412 /problems/version-mismatch: the version the \
                        customer is at.",
                },
                "customerId": {
                    "type": "string",
                    "format": "uuid",
                    "pattern": UUID_LOWER,
                    "description": "In a 409 /problems/duplicate-code: the customer that has \
                        the code.",
                },
            },
            "xml": {"name": "problem", "namespace": "urn:ietf:rfc:7807"},
        }),
    );
    schemas
}
