//! The operations around the customers: the admin endpoints, the probes, the metrics and this
//! document.

use super::answers::{self, ProblemSchemas, HTTP_400, SHED};
use super::headers::{named, retry_after};
use super::reads::without_body;
use super::{content, either_format, reference, schema, Format, ProblemType as P};
use crate::metrics::{Metrics, CONTENT_TYPE as METRICS};
use serde_json::{json, Map, Value};

/// The probes' schemas, by component name.
pub fn components() -> Map<String, Value> {
    let mut schemas = Map::new();
    schemas.insert(
        "Liveness".into(),
        json!({
            "type": "object",
            "required": ["status"],
            "additionalProperties": false,
            "properties": {"status": {"type": "string", "const": "alive"}},
            "examples": [{"status": "alive"}],
        }),
    );
    schemas.insert(
        "Readiness".into(),
        json!({
            "type": "object",
            "description": "The readiness verdict (checked in the background every second; a \
                verdict older than 10 s counts as not ready).",
            "required": ["ready"],
            "additionalProperties": false,
            "properties": {
                "ready": {"type": "boolean"},
                "reason": {
                    "type": "string",
                    "description": "Why not ready, for a person (e.g. `not checked yet`, \
                        `catching up with the log after a restart`, `the event log cannot be \
                        reached: ...`, `the projection trails the log by N records (at most M)`, \
                        `the readiness check has not run for over 10 s`). Absent when ready.",
                },
                "lag": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "Records of the log not yet applied, summed over partitions; \
                        absent when the log's end is not known.",
                },
            },
            "examples": [{"ready": true, "lag": 0}],
        }),
    );
    schemas
}

/// `GET` (or `HEAD`) `/api/v01/admin/rejected-events`.
pub fn rejected_events(head: bool, problems: &mut ProblemSchemas) -> Value {
    json!({
        "operationId": if head { "listRejectedEventsHead" } else { "listRejectedEvents" },
        "tags": ["admin"],
        "summary": if head { "List rejected records (headers only)" } else { "List rejected records" },
        "description": format!(
            "Records the projector kept out of the read model (conflicts and records that are \
             not events this build applies), in log order, paged like find. Admin keys only. \
             Takes `offset` and `limit` only; any other parameter is `unknown_parameter`. Checks \
             run in this order: API key (401), admin scope (403), Accept (406), query string \
             (400), the listing (500).{}",
            without_body(head, "")
        ),
        "parameters": [
            reference("parameters", "Offset"),
            reference("parameters", "Limit"),
            reference("parameters", "XRequestId"),
        ],
        "responses": {
            "200": {
                "description": "The page.",
                "headers": named(&[("X-Total-Count", true), ("X-Request-Id", true)]),
                "content": either_format("RejectedEventList", head),
            },
            "400": problems.reply(
                &[P::ValidationFailed, P::MalformedRequest],
                &format!(
                    "`offset` or `limit` broke its rule, or an unknown, repeated or badly \
                     percent-encoded parameter (`errors`: invalid_type, out_of_range, \
                     unknown_parameter, repeated_parameter, invalid_format).{HTTP_400}"
                ),
                head,
            ).build(),
            "401": answers::unauthorized(head),
            "403": not_admin(head, problems),
            "406": answers::not_acceptable(head),
            "431": answers::head_too_large(head),
            "500": problems.reply(
                &[P::ReadModelFailure, P::InternalError],
                "The read model failed, or the listing's worker task was cancelled.",
                head,
            ).build(),
            "503": shed(head, "Load shedding or the request deadline (no X-Request-Id).", problems),
        },
    })
}

/// `GET /api/v01/admin/snapshot`.
pub fn snapshot(problems: &mut ProblemSchemas) -> Value {
    json!({
        "operationId": "readModelSnapshot",
        "tags": ["admin"],
        "summary": "A snapshot of this replica's read model",
        "description": "This replica's committed read model and the log position it reaches, \
            streamed as one file (the layout `customer-registry snapshot` writes, ending in a \
            SHA-256 of its contents): what a new replica starts from with `serve --restore-from \
            FILE`, catching up from the snapshot's offsets instead of replaying the log from \
            offset 0. The replica keeps projecting and answering meanwhile; its flushes to disk \
            wait until the snapshot is read. A body that ends early (the replica stopped) fails \
            its checksum at restore. Admin keys only. Checks run in this order: API key (401), \
            admin scope (403).",
        "parameters": [reference("parameters", "XRequestId")],
        "responses": {
            "200": {
                "description": "The snapshot.",
                "headers": named(&[("X-Request-Id", true)]),
                "content": {
                    "application/octet-stream": {
                        "schema": {
                            "type": "string",
                            "contentMediaType": "application/octet-stream",
                        },
                    },
                },
            },
            "401": answers::unauthorized(false),
            "403": not_admin(false, problems),
            "431": answers::head_too_large(false),
            "503": shed(false, "Load shedding or the request deadline (no X-Request-Id).", problems),
        },
    })
}

/// `GET` (or `HEAD`) `/healthz`.
pub fn liveness(head: bool) -> Value {
    json!({
        "operationId": if head { "livenessHead" } else { "liveness" },
        "tags": ["probes"],
        "summary": format!("Liveness probe{}", headers_only(head)),
        "description": "200 while the process serves HTTP. No key; always JSON whatever Accept \
            says; never shed.",
        "security": [],
        "responses": {
            "200": {
                "description": "Alive.",
                "content": content(&[(Format::Json.content_type(), schema("Liveness"))], head),
            },
        },
    })
}

/// `GET` (or `HEAD`) `/readyz`.
pub fn readiness(head: bool) -> Value {
    let verdict = |ready: bool, required: &[&str]| {
        json!({
            "allOf": [schema("Readiness")],
            "properties": {"ready": {"type": "boolean", "const": ready}},
            "required": required,
        })
    };
    let json = Format::Json.content_type();
    json!({
        "operationId": if head { "readinessHead" } else { "readiness" },
        "tags": ["probes"],
        "summary": format!("Readiness probe{}", headers_only(head)),
        "description": "200 when the projection has applied what the log held at start, trails \
            the log's end by at most --ready-max-lag records, and the brokers answer; 503 \
            otherwise. No key; always JSON whatever Accept says; never shed.",
        "security": [],
        "responses": {
            "200": {
                "description": "Ready.",
                "content": content(&[(json, verdict(true, &["ready"]))], head),
            },
            "503": {
                "description": "Not ready; `reason` says why.",
                "content": content(&[(json, verdict(false, &["ready", "reason"]))], head),
            },
        },
    })
}

/// `GET` (or `HEAD`) `/metrics`.
pub fn metrics(head: bool, problems: &mut ProblemSchemas) -> Value {
    let series = Metrics::new().names().join(", ");
    json!({
        "operationId": if head { "metricsHead" } else { "metrics" },
        "tags": ["probes"],
        "summary": format!("Prometheus metrics{}", headers_only(head)),
        "description": format!(
            "The Prometheus text exposition format. Open to loopback clients without a key; any \
             other client needs an admin key (401 without a valid key, 403 for a scoped key). \
             `--metrics-listen ADDR` serves it on a second address to anyone (that address \
             answers only GET/HEAD /metrics, 404 otherwise). Never shed. Series: {series}."
        ),
        "security": [{}, {"apiKey": []}],
        "responses": {
            "200": {
                "description": "The metrics (no X-Request-Id).",
                "content": content(&[(METRICS, json!({"type": "string"}))], head),
            },
            "401": answers::unauthorized(head),
            "403": problems.reply(
                &[P::Forbidden],
                "Not a loopback client, and the API key is not an admin key.",
                head,
            ).build(),
        },
    })
}

/// `GET` (or `HEAD`) `/api/v01/openapi.json`.
pub fn openapi(head: bool, problems: &mut ProblemSchemas) -> Value {
    let document = json!({"type": "object", "required": ["openapi", "info", "paths"]});
    json!({
        "operationId": if head { "openApiDocumentHead" } else { "openApiDocument" },
        "tags": ["meta"],
        "summary": format!("This OpenAPI document{}", headers_only(head)),
        "description": "Serves this document (application/json). No key.",
        "security": [],
        "responses": {
            "200": {
                "description": "The OpenAPI 3.1 document of the API.",
                "content": content(&[(Format::Json.content_type(), document)], head),
            },
            "503": shed(
                head,
                "Load shedding or the request deadline (the path is not exempt from them).",
                problems,
            ),
        },
    })
}

fn headers_only(head: bool) -> &'static str {
    if head {
        " (headers only)"
    } else {
        ""
    }
}

fn not_admin(head: bool, problems: &mut ProblemSchemas) -> Value {
    problems
        .reply(&[P::Forbidden], "The API key is not an admin key.", head)
        .build()
}

/// The 503 the server answers itself: load shedding and the request deadline.
fn shed(head: bool, description: &str, problems: &mut ProblemSchemas) -> Value {
    problems
        .reply(&SHED, description, head)
        .header("Retry-After", retry_after(None, None))
        .without_request_id()
        .build()
}
