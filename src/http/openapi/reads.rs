//! The operations that read customers: find, get and a customer's history, each also as `HEAD`.

use super::answers::{self, ProblemSchemas, HTTP_400, SHED};
use super::headers::{named, retry_after};
use super::parameters::filter_name;
use super::{
    content, either_format, reference, schema, thousands, Format, ProblemType as P,
    MAX_POSITION_HEADER,
};
use crate::domain::TextField;
use crate::log::{HISTORY_READERS, HISTORY_READERS_PER_ACCOUNT};
use crate::read_model::MAX_WORK;
use serde_json::{json, Value};

/// `GET` (or `HEAD`) `/api/v01/customers`.
pub fn find(head: bool, problems: &mut ProblemSchemas) -> Value {
    let mut parameters: Vec<Value> = ["Offset", "Limit", "AccountIdFilter", "CodeFilter"]
        .iter()
        .map(|name| reference("parameters", name))
        .collect();
    parameters.extend(
        TextField::ALL
            .into_iter()
            .map(|field| reference("parameters", &filter_name(field))),
    );
    parameters.push(reference("parameters", "MinLogPosition"));
    parameters.push(reference("parameters", "XRequestId"));
    json!({
        "operationId": if head { "findCustomersHead" } else { "findCustomers" },
        "tags": ["customers"],
        "summary": if head { "Find customers (headers only)" } else { "Find customers" },
        "description": format!(
            "The page of customers the filters select, combined with AND, ordered by createdAt \
             then id. Every field is a filter, checked by the same rules as in a create body. \
             Unknown or repeated parameters are a 400, and so is a parameter (name or value) that \
             is not well-formed percent-encoded UTF-8 (`invalid_format`, naming it); `+` reads as \
             a space. Checks run in this order: API key (401), Accept (406), query string (400), \
             key scope (403), X-Min-Log-Position (400), catching up (503), waiting for \
             X-Min-Log-Position (503), the find (422, 500). A find's work is metered; one needing \
             more than {} units is refused with 422 /problems/query-too-broad.{}",
            thousands(MAX_WORK),
            without_body(head, "")
        ),
        "parameters": parameters,
        "responses": {
            "200": {
                "description": "The page (possibly empty).",
                "headers": named(&[
                    ("X-Total-Count", true),
                    ("X-Log-Position", true),
                    ("X-Request-Id", true),
                ]),
                "content": either_format("CustomerList", head),
            },
            "400": problems.reply(
                &[P::ValidationFailed, P::MalformedRequest],
                &format!(
                    "A parameter broke its rule (`errors` names every one: unknown_parameter, \
                     repeated_parameter, invalid_type, out_of_range, empty, too_long, \
                     invalid_format, control_character, noncharacter), or {}{HTTP_400}",
                    min_position_refused()
                ),
                head,
            ).build(),
            "401": answers::unauthorized(head),
            "403": problems.reply(
                &[P::Forbidden],
                "`accountId` names an account the scoped API key does not reach.",
                head,
            ).build(),
            "406": answers::not_acceptable(head),
            "422": problems.reply(
                &[P::QueryTooBroad],
                "The find would need more work than any find may do; `errors` names its filters \
                 (and offset) with code `query_too_broad`. Add accountId or another filter, use a \
                 longer prefix, or page less deep.",
                head,
            ).build(),
            "431": answers::head_too_large(head),
            "500": problems.reply(
                &[P::ReadModelFailure, P::InternalError],
                "The read model failed, or the find's worker task was cancelled.",
                head,
            ).build(),
            "503": unavailable(head, false, problems),
        },
    })
}

/// `GET` (or `HEAD`) `/api/v01/customers/{customerId}`.
pub fn get(head: bool, problems: &mut ProblemSchemas) -> Value {
    json!({
        "operationId": if head { "getCustomerHead" } else { "getCustomer" },
        "tags": ["customers"],
        "summary": if head { "Get a customer (headers only)" } else { "Get a customer" },
        "description": format!(
            "One customer. Checks run in this order: API key (401), Accept (406), \
             X-Min-Log-Position (400), catching up / waiting (503), then the lookup (404, 500). A \
             customer of an account the key does not reach is a 404 worded as for an unknown \
             id.{}",
            without_body(head, "")
        ),
        "parameters": [
            reference("parameters", "MinLogPosition"),
            reference("parameters", "XRequestId"),
        ],
        "responses": {
            "200": {
                "description": "The customer; `ETag` gives its version, for If-Match.",
                "headers": named(&[
                    ("ETag", true),
                    ("X-Log-Position", true),
                    ("X-Request-Id", true),
                ]),
                "content": either_format("Customer", head),
            },
            "400": position_refused(head, problems),
            "401": answers::unauthorized(head),
            "404": problems.reply(
                &[P::NotFound],
                "No customer with this id (an id not in canonical hyphenated UUID form names \
                 none), or one of an account the API key does not reach.",
                head,
            ).build(),
            "406": answers::not_acceptable(head),
            "410": erased(head, problems),
            "431": answers::head_too_large(head),
            "500": problems.reply(&[P::ReadModelFailure], "The read model failed.", head).build(),
            "503": unavailable(head, false, problems),
        },
    })
}

/// `GET` (or `HEAD`) `/api/v01/customers/{customerId}/events`.
pub fn history(head: bool, problems: &mut ProblemSchemas) -> Value {
    json!({
        "operationId": if head { "getCustomerHistoryHead" } else { "getCustomerHistory" },
        "tags": ["customers"],
        "summary": if head { "A customer's records (headers only)" } else { "A customer's records" },
        "description": format!(
            "The records of the log that built the customer, in log order, each with its \
             partition, offset, timestamp, key and the event as published; the payloads are read \
             back from Kafka. At most {HISTORY_READERS} such reads run at once, \
             {HISTORY_READERS_PER_ACCOUNT} for one account's customers; one past either is \
             refused at once with 503 /problems/history-busy. JSON and XML differ in shape: JSON \
             gives the event as a JSON value (`event`), XML as JSON text (`<value>`). Checks run \
             in this order: API key (401), Accept (406), X-Min-Log-Position (400), catching up / \
             waiting (503), the lookup (404, 500), then the read (503, 500).{}",
            without_body(head, " (it still reads the records)")
        ),
        "parameters": [
            reference("parameters", "MinLogPosition"),
            reference("parameters", "XRequestId"),
        ],
        "responses": {
            "200": {
                "description": "The records.",
                "headers": named(&[("X-Log-Position", true), ("X-Request-Id", true)]),
                "content": content(
                    &[
                        (Format::Json.content_type(), schema("HistoryRecordList")),
                        (Format::Xml.content_type(), schema("HistoryRecordXmlList")),
                    ],
                    head,
                ),
            },
            "400": position_refused(head, problems),
            "401": answers::unauthorized(head),
            "404": problems.reply(
                &[P::NotFound],
                "No customer with this id, or one of an account the API key does not reach.",
                head,
            ).build(),
            "406": answers::not_acceptable(head),
            "431": answers::head_too_large(head),
            "500": problems.reply(
                &[P::ReadModelFailure, P::InternalError],
                "The read model failed, or the read's worker task was cancelled.",
                head,
            ).build(),
            "503": unavailable(head, true, problems),
        },
    })
}

/// How a `HEAD` operation's description ends (`also`: what it still does), or nothing.
pub fn without_body(head: bool, also: &str) -> String {
    if head {
        format!(" HEAD answers the same status and headers as GET, without a body{also}.")
    } else {
        String::new()
    }
}

/// Why `X-Min-Log-Position` is refused.
fn min_position_refused() -> String {
    format!(
        "X-Min-Log-Position is not visible ASCII or not `partition:offset` pairs \
         (invalid_format), is over {MAX_POSITION_HEADER} bytes (too_long), names a partition the \
         topic does not have (unknown_partition), or an offset past its partition's end \
         (beyond_log_end)."
    )
}

/// The 410 of a request about an erased customer.
pub fn erased(head: bool, problems: &mut ProblemSchemas) -> Value {
    problems
        .reply(
            &[P::CustomerErased],
            "The customer's personal data was erased (POST \
             /api/v01/customers/{customerId}/erasure): it answers nothing any more.",
            head,
        )
        .build()
}

fn position_refused(head: bool, problems: &mut ProblemSchemas) -> Value {
    problems
        .reply(
            &[P::ValidationFailed, P::MalformedRequest],
            &format!("{}{HTTP_400}", min_position_refused()),
            head,
        )
        .build()
}

/// A read's 503: catching up, behind `X-Min-Log-Position`, shed; for a `history` read also
/// too many reads at once or an unreadable log.
fn unavailable(head: bool, history: bool, problems: &mut ProblemSchemas) -> Value {
    let mut types = vec![P::CatchingUp, P::ReplicaBehind];
    let mut description = "This replica is still replaying the log it saw at start \
        (catching-up), or did not reach X-Min-Log-Position within --projection-wait-ms \
        (replica-behind)"
        .to_owned();
    let mut five_for = None;
    if history {
        types.extend([P::HistoryBusy, P::EventLogUnreadable]);
        description += &format!(
            ", or {HISTORY_READERS} history reads are already running, or \
             {HISTORY_READERS_PER_ACCOUNT} for the account (history-busy), or the records could \
             not be read back from Kafka (event-log-unreadable, Retry-After: 5)"
        );
        five_for = Some("event-log-unreadable");
    }
    types.extend(SHED);
    description += ", or load shedding / the request deadline (overloaded, deadline-exceeded: \
        no X-Request-Id). Retry after Retry-After seconds.";
    problems
        .reply(&types, &description, head)
        .header("Retry-After", retry_after(five_for, None))
        .sometimes_request_id()
        .build()
}
