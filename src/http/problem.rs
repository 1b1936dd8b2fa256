//! The one place where errors become HTTP answers: RFC 9457 problem documents, in JSON
//! (`application/problem+json`) or XML (`application/problem+xml`) as the client prefers.

use super::negotiation::{Format, NegotiationError};
use super::xml;
use crate::auth::AuthError;
use crate::crypto::KeysError;
use crate::domain::{FieldError, ValidationErrors};
use crate::log::{EventLogError, HISTORY_READERS, HISTORY_READERS_PER_ACCOUNT};
use crate::read_model::ReadModelError;
use crate::write::{ChangeError, CreateError, ErasureError};
use serde::Serialize;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request's fields or parameters broke the rules.
    #[error(transparent)]
    Validation(#[from] ValidationErrors),
    /// The body or the query string is not well-formed; the text says where.
    #[error("{0}")]
    Malformed(String),
    /// The body's media type is not one the route consumes.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The client accepts no format the API produces.
    #[error(
        "this API produces application/json or application/xml, and Accept allows neither: {0}"
    )]
    NotAcceptable(String),
    /// The body is larger than the limit.
    #[error("the body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// No valid API key: missing, malformed, unknown or revoked.
    #[error(transparent)]
    Unauthorized(#[from] AuthError),
    /// The key is valid but its scope does not reach what the request asks for.
    #[error("{0}")]
    Forbidden(String),
    /// No such resource.
    #[error("{0}")]
    NotFound(String),
    /// The customer's personal data was erased: it answers nothing any more.
    #[error("{0}")]
    Erased(String),
    /// An erasure asked of a registry that writes events in plain text.
    #[error("{0}")]
    ErasureUnavailable(String),
    /// The resource exists but not with this method.
    #[error("this resource allows {allow}")]
    MethodNotAllowed {
        /// The methods it allows, for the `Allow` header.
        allow: &'static str,
    },
    /// The event log did not confirm the write; `outcome_unknown` when it may yet hold it.
    #[error("{}", event_log_detail(.error, *.outcome_unknown, *.had_key))]
    EventLog {
        /// What the producer said.
        error: EventLogError,
        /// Whether the event may have been written after all.
        outcome_unknown: bool,
        /// Whether the request carried an `Idempotency-Key`.
        had_key: bool,
    },
    /// The idempotency key was used before with another body.
    #[error("{0}")]
    KeyReused(String),
    /// Another customer of the account has the code the create gives.
    #[error("{detail}")]
    DuplicateCode {
        /// What happened, for a person.
        detail: String,
        /// The customer that has the code (the problem's `customerId`, and the `Location`).
        customer_id: String,
    },
    /// `If-Match` named a version the customer is not at.
    #[error("{detail}")]
    PreconditionFailed {
        /// What happened, for a person.
        detail: String,
        /// The version the customer is at (the problem's `currentVersion`, and the `ETag`).
        current_version: u64,
    },
    /// An unconditional change lost the race for the next version every time it tried.
    #[error("{0}")]
    Contended(String),
    /// A change is in the log but its outcome is not known on this replica yet.
    #[error("{detail}")]
    ChangePending {
        /// What happened, for a person.
        detail: String,
        /// A position that includes the change, for `X-Min-Log-Position`.
        position: String,
    },
    /// A create with a code is in the log but its outcome is not known on this replica yet. No
    /// `Retry-After`: creating again would meet the customer this create may have made; the
    /// client reads that customer (`Location`) at `position` instead.
    #[error("{detail}")]
    CreatePending {
        /// What happened, for a person.
        detail: String,
        /// A position that includes the create, for `X-Min-Log-Position`.
        position: String,
        /// The customer the code names.
        customer_id: String,
    },
    /// The log could not be read back (a customer's history).
    #[error("the event log could not be read: {0}")]
    LogUnreadable(String),
    /// This replica has not caught up to the position the client asked for.
    #[error("this replica reflects the log up to {reached}, not yet {wanted}; retry shortly")]
    ReplicaBehind {
        /// `X-Min-Log-Position`.
        wanted: String,
        /// Where the projection is.
        reached: String,
    },
    /// As many history reads as may run at once are running.
    #[error(
        "this replica is reading {HISTORY_READERS} histories back from the event log already, \
         or {HISTORY_READERS_PER_ACCOUNT} of this account's customers; retry shortly"
    )]
    HistoryBusy,
    /// As many requests as may run at once are running (load shedding).
    #[error(
        "this replica is answering as many requests as it takes at once; retry shortly (or on \
         another replica)"
    )]
    Overloaded,
    /// As many requests as one API key may run at once are running.
    #[error(
        "this API key has {0} requests in flight on this replica, as many as one key may; \
         retry shortly"
    )]
    TooManyRequests(usize),
    /// The request's body did not arrive within the body read timeout.
    #[error(
        "the request body did not arrive within {} ms of its head; send it whole, at once",
        .0.as_millis()
    )]
    BodyTimeout(std::time::Duration),
    /// The request was not answered within the per-request deadline.
    #[error("the request was not answered within {} s; retry shortly", .0.as_secs())]
    DeadlineExceeded(std::time::Duration),
    /// A find would need more work than any find may do.
    #[error(
        "this find would read more of the registry than one request may (the bound is documented \
         in the README); narrow it: add accountId or another filter, use a longer prefix, or page \
         less deep"
    )]
    QueryTooBroad(Vec<String>),
    /// The projection has not yet caught up with the log this replica saw at start.
    #[error(
        "this replica is catching up with the log (it reflects {reached}, the log held {wanted} \
         at start) and serves reads once it has; retry shortly"
    )]
    CatchingUp {
        /// The log end at start.
        wanted: String,
        /// Where the projection is.
        reached: String,
    },
    /// The read model failed.
    #[error(transparent)]
    ReadModel(#[from] ReadModelError),
    /// Something that should not happen did; the text says what.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The answer to a create that did not go through.
    pub fn from_create(error: CreateError, had_key: bool) -> Self {
        let detail = error.to_string();
        match error {
            CreateError::EventLog(error) => ApiError::EventLog {
                outcome_unknown: error.outcome_unknown(),
                error,
                had_key,
            },
            CreateError::Keys(error) => ApiError::from_keys(error),
            reused @ CreateError::KeyReused { .. } => ApiError::KeyReused(reused.to_string()),
            CreateError::ReadModel(error) => ApiError::ReadModel(error),
            CreateError::HistoryUnreadable(why) => ApiError::LogUnreadable(why),
            CreateError::DuplicateCode { customer_id, .. } => ApiError::DuplicateCode {
                detail,
                customer_id: customer_id.to_string(),
            },
            CreateError::Pending {
                position,
                customer_id,
            } => ApiError::CreatePending {
                detail,
                position: position.to_string(),
                customer_id: customer_id.to_string(),
            },
            CreateError::Behind { wanted, reached } => ApiError::ReplicaBehind {
                wanted: wanted.to_string(),
                reached: reached.to_string(),
            },
        }
    }

    /// The answer to an erasure that did not go through.
    pub fn from_erasure(error: ErasureError) -> Self {
        match error {
            unavailable @ (ErasureError::NotEncrypted | ErasureError::PlainText(_)) => {
                ApiError::ErasureUnavailable(unavailable.to_string())
            }
            ErasureError::Unreadable(why) => ApiError::LogUnreadable(why),
            gone @ ErasureError::NotFound(_) => ApiError::NotFound(gone.to_string()),
            ErasureError::Keys(error) => ApiError::from_keys(error),
            ErasureError::EventLog(error) => ApiError::EventLog {
                outcome_unknown: error.outcome_unknown(),
                error,
                had_key: false,
            },
            ErasureError::ReadModel(error) => ApiError::ReadModel(error),
        }
    }

    /// The answer to a write whose event could not be sealed: an erased customer is gone
    /// (nothing may be written about it again); a keys topic not read in time is a passing
    /// outage; any other failure is the server's.
    fn from_keys(error: KeysError) -> Self {
        match error {
            KeysError::Erased => ApiError::Erased(error.to_string()),
            stalled @ KeysError::Stalled(_) => ApiError::LogUnreadable(stalled.to_string()),
            // A key the log did not confirm arrives as the write's `EventLog` error.
            other => ApiError::Internal(other.to_string()),
        }
    }

    /// The answer to an update or delete that did not go through.
    pub fn from_change(error: ChangeError) -> Self {
        match error {
            ChangeError::EventLog(error) => ApiError::EventLog {
                outcome_unknown: error.outcome_unknown(),
                error,
                had_key: false,
            },
            ChangeError::Keys(error) => ApiError::from_keys(error),
            ChangeError::ReadModel(error) => ApiError::ReadModel(error),
            gone @ ChangeError::NotFound(_) => ApiError::NotFound(gone.to_string()),
            stale @ ChangeError::VersionMismatch { current, .. } => ApiError::PreconditionFailed {
                detail: stale.to_string(),
                current_version: current,
            },
            busy @ ChangeError::Contended { .. } => ApiError::Contended(busy.to_string()),
            reused @ ChangeError::KeyReused { .. } => ApiError::KeyReused(reused.to_string()),
            ChangeError::LogUnreadable(error) => ApiError::LogUnreadable(error.to_string()),
            ChangeError::HistoryBusy => ApiError::HistoryBusy,
            ChangeError::Behind { wanted, reached } => ApiError::ReplicaBehind {
                wanted: wanted.to_string(),
                reached: reached.to_string(),
            },
            pending @ ChangeError::Pending { .. } => {
                let ChangeError::Pending { position } = &pending else {
                    unreachable!()
                };
                ApiError::ChangePending {
                    position: position.to_string(),
                    detail: pending.to_string(),
                }
            }
        }
    }
}

impl From<NegotiationError> for ApiError {
    fn from(error: NegotiationError) -> Self {
        match error {
            NegotiationError::UnsupportedMediaType(why) => ApiError::UnsupportedMediaType(why),
            NegotiationError::NotAcceptable(accept) => ApiError::NotAcceptable(accept),
        }
    }
}

impl From<FieldError> for ApiError {
    /// One field (or header) that broke a rule: a 400 naming it.
    fn from(error: FieldError) -> Self {
        ApiError::Validation(ValidationErrors(vec![error]))
    }
}

fn event_log_detail(error: &EventLogError, outcome_unknown: bool, had_key: bool) -> String {
    let retry = if had_key {
        "Retry with the same Idempotency-Key: if the customer was written the retry answers it, \
         and if not the retry writes it, once."
    } else {
        "Send creates with an Idempotency-Key, so that a retry can never create the customer twice."
    };
    if outcome_unknown {
        format!("{error}. The outcome is unknown: the event may still be in the log. {retry}")
    } else {
        format!("{error}. Nothing was written. {retry}")
    }
}

/// A kind of problem: its `type` (relative to the API's host), status and title, each fixed
/// per kind. The OpenAPI document lists them from [`ProblemType::ALL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemType {
    /// 400: fields, parameters or headers broke their rules.
    ValidationFailed,
    /// 400: a body or request that cannot be parsed.
    MalformedRequest,
    /// 401: no valid API key.
    Unauthorized,
    /// 403: the key's scope does not reach what was asked.
    Forbidden,
    /// 404: no such resource.
    NotFound,
    /// 405: a known path, another method.
    MethodNotAllowed,
    /// 410: the customer's personal data was erased.
    CustomerErased,
    /// 409: an erasure asked of a registry without encryption.
    ErasureUnavailable,
    /// 406: `Accept` allows no format the API produces.
    NotAcceptable,
    /// 414: the HTTP layer's answer to an over-long URI.
    UriTooLong,
    /// 431: the HTTP layer's answer to an over-large head.
    RequestHeadTooLarge,
    /// 413: a body over the limit.
    PayloadTooLarge,
    /// 415: a body's media type the route does not consume.
    UnsupportedMediaType,
    /// 409: another customer of the account has the code.
    DuplicateCode,
    /// 422: an idempotency key used with another request.
    IdempotencyKeyReused,
    /// 412: `If-Match` named another version.
    VersionMismatch,
    /// 503: an unconditional change lost every race.
    Contended,
    /// 503: a change's outcome is not known here yet.
    ChangePending,
    /// 422: a find that would do too much work.
    QueryTooBroad,
    /// 500: the read model failed.
    ReadModelFailure,
    /// 500: something that should not happen did.
    InternalError,
    /// 503: the event log did not confirm a write.
    EventLogUnavailable,
    /// 503: too few in-sync replicas for the event log to accept a write.
    NotEnoughReplicas,
    /// 503: the event log could not be read back.
    EventLogUnreadable,
    /// 503: the replica is replaying the log it saw at start.
    CatchingUp,
    /// 503: the replica has not reached the position asked for.
    ReplicaBehind,
    /// 503: too many history reads at once.
    HistoryBusy,
    /// 503: load shedding.
    Overloaded,
    /// 429: one API key's share of the request slots is taken.
    TooManyRequests,
    /// 408: the body did not arrive in time.
    BodyTimeout,
    /// 503: the request was not answered within its deadline.
    DeadlineExceeded,
}

impl ProblemType {
    /// Every kind, in the order the OpenAPI document lists them.
    pub const ALL: [ProblemType; 31] = [
        ProblemType::ValidationFailed,
        ProblemType::MalformedRequest,
        ProblemType::Unauthorized,
        ProblemType::Forbidden,
        ProblemType::NotFound,
        ProblemType::MethodNotAllowed,
        ProblemType::CustomerErased,
        ProblemType::ErasureUnavailable,
        ProblemType::NotAcceptable,
        ProblemType::UriTooLong,
        ProblemType::RequestHeadTooLarge,
        ProblemType::PayloadTooLarge,
        ProblemType::UnsupportedMediaType,
        ProblemType::DuplicateCode,
        ProblemType::IdempotencyKeyReused,
        ProblemType::VersionMismatch,
        ProblemType::Contended,
        ProblemType::ChangePending,
        ProblemType::QueryTooBroad,
        ProblemType::ReadModelFailure,
        ProblemType::InternalError,
        ProblemType::EventLogUnavailable,
        ProblemType::NotEnoughReplicas,
        ProblemType::EventLogUnreadable,
        ProblemType::CatchingUp,
        ProblemType::ReplicaBehind,
        ProblemType::HistoryBusy,
        ProblemType::Overloaded,
        ProblemType::TooManyRequests,
        ProblemType::BodyTimeout,
        ProblemType::DeadlineExceeded,
    ];

    /// The problem's `type`, relative to the API's host.
    pub fn uri(self) -> &'static str {
        self.parts().1
    }

    /// The status every problem of this kind answers with.
    pub fn status(self) -> StatusCode {
        self.parts().0
    }

    /// The problem's `title`.
    pub fn title(self) -> &'static str {
        self.parts().2
    }

    fn parts(self) -> (StatusCode, &'static str, &'static str) {
        match self {
            ProblemType::ValidationFailed => (
                StatusCode::BAD_REQUEST,
                "/problems/validation-failed",
                "The request broke validation rules",
            ),
            ProblemType::MalformedRequest => (
                StatusCode::BAD_REQUEST,
                "/problems/malformed-request",
                "The request could not be parsed",
            ),
            ProblemType::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "/problems/unauthorized",
                "A valid API key is needed",
            ),
            ProblemType::Forbidden => (
                StatusCode::FORBIDDEN,
                "/problems/forbidden",
                "The API key's scope does not reach this",
            ),
            ProblemType::NotFound => (StatusCode::NOT_FOUND, "/problems/not-found", "Not found"),
            ProblemType::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "/problems/method-not-allowed",
                "Method not allowed",
            ),
            ProblemType::CustomerErased => (
                StatusCode::GONE,
                "/problems/customer-erased",
                "The customer's personal data was erased",
            ),
            ProblemType::ErasureUnavailable => (
                StatusCode::CONFLICT,
                "/problems/erasure-unavailable",
                "This registry cannot erase: it writes personal data in plain text",
            ),
            ProblemType::NotAcceptable => (
                StatusCode::NOT_ACCEPTABLE,
                "/problems/not-acceptable",
                "No acceptable representation",
            ),
            ProblemType::UriTooLong => (
                StatusCode::URI_TOO_LONG,
                "/problems/uri-too-long",
                "The URI is too long",
            ),
            ProblemType::RequestHeadTooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "/problems/request-head-too-large",
                "The request head is too large",
            ),
            ProblemType::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "/problems/payload-too-large",
                "The body is too large",
            ),
            ProblemType::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "/problems/unsupported-media-type",
                "Unsupported media type",
            ),
            ProblemType::DuplicateCode => (
                StatusCode::CONFLICT,
                "/problems/duplicate-code",
                "Another customer of the account has this code",
            ),
            ProblemType::IdempotencyKeyReused => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "/problems/idempotency-key-reused",
                "The idempotency key was used with another body",
            ),
            ProblemType::VersionMismatch => (
                StatusCode::PRECONDITION_FAILED,
                "/problems/version-mismatch",
                "The customer is not at the version If-Match names",
            ),
            ProblemType::Contended => (
                StatusCode::SERVICE_UNAVAILABLE,
                "/problems/contended",
                "The customer kept changing while this change was applied",
            ),
            ProblemType::ChangePending => (
                StatusCode::SERVICE_UNAVAILABLE,
                "/problems/change-pending",
                "The change's outcome is not known on this replica yet",
            ),
            ProblemType::QueryTooBroad => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "/problems/query-too-broad",
                "The find is too broad",
            ),
            ProblemType::ReadModelFailure => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "/problems/read-model-failure",
                "The read model failed",
            ),
            ProblemType::InternalError => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "/problems/internal-error",
                "Internal error",
            ),
            ProblemType::EventLogUnavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "/problems/event-log-unavailable",
                "The event log did not confirm the write",
            ),
            ProblemType::NotEnoughReplicas => (
                StatusCode::SERVICE_UNAVAILABLE,
                "/problems/not-enough-replicas",
                "Not enough in-sync replicas to accept the write",
            ),
            ProblemType::EventLogUnreadable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "/problems/event-log-unreadable",
                "The event log could not be read",
            ),
            ProblemType::CatchingUp => (
                StatusCode::SERVICE_UNAVAILABLE,
                "/problems/catching-up",
                "This replica is catching up with the log",
            ),
            ProblemType::ReplicaBehind => (
                StatusCode::SERVICE_UNAVAILABLE,
                "/problems/replica-behind",
                "This replica has not caught up yet",
            ),
            ProblemType::HistoryBusy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "/problems/history-busy",
                "Too many history reads at once",
            ),
            ProblemType::Overloaded => (
                StatusCode::SERVICE_UNAVAILABLE,
                "/problems/overloaded",
                "Too many requests at once",
            ),
            ProblemType::TooManyRequests => (
                StatusCode::TOO_MANY_REQUESTS,
                "/problems/too-many-requests",
                "Too many requests for one API key",
            ),
            ProblemType::BodyTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                "/problems/body-timeout",
                "The request body took too long",
            ),
            ProblemType::DeadlineExceeded => (
                StatusCode::SERVICE_UNAVAILABLE,
                "/problems/deadline-exceeded",
                "The request took too long",
            ),
        }
    }
}

/// The members every problem document has.
#[derive(Serialize)]
pub struct ProblemFields<'a> {
    /// The problem's type, relative to the API's host.
    #[serde(rename = "type")]
    pub problem_type: &'a str,
    /// Its title.
    pub title: &'a str,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong, for a person.
    pub detail: &'a str,
}

/// An RFC 9457 problem document, JSON form.
#[derive(Serialize)]
struct Problem<'a> {
    #[serde(flatten)]
    fields: &'a ProblemFields<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [FieldError]>,
    #[serde(flatten)]
    extra: &'a ExtraMembers,
}

/// The members a problem document has beside the standard ones, where they apply.
#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ExtraMembers {
    /// How many errors past [`ERRORS_LISTED`] were left out of `errors`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub omitted_errors: Option<usize>,
    /// For a version mismatch: the version the customer is at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current_version: Option<u64>,
    /// For a duplicate code: the customer that has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
}

/// Most errors a problem document lists: a body of thousands of unknown members is refused with
/// the first hundred and a count of the rest, not thousands.
pub const ERRORS_LISTED: usize = 100;

impl ApiError {
    /// The kind of problem this error answers with.
    fn problem_type(&self) -> ProblemType {
        match self {
            ApiError::Validation(_) => ProblemType::ValidationFailed,
            ApiError::Malformed(_) => ProblemType::MalformedRequest,
            ApiError::UnsupportedMediaType(_) => ProblemType::UnsupportedMediaType,
            ApiError::NotAcceptable(_) => ProblemType::NotAcceptable,
            ApiError::PayloadTooLarge { .. } => ProblemType::PayloadTooLarge,
            ApiError::Unauthorized(_) => ProblemType::Unauthorized,
            ApiError::Forbidden(_) => ProblemType::Forbidden,
            ApiError::NotFound(_) => ProblemType::NotFound,
            ApiError::MethodNotAllowed { .. } => ProblemType::MethodNotAllowed,
            ApiError::Erased(_) => ProblemType::CustomerErased,
            ApiError::ErasureUnavailable(_) => ProblemType::ErasureUnavailable,
            ApiError::EventLog {
                error: EventLogError::Unwritable { shortage, .. },
                ..
            } if !shortage.no_broker_answers() => ProblemType::NotEnoughReplicas,
            ApiError::EventLog { .. } => ProblemType::EventLogUnavailable,
            ApiError::LogUnreadable(_) => ProblemType::EventLogUnreadable,
            ApiError::KeyReused(_) => ProblemType::IdempotencyKeyReused,
            ApiError::DuplicateCode { .. } => ProblemType::DuplicateCode,
            ApiError::ReplicaBehind { .. } => ProblemType::ReplicaBehind,
            ApiError::PreconditionFailed { .. } => ProblemType::VersionMismatch,
            ApiError::Contended(_) => ProblemType::Contended,
            ApiError::ChangePending { .. } | ApiError::CreatePending { .. } => {
                ProblemType::ChangePending
            }
            ApiError::HistoryBusy => ProblemType::HistoryBusy,
            ApiError::Overloaded => ProblemType::Overloaded,
            ApiError::TooManyRequests(_) => ProblemType::TooManyRequests,
            ApiError::BodyTimeout(_) => ProblemType::BodyTimeout,
            ApiError::DeadlineExceeded(_) => ProblemType::DeadlineExceeded,
            ApiError::QueryTooBroad(_) => ProblemType::QueryTooBroad,
            ApiError::CatchingUp { .. } => ProblemType::CatchingUp,
            ApiError::ReadModel(_) => ProblemType::ReadModelFailure,
            ApiError::Internal(_) => ProblemType::InternalError,
        }
    }

    /// The problem document answering this error, in `format`, with its status and headers.
    pub fn into_response(self, format: Format) -> Response {
        let kind = self.problem_type();
        let (status, problem_type, title) = (kind.status(), kind.uri(), kind.title());
        match self {
            // Waiting for the projection is a state of the replica, not a failure: logged once
            // per request at error level, a burst of such reads flooded the log.
            ApiError::ReplicaBehind { .. }
            | ApiError::CatchingUp { .. }
            | ApiError::HistoryBusy
            | ApiError::Overloaded => {
                tracing::debug!(error = %self, "request refused for now");
            }
            _ if status.is_server_error() => tracing::error!(error = %self, "request failed"),
            _ => {}
        }
        let detail = self.to_string();
        let derived: Vec<FieldError>;
        let errors = match &self {
            ApiError::Validation(ValidationErrors(errors)) => Some(errors.as_slice()),
            ApiError::QueryTooBroad(parameters) => {
                derived = parameters
                    .iter()
                    .map(|name| {
                        FieldError::new(
                            name,
                            "query_too_broad",
                            format!("{name} is part of a find that would do too much work"),
                        )
                    })
                    .collect();
                Some(derived.as_slice())
            }
            ApiError::DuplicateCode { detail, .. } => {
                derived = vec![FieldError::new("code", "duplicate_code", detail.clone())];
                Some(derived.as_slice())
            }
            _ => None,
        };
        let extra = ExtraMembers {
            omitted_errors: errors
                .map(|errors| errors.len().saturating_sub(ERRORS_LISTED))
                .filter(|omitted| *omitted > 0),
            current_version: match &self {
                ApiError::PreconditionFailed {
                    current_version, ..
                } => Some(*current_version),
                _ => None,
            },
            customer_id: match &self {
                ApiError::DuplicateCode { customer_id, .. } => Some(customer_id.clone()),
                _ => None,
            },
        };
        let errors = errors.map(|errors| &errors[..errors.len().min(ERRORS_LISTED)]);
        let fields = ProblemFields {
            problem_type,
            title,
            status: status.as_u16(),
            detail: &detail,
        };
        let body = match format {
            Format::Json => {
                let problem = Problem {
                    fields: &fields,
                    errors,
                    extra: &extra,
                };
                serde_json::to_vec(&problem).expect("a problem always serialises")
            }
            Format::Xml => xml_document(&fields, errors, &extra).into_bytes(),
        };
        let mut response = Response::new(body.into());
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.problem_content_type()),
        );
        match self {
            ApiError::Unauthorized(why) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(challenge(&why)),
                );
            }
            ApiError::MethodNotAllowed { allow } => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            ApiError::EventLog { .. } | ApiError::LogUnreadable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            ApiError::PreconditionFailed {
                current_version, ..
            } => {
                headers.insert(header::ETAG, super::headers::etag(current_version));
            }
            ApiError::ChangePending { position, .. } => {
                if let Ok(position) = HeaderValue::from_str(&position) {
                    headers.insert("x-log-position", position);
                }
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::Contended(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::DuplicateCode { customer_id, .. } => {
                insert_location(headers, &customer_id);
            }
            ApiError::CreatePending {
                position,
                customer_id,
                ..
            } => {
                if let Ok(position) = HeaderValue::from_str(&position) {
                    headers.insert("x-log-position", position);
                }
                insert_location(headers, &customer_id);
            }
            ApiError::ReplicaBehind { .. }
            | ApiError::CatchingUp { .. }
            | ApiError::HistoryBusy
            | ApiError::Overloaded
            | ApiError::TooManyRequests(_)
            | ApiError::DeadlineExceeded(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            // The rest of the body may still come: the connection cannot carry another request.
            ApiError::BodyTimeout(_) => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

/// The `WWW-Authenticate` challenge of a 401 refused for `why`.
pub fn challenge(why: &AuthError) -> &'static str {
    match why {
        AuthError::Missing => r#"Bearer realm="customer-registry""#,
        AuthError::Malformed => r#"Bearer realm="customer-registry", error="invalid_request""#,
        AuthError::UnknownKey => r#"Bearer realm="customer-registry", error="invalid_token""#,
    }
}

/// `Location` naming customer `id`.
fn insert_location(headers: &mut warp::http::HeaderMap, id: &str) {
    let location = format!("/api/v01/customers/{id}");
    if let Ok(location) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, location);
    }
}

/// An RFC 9457 problem document in its XML form (namespace `urn:ietf:rfc:7807`, array items as
/// `<i>`).
fn xml_document(
    fields: &ProblemFields<'_>,
    errors: Option<&[FieldError]>,
    extra: &ExtraMembers,
) -> String {
    #[derive(Serialize)]
    struct Problem<'a> {
        #[serde(rename = "@xmlns")]
        namespace: &'static str,
        #[serde(rename = "type")]
        problem_type: &'a str,
        title: &'a str,
        status: u16,
        detail: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        errors: Option<Items<'a>>,
        #[serde(rename = "omittedErrors", skip_serializing_if = "Option::is_none")]
        omitted_errors: Option<usize>,
        #[serde(rename = "currentVersion", skip_serializing_if = "Option::is_none")]
        current_version: Option<u64>,
        #[serde(rename = "customerId", skip_serializing_if = "Option::is_none")]
        customer_id: Option<&'a str>,
    }
    #[derive(Serialize)]
    struct Items<'a> {
        i: &'a [FieldError],
    }
    let problem = Problem {
        namespace: "urn:ietf:rfc:7807",
        problem_type: fields.problem_type,
        title: fields.title,
        status: fields.status,
        detail: fields.detail,
        errors: errors.map(|errors| Items { i: errors }),
        omitted_errors: extra.omitted_errors,
        current_version: extra.current_version,
        customer_id: extra.customer_id.as_deref(),
    };
    xml::document("problem", &problem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_problem_type_is_listed_once_in_declaration_order() {
        for (at, kind) in ProblemType::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, at, "{kind:?}");
            assert!(kind.uri().starts_with("/problems/"), "{kind:?}");
            assert!(kind.status().is_client_error() || kind.status().is_server_error());
        }
        let mut uris: Vec<&str> = ProblemType::ALL.iter().map(|kind| kind.uri()).collect();
        uris.sort_unstable();
        uris.dedup();
        assert_eq!(uris.len(), ProblemType::ALL.len());
    }

    #[test]
    fn characters_xml_cannot_hold_are_replaced_not_written() {
        let echoed = FieldError {
            field: "a\u{1}b".into(),
            code: "unknown_parameter",
            message: "\u{FFFF}\u{FFFE} is not a parameter".into(),
        };
        let fields = ProblemFields {
            problem_type: "/problems/invalid-request",
            title: "t",
            status: 400,
            detail: "d\u{0}",
        };
        let xml = xml_document(&fields, Some(&[echoed]), &ExtraMembers::default());
        let parsed = roxmltree::Document::parse(&xml).expect("well-formed");
        assert!(parsed
            .descendants()
            .any(|node| node.text() == Some("a\u{FFFD}b")));
    }

    proptest! {
            /// Whatever a problem echoes, its XML form is well-formed.
            #[test]
            fn problems_are_well_formed_whatever_they_echo(text in any::<String>()) {
                let echoed = FieldError { field: text.clone(), code: "unknown_parameter", message: text };
                let fields = ProblemFields { problem_type: "/p", title: "t", status: 400, detail: "d" };
                let xml = xml_document(&fields, Some(&[echoed]), &ExtraMembers::default());
                prop_assert!(roxmltree::Document::parse(&xml).is_ok(), "{}", xml);
            }
    }
}
