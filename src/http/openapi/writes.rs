//! The operations that change customers: create, update (`POST`, or `PATCH` with a merge
//! patch) and delete.

use super::answers::{self, ProblemSchemas, HTTP_400, SHED};
use super::headers::{header, named, retry_after};
use super::reads::erased;
use super::{either_format, reference, schema, Consumes, ProblemType as P, MAX_BODY_BYTES};
use crate::domain::IdempotencyKey;
use crate::log::DELIVERY_TIMEOUT;
use crate::write::CREATE_DEADLINE;
use serde_json::{json, Value};

/// `PUT /api/v01/customers`.
pub fn create(problems: &mut ProblemSchemas) -> Value {
    let unavailable = [
        P::EventLogUnavailable,
        P::NotEnoughReplicas,
        P::ChangePending,
        P::CatchingUp,
        P::ReplicaBehind,
    ];
    let unavailable_because = format!(
        "Kafka did not confirm the event within about {} s (the whole create is bounded at {} \
         s): the detail says whether nothing was written or the outcome is unknown; retry with \
         the same Idempotency-Key (Retry-After: 5). The event's partition has too few in-sync \
         replicas that answer for Kafka to acknowledge it (not-enough-replicas, Retry-After: 5): \
         refused at once while the cluster is short. A create with a `code` whose event this \
         replica did not apply within --projection-wait-ms: whether it won the code is not known \
         here yet (change-pending, with X-Log-Position and Location naming the customer the code \
         names, and no Retry-After: read that customer with X-Min-Log-Position rather than \
         create again). The replica is still replaying the log it saw at start (catching-up, \
         Retry-After: 1), or, for a create with an Idempotency-Key or a code, did not apply the \
         customer's partition up to its end within --projection-wait-ms (replica-behind, \
         Retry-After: 1). Or load shedding / the request deadline (Retry-After: 1, no \
         X-Request-Id).",
        DELIVERY_TIMEOUT.as_secs(),
        CREATE_DEADLINE.as_secs()
    );
    json!({
        "operationId": "createCustomer",
        "tags": ["customers"],
        "summary": "Create a customer",
        "description": "Validates a Customer and appends a `CustomerCreated` event to the Kafka \
            topic; answers 201 once Kafka confirmed it and this replica's read model applied it \
            (bounded by --projection-wait-ms, past which the 201 still goes out with \
            `X-Projection-Pending: true`). Checks run in this order: API key (401), Accept \
            (406), Content-Type (415), Idempotency-Key (400), body size (413), body syntax (400 \
            malformed-request), field rules (400 validation-failed), key scope (403), then the \
            write (422, 500, 503).",
        "parameters": [
            reference("parameters", "IdempotencyKey"),
            reference("parameters", "XRequestId"),
        ],
        "requestBody": {
            "required": true,
            "description": format!(
                "A Customer without `id` and `createdAt`, at most {MAX_BODY_BYTES} bytes, UTF-8. \
                 JSON (also assumed when Content-Type is absent) or XML (`application/xml` or \
                 `text/xml`); a `charset` parameter other than UTF-8 is 415."
            ),
            "content": {
                "application/json": {"schema": schema("CustomerInput")},
                "application/xml": {"schema": schema("CustomerInputXml")},
                "text/xml": {"schema": schema("CustomerInputXml")},
            },
        },
        "responses": {
            "201": {
                "description": "Created: Kafka confirmed the `CustomerCreated` event (idempotent \
                    producer, acks=all) and, unless `X-Projection-Pending: true`, this replica's \
                    read model has applied it. Also the answer to a retried Idempotency-Key with \
                    the same details (`Idempotent-Replayed: true`). The body is the customer in \
                    the negotiated format.",
                "headers": named(&[
                    ("ETag", true),
                    ("Location", true),
                    ("X-Log-Position", true),
                    ("X-Request-Id", true),
                    ("X-Projection-Pending", false),
                    ("Idempotent-Replayed", false),
                ]),
                "content": either_format("Customer", false),
                "links": {
                    "GetCreatedCustomer": {
                        "operationId": "getCustomer",
                        "parameters": {"customerId": "$response.body#/id"},
                        "description": "The customer just created.",
                    },
                    "GetCreatedCustomerHistory": {
                        "operationId": "getCustomerHistory",
                        "parameters": {"customerId": "$response.body#/id"},
                        "description": "The records that built the customer just created.",
                    },
                },
            },
            "400": problems.reply(
                &[P::ValidationFailed, P::MalformedRequest],
                &format!(
                    "The body broke the field rules (`errors` lists every one: required, \
                     invalid_type, out_of_range, too_long, invalid_format, control_character, \
                     noncharacter, unknown_field, repeated_field, server_assigned), the \
                     Idempotency-Key header is not 1-{} visible ASCII or was sent twice \
                     (invalid_format), or the body is not well-formed JSON/XML \
                     (malformed-request, with line and column; the HTTP layer's \
                     malformed-request for a request that is not well-formed HTTP/1.1 comes in \
                     JSON without X-Request-Id).",
                    IdempotencyKey::MAX_LEN
                ),
                false,
            ).build(),
            "401": answers::unauthorized(false),
            "403": problems.reply(
                &[P::Forbidden],
                "The API key's scope does not reach the body's accountId.",
                false,
            ).build(),
            "406": answers::not_acceptable(false),
            "410": problems.reply(
                &[P::CustomerErased],
                "The code (or the Idempotency-Key) names a customer whose personal data was \
                 erased: codes are never given to another customer; choose another.",
                false,
            ).build(),
            "408": body_timeout(problems),
            "413": problems.reply(
                &[P::PayloadTooLarge],
                &format!(
                    "The body is over {MAX_BODY_BYTES} bytes (by Content-Length, before reading, \
                     or while it streams in)."
                ),
                false,
            ).build(),
            "415": problems.reply(
                &[P::UnsupportedMediaType],
                "Content-Type is not application/json, application/xml or text/xml (none at all \
                 is read as JSON), or its charset is not UTF-8.",
                false,
            ).build(),
            "409": problems.reply(
                &[P::DuplicateCode],
                "Another customer of the account has the body's `code` (deleted customers keep \
                 theirs): `customerId` and the `Location` header name it.",
                false,
            ).header("Location", header("Location", true)).build(),
            "422": problems.reply(
                &[P::IdempotencyKeyReused],
                "The Idempotency-Key already created a customer in this account with other \
                 details.",
                false,
            ).build(),
            "431": answers::head_too_large(false),
            "500": problems.reply(
                &[P::ReadModelFailure],
                "The read model failed while the create consulted it (idempotent creates).",
                false,
            ).build(),
            "503": problems.reply(&[&unavailable[..], &SHED[..]].concat(), &unavailable_because, false)
                .header(
                    "Retry-After",
                    retry_after(
                        Some("event-log-unavailable and not-enough-replicas"),
                        Some("change-pending"),
                    ),
                )
                .header("X-Log-Position", header("X-Log-Position", false))
                .header("Location", header("Location", false))
                .sometimes_request_id()
                .build(),
        },
    })
}

/// `POST` (`Consumes::Update`) or `PATCH` (`Consumes::MergePatch`)
/// `/api/v01/customers/{customerId}`.
pub fn update(consumes: Consumes, problems: &mut ProblemSchemas) -> Value {
    let patch = consumes == Consumes::MergePatch;
    let (operation_id, summary, what, consumed, body) = if patch {
        (
            "patchCustomer",
            "Update a customer (merge patch)",
            "The same update as POST, by PATCH with a JSON merge patch (RFC 7396). ",
            "Content-Type is absent or not application/merge-patch+json",
            format!(
                "A CustomerMergePatch, at most {MAX_BODY_BYTES} bytes, UTF-8, as \
                 application/merge-patch+json (no Content-Type, or another, is 415)."
            ),
        )
    } else {
        (
            "updateCustomer",
            "Update a customer",
            "Changes the fields the body names (a value replaces, an empty value clears, an \
             absent field is kept) and appends a `CustomerUpdated` event naming the version it \
             gives the customer. ",
            "Content-Type is not application/json, application/merge-patch+json, \
             application/xml or text/xml (none at all is read as JSON)",
            format!(
                "A CustomerUpdate, at most {MAX_BODY_BYTES} bytes, UTF-8: application/json (also \
                 read when Content-Type is absent), or XML (application/xml or text/xml). The \
                 server also takes application/merge-patch+json here, as PATCH does."
            ),
        )
    };
    let content = if patch {
        json!({"application/merge-patch+json": {"schema": schema("CustomerMergePatch")}})
    } else {
        json!({
            "application/json": {"schema": schema("CustomerUpdate")},
            "application/xml": {"schema": schema("CustomerUpdateXml")},
            "text/xml": {"schema": schema("CustomerUpdateXml")},
        })
    };
    json!({
        "operationId": operation_id,
        "tags": ["customers"],
        "summary": summary,
        "description": format!(
            "{what}Answers 200 with the whole customer once this replica applied the event (or \
             at once, appending nothing, when nothing changes). Without If-Match the change \
             applies to whatever version is current (retried on the new state when another \
             change takes the version first). {}",
            check_order(
                ", Content-Type (415)",
                ", body size (413), body syntax and field rules (400)"
            )
        ),
        "parameters": change_parameters(),
        "requestBody": {
            "required": true,
            "description": body,
            "content": content,
        },
        "responses": {
            "200": {
                "description": "The customer as the update left it (or as it is, when the \
                    update changed nothing).",
                "headers": named(&[
                    ("ETag", true),
                    ("X-Log-Position", true),
                    ("X-Request-Id", true),
                    ("Idempotent-Replayed", false),
                ]),
                "content": either_format("Customer", false),
            },
            "400": problems.reply(
                &[P::ValidationFailed, P::MalformedRequest],
                &format!(
                    "The body broke the field rules (create_only, server_assigned, \
                     unknown_field, repeated_field, invalid_type and each field's rules), \
                     If-Match, Idempotency-Key or X-Min-Log-Position is malformed, or the body \
                     is not well-formed JSON/XML.{HTTP_400}"
                ),
                false,
            ).build(),
            "401": answers::unauthorized(false),
            "404": problems.reply(
                &[P::NotFound],
                "No customer with this id, a deleted one (or deleted by a change that came \
                 first), or one of an account the API key does not reach.",
                false,
            ).build(),
            "406": answers::not_acceptable(false),
            "410": erased(false, problems),
            "412": version_mismatch(problems),
            "422": key_reused(problems),
            "408": body_timeout(problems),
            "413": problems.reply(
                &[P::PayloadTooLarge],
                &format!("The body is over {MAX_BODY_BYTES} bytes."),
                false,
            ).build(),
            "415": problems.reply(
                &[P::UnsupportedMediaType],
                &format!("{consumed}, or its charset is not UTF-8."),
                false,
            ).build(),
            "431": answers::head_too_large(false),
            "500": read_model_failure(problems),
            "503": change_unavailable(problems),
        },
    })
}

/// `DELETE /api/v01/customers/{customerId}`.
pub fn delete(problems: &mut ProblemSchemas) -> Value {
    json!({
        "operationId": "deleteCustomer",
        "tags": ["customers"],
        "summary": "Delete a customer",
        "description": format!(
            "Appends a `CustomerDeleted` event; answers 204 once this replica applied it. A \
             deleted customer is absent from find and get (404); its history still lists every \
             event. {}",
            check_order("", "")
        ),
        "parameters": change_parameters(),
        "responses": {
            "204": {
                "description": "Deleted (or, for a retried Idempotency-Key, deleted by the \
                    first request: `Idempotent-Replayed: true`).",
                "headers": named(&[
                    ("X-Log-Position", true),
                    ("X-Request-Id", true),
                    ("Idempotent-Replayed", false),
                ]),
            },
            "400": problems.reply(
                &[P::ValidationFailed, P::MalformedRequest],
                &format!("If-Match, Idempotency-Key or X-Min-Log-Position is malformed.{HTTP_400}"),
                false,
            ).build(),
            "401": answers::unauthorized(false),
            "404": problems.reply(
                &[P::NotFound],
                "No customer with this id, one deleted already, or one of an account the API \
                 key does not reach.",
                false,
            ).build(),
            "406": answers::not_acceptable(false),
            "410": erased(false, problems),
            "412": version_mismatch(problems),
            "422": key_reused(problems),
            "431": answers::head_too_large(false),
            "500": read_model_failure(problems),
            "503": change_unavailable(problems),
        },
    })
}

/// The order a change's checks run in, with a body's checks (`body`, `size`) where it has one.
fn check_order(body: &str, size: &str) -> String {
    format!(
        "Checks run in this order: API key (401), Accept (406){body}, If-Match (400), \
         Idempotency-Key (400){size}, X-Min-Log-Position (400), catching up / waiting (503), the \
         lookup (404), then the change (412, 422, 500, 503)."
    )
}

fn change_parameters() -> Value {
    json!([
        reference("parameters", "IfMatch"),
        reference("parameters", "ChangeIdempotencyKey"),
        reference("parameters", "MinLogPosition"),
        reference("parameters", "XRequestId"),
    ])
}

fn body_timeout(problems: &mut ProblemSchemas) -> Value {
    problems
        .reply(
            &[P::BodyTimeout],
            "The body did not arrive whole within --body-read-timeout-ms of the request head; \
             the connection is closed. Carries no X-Request-Id.",
            false,
        )
        .without_request_id()
        .build()
}

fn version_mismatch(problems: &mut ProblemSchemas) -> Value {
    problems
        .reply(
            &[P::VersionMismatch],
            "If-Match named a version the customer is not at.",
            false,
        )
        .header("ETag", header("ETag", true))
        .build()
}

fn key_reused(problems: &mut ProblemSchemas) -> Value {
    problems
        .reply(
            &[P::IdempotencyKeyReused],
            "The Idempotency-Key made another change to this customer.",
            false,
        )
        .build()
}

fn read_model_failure(problems: &mut ProblemSchemas) -> Value {
    problems
        .reply(&[P::ReadModelFailure], "The read model failed.", false)
        .build()
}

fn change_unavailable(problems: &mut ProblemSchemas) -> Value {
    let unavailable = [
        P::EventLogUnavailable,
        P::NotEnoughReplicas,
        P::Contended,
        P::ChangePending,
        P::CatchingUp,
        P::ReplicaBehind,
    ];
    problems
        .reply(
            &[&unavailable[..], &SHED[..]].concat(),
            "Kafka did not confirm the event (event-log-unavailable, Retry-After: 5); its \
             partition has too few in-sync replicas that answer (not-enough-replicas, \
             Retry-After: 5); the customer kept changing (contended); the outcome is not known \
             here yet (change-pending, with X-Log-Position); the replica is catching up or behind \
             X-Min-Log-Position; or load shedding / the request deadline (no X-Request-Id).",
            false,
        )
        .header(
            "Retry-After",
            retry_after(Some("event-log-unavailable and not-enough-replicas"), None),
        )
        .header("X-Log-Position", header("X-Log-Position", false))
        .sometimes_request_id()
        .build()
}
