//! The parameters operations take: request headers, the path's customer id, paging and the
//! find's filters.

use super::fields;
use super::text::{self, anchored, trimmed};
use super::{MAX_POSITION_HEADER, MAX_REQUEST_ID};
use crate::domain::{AccountId, CustomerCode, IdempotencyKey, TextField};
use crate::read_model::{DEFAULT_LIMIT, MAX_LIMIT};
use serde_json::{json, Map, Value};

/// The parameters, by component name.
pub fn components() -> Map<String, Value> {
    let mut parameters = Map::new();
    parameters.insert(
        "XRequestId".into(),
        header(
            "X-Request-Id",
            format!(
                "Names the request; echoed in `X-Request-Id` and recorded as the events' \
                 `requestId`. Kept when it is 1 to {MAX_REQUEST_ID} visible ASCII characters; any \
                 other value is never refused, but replaced by a server-assigned UUIDv7."
            ),
            json!({"type": "string"}),
        ),
    );
    parameters.insert("MinLogPosition".into(), min_log_position());
    parameters.insert(
        "IfMatch".into(),
        header(
            "If-Match",
            "Makes the change conditional: versions as ETag gives them, in double quotes \
             (`\"3\"`), separated by commas, or `*` (any current customer, the same as no \
             header). The change applies only if the customer is at a listed version when the \
             log reaches it; otherwise 412 /problems/version-mismatch naming the current version. \
             Weak tags (`W/\"3\"`) may be listed but never match (If-Match compares strongly): \
             weak tags alone are a 412. Anything else (no quotes, not digits) is 400 \
             /problems/validation-failed, `invalid_format`, field `If-Match`."
                .into(),
            json!({
                "type": "string",
                "pattern": r#"^(\*|(W/)?"[0-9]{1,19}"([ \t]*,[ \t]*(W/)?"[0-9]{1,19}")*)$"#,
            }),
        ),
    );
    let max = IdempotencyKey::MAX_LEN;
    parameters.insert(
        "ChangeIdempotencyKey".into(),
        header(
            "Idempotency-Key",
            format!(
                "1 to {max} visible ASCII characters, scoped to the customer. A retry of the same \
                 request (same method, fields, values and If-Match) answers what the first \
                 answered (the customer as that change left it, or 204, with \
                 `Idempotent-Replayed: true`) and appends nothing; the same key with another \
                 request is 422 /problems/idempotency-key-reused. A key that is empty, longer than \
                 {max}, holds other characters, or is sent on two header lines is 400 \
                 (`invalid_format`, field `Idempotency-Key`)."
            ),
            idempotency_key(),
        ),
    );
    parameters.insert(
        "IdempotencyKey".into(),
        header(
            "Idempotency-Key",
            format!(
                "1 to {max} visible ASCII characters (`!` to `~`), scoped to the body's \
                 accountId. A retry with the same key and the same customer answers the original \
                 customer (201, same id and createdAt, `Idempotent-Replayed: true`) and appends \
                 nothing; the same key with other details is 422 \
                 /problems/idempotency-key-reused. A key that is empty, longer than {max}, holds \
                 other characters, or is sent on two header lines is 400 \
                 /problems/validation-failed, `invalid_format`, field `Idempotency-Key` (never \
                 read as absent)."
            ),
            idempotency_key(),
        ),
    );
    parameters.insert(
        "Offset".into(),
        query(
            "offset",
            "Matches to skip (default 0). Digits only (`+5`, ` 5`, `-1`, an empty value are \
             `invalid_type`); past the platform's usize `out_of_range`."
                .into(),
            json!({"type": "integer", "minimum": 0, "maximum": usize::MAX, "default": 0}),
        ),
    );
    parameters.insert(
        "Limit".into(),
        query(
            "limit",
            format!(
                "Most matches to return, 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT}). Digits only \
                 (`invalid_type` otherwise); outside 1..={MAX_LIMIT} `out_of_range`."
            ),
            json!({
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_LIMIT,
                "default": DEFAULT_LIMIT,
            }),
        ),
    );
    parameters.insert(
        "CustomerId".into(),
        json!({
            "name": "customerId",
            "in": "path",
            "required": true,
            "description": "The customer's id in the canonical hyphenated UUID form (36 \
                characters). Anything else, an unknown id, or a customer of an account the API \
                key does not reach is 404 /problems/not-found.",
            "schema": {
                "type": "string",
                "format": "uuid",
                "minLength": 36,
                "maxLength": 36,
                "pattern": "^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$",
            },
            "example": "019abb9c-4f2e-7a10-8c55-2f0d6e9b1c43",
        }),
    );
    parameters.insert(
        "AccountIdFilter".into(),
        query(
            "accountId",
            format!(
                "Customers of this account only (exact match). The trimmed value must be an \
                 integer (`invalid_type`) in 1..={} (`out_of_range`); an empty or blank value is \
                 `empty` (leave the parameter out not to filter). With a scoped API key, an \
                 account outside its scope is 403; without accountId a scoped key finds in its \
                 own accounts only.",
                AccountId::MAX
            ),
            json!({"type": "integer", "minimum": 1, "maximum": AccountId::MAX}),
        ),
    );
    for field in TextField::ALL {
        let (description, schema) = fields::filter(field);
        parameters.insert(filter_name(field), query(field.name(), description, schema));
    }
    parameters.insert(
        "CodeFilter".into(),
        query(
            "code",
            format!(
                "The cross-reference lookup: the customer whose `code` is exactly this \
                 (case-sensitive; trimmed), the merchant's own reference given at create, or the \
                 customer's id for one created without a code. A code is unique per account, so \
                 `accountId` plus `code` answers at most one customer; without `accountId` the \
                 find looks in every account the API key reaches. 1 to {} ASCII letters, digits \
                 or `-` `_` `.` `:` `/` (`invalid_format`, `too_long`); an empty or blank value \
                 is `empty`. Combines with the other filters by AND.",
                CustomerCode::MAX_CHARS
            ),
            json!({"type": "string", "pattern": anchored(&[&trimmed(&text::code())])}),
        ),
    );
    parameters
}

/// The component name of the find's filter on `field` (`FirstNameFilter`).
pub fn filter_name(field: TextField) -> String {
    let name = field.name();
    format!("{}{}Filter", name[..1].to_ascii_uppercase(), &name[1..])
}

fn header(name: &str, description: String, schema: Value) -> Value {
    json!({
        "name": name,
        "in": "header",
        "required": false,
        "description": description,
        "schema": schema,
    })
}

fn query(name: &str, description: String, schema: Value) -> Value {
    json!({
        "name": name,
        "in": "query",
        "required": false,
        "description": description,
        "schema": schema,
    })
}

/// An `Idempotency-Key`, on creates and changes alike.
fn idempotency_key() -> Value {
    let max = IdempotencyKey::MAX_LEN;
    json!({
        "type": "string",
        "minLength": 1,
        "maxLength": max,
        "pattern": format!("^[!-~]{{1,{max}}}$"),
    })
}

fn min_log_position() -> Value {
    let pair = r"\+?[0-9]{1,9}[ \t]*:[ \t]*\+?[0-9]{1,18}";
    let mut parameter = header(
        "X-Min-Log-Position",
        format!(
            "Read-your-writes: the `X-Log-Position` of an earlier answer. The replica waits (up \
             to --projection-wait-ms, default 5 s) until it has applied that much of the log, or \
             answers 503 /problems/replica-behind with Retry-After: 1. Comma-separated \
             `partition:offset` pairs (partition a non-negative i32, offset a non-negative i64, \
             each partition once; blanks around items ignored, an empty item such as `0:1,` \
             refused; several header lines are joined as one list). 400 \
             /problems/validation-failed naming `X-Min-Log-Position`: `invalid_format` for bytes \
             outside visible ASCII or a value that is not such pairs, `too_long` over \
             {MAX_POSITION_HEADER} bytes, `unknown_partition` for a partition the topic does not \
             have (checked even while the replica is catching up), `beyond_log_end` for an \
             offset past the partition's end as Kafka reports it now (no write was acknowledged \
             there: refused at once, not waited for). An empty value asks for nothing (it is \
             what an empty log's answers give). (The pattern bounds partitions to 9 digits and \
             offsets to 18: a larger partition is always `unknown_partition`.)"
        ),
        json!({
            "type": "string",
            "maxLength": MAX_POSITION_HEADER,
            "pattern": format!(r"^[ \t]*(?:{pair})?[ \t]*(?:,[ \t]*(?:{pair})?[ \t]*)*$"),
        }),
    );
    parameter["example"] = json!("0:0");
    parameter
}
