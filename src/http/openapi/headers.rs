//! The headers answers carry: each described once, then named by the answers that carry it,
//! each saying whether it always does.

use super::text::UUID_LOWER;
use super::{challenge, MAX_REQUEST_ID, ROUTES};
use crate::auth::AuthError;
use serde_json::{json, Map, Value};

/// The answers' headers, by name.
pub fn components() -> Map<String, Value> {
    let mut headers = Map::new();
    headers.insert(
        "ETag".into(),
        json!({
            "description": "The customer's version as a strong entity tag, e.g. `\"3\"`. Send \
                it back as If-Match to make an update or delete conditional.",
            "schema": {"type": "string", "pattern": "^\"[1-9][0-9]*\"$"},
        }),
    );
    headers.insert(
        "X-Request-Id".into(),
        json!({
            "description": format!(
                "The request's id: the client's `X-Request-Id` when it is 1 to {MAX_REQUEST_ID} \
                 visible ASCII characters, otherwise one the server assigned (a UUIDv7). Events \
                 the request causes carry it as `requestId`."
            ),
            "schema": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_REQUEST_ID,
                "pattern": "^[!-~]+$",
            },
        }),
    );
    headers.insert(
        "X-Log-Position".into(),
        json!({
            "description": "The log position this answer reflects, as `partition:offset` pairs \
                (next offsets), e.g. `0:15,1:7,2:33`; empty when the projection knows no \
                partition yet. Send it back as X-Min-Log-Position for read-your-writes on any \
                replica.",
            "schema": {"type": "string", "pattern": "^(?:[0-9]+:[0-9]+(?:,[0-9]+:[0-9]+)*)?$"},
        }),
    );
    headers.insert(
        "X-Total-Count".into(),
        json!({
            "description": "The number of matches over all pages.",
            "schema": {"type": "integer", "minimum": 0},
        }),
    );
    let challenges = [
        AuthError::Missing,
        AuthError::Malformed,
        AuthError::UnknownKey,
    ]
    .map(|why| challenge(&why));
    headers.insert(
        "WWW-Authenticate".into(),
        json!({
            "description": "`Bearer realm=\"customer-registry\"`, with \
                `error=\"invalid_request\"` for an Authorization that is not `Bearer <key>`, and \
                `error=\"invalid_token\"` for an unknown or revoked key.",
            "schema": {"type": "string", "enum": challenges},
        }),
    );
    headers.insert(
        "Location".into(),
        json!({
            "description": "The customer's path.",
            "schema": {"type": "string", "pattern": customer_path()},
        }),
    );
    headers.insert(
        "X-Projection-Pending".into(),
        json!({
            "description": "Present (`true`) when the event is durable in Kafka but this \
                replica's read model had not applied it within --projection-wait-ms.",
            "schema": {"type": "string", "enum": ["true"]},
        }),
    );
    headers.insert(
        "Idempotent-Replayed".into(),
        json!({
            "description": "Present (`true`) when a retried Idempotency-Key was answered from \
                its first request: the customer it created (same id and createdAt), or the \
                customer as the key's change left it (or the 204 of its delete); nothing was \
                appended.",
            "schema": {"type": "string", "enum": ["true"]},
        }),
    );
    headers
}

/// A customer's path, as `Location` gives it: the route of one customer, with its id.
fn customer_path() -> String {
    let route = ROUTES
        .iter()
        .find(|route| route.path.ends_with("/{customerId}"))
        .expect("a route names one customer");
    let id = UUID_LOWER.trim_start_matches('^');
    format!("^{}", route.path.replace("{customerId}", id))
}

/// The header `name` as an answer carries it: always (`required`) or sometimes. (In OpenAPI
/// 3.1 a reference cannot say `required`, so each answer holds a copy.)
pub fn header(name: &str, required: bool) -> Value {
    let mut header = components()
        .shift_remove(name)
        .expect("a header the document describes");
    header["required"] = required.into();
    header
}

/// `Retry-After` as an answer carries it: 1, or 5 for the problems `five_for` names; absent
/// from those `absent_for` names.
pub fn retry_after(five_for: Option<&str>, absent_for: Option<&str>) -> Value {
    let (mut description, values) = match five_for {
        None => (
            "Seconds to wait before retrying: always 1 here.".to_owned(),
            json!([1]),
        ),
        Some(problems) => (
            format!("Seconds to wait before retrying: 5 for {problems}, 1 otherwise."),
            json!([1, 5]),
        ),
    };
    if let Some(problems) = absent_for {
        description += &format!(" Absent for {problems}.");
    }
    json!({
        "description": description,
        "required": absent_for.is_none(),
        "schema": {"type": "integer", "enum": values},
    })
}

/// Headers by name, in the order given.
pub fn named(headers: &[(&str, bool)]) -> Value {
    let headers: Map<String, Value> = headers
        .iter()
        .map(|(name, required)| ((*name).to_owned(), header(name, *required)))
        .collect();
    Value::Object(headers)
}
