//! The request headers: read once into [`RequestMeta`], and parsed here into what the handlers
//! act on (`If-Match`, `Idempotency-Key`, `X-Min-Log-Position`, `Content-Encoding`); the
//! names of the headers answers carry.

use crate::auth::Caller;
use crate::domain::{shown, AuditTrail, FieldError, IdempotencyKey, RuleViolation};
use crate::log::LogPosition;
use warp::http::{HeaderMap, HeaderName, HeaderValue};

/// The request headers the handlers negotiate on. Negotiation headers are read leniently (an
/// unreadable value counts as absent); the headers that change what a request does are kept as
/// read, so that one holding bytes other than visible ASCII is refused, never ignored.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    /// `Accept`, for the answer's format.
    pub(super) accept: Option<String>,
    /// `Content-Type`, for the body's format.
    pub(super) content_type: Option<String>,
    /// `Content-Encoding`: bodies are read as sent (see [`super::negotiation::plain_body`]).
    pub(super) content_encoding: Option<String>,
    /// `Content-Length`, when readable: a body announced too large is refused before it is read.
    pub(super) content_length: Option<u64>,
    /// `Idempotency-Key` (see [`idempotency_key`]).
    pub(super) idempotency_key: Option<HeaderText>,
    /// `If-Match` (see [`if_match`]).
    pub(super) if_match: Option<HeaderText>,
    /// `X-Min-Log-Position` (see [`min_log_position`]).
    pub(super) min_log_position: Option<HeaderText>,
    /// `Authorization`, never shown.
    pub(super) authorization: Option<Credentials>,
    /// `X-Request-Id` as the client sent it, or one assigned.
    pub(super) request_id: String,
    /// The raw query string (empty without one): operations that take no parameters refuse it.
    pub(super) query: String,
}

/// The `Authorization` header as read: shown by `Debug` as `<redacted>`, so that no log line
/// or panic message can carry a key.
#[derive(Clone)]
pub struct Credentials(HeaderText);

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A header's value as text, or why it cannot be read.
pub type HeaderText = Result<String, UnreadableHeader>;

/// Why a header that changes what a request does cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnreadableHeader {
    /// A value holds bytes outside visible ASCII (and space and tab).
    NotAscii,
    /// A header that takes one value came on several lines.
    Repeated,
}

impl RequestMeta {
    /// What a request's headers and its raw `query` string say.
    pub fn read(headers: &HeaderMap, query: String) -> Self {
        let text = |name| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        // Every line of a header, as text. A list (X-Min-Log-Position) may be split over
        // several lines by an intermediary, and is joined back; a single value must come once.
        let strict = |name, list: bool| {
            let lines: Vec<&HeaderValue> = headers.get_all(name).iter().collect();
            if lines.is_empty() {
                return None;
            }
            if lines.len() > 1 && !list {
                return Some(Err(UnreadableHeader::Repeated));
            }
            let texts: Result<Vec<&str>, _> = lines.iter().map(|line| line.to_str()).collect();
            Some(
                texts
                    .map(|texts| texts.join(","))
                    .map_err(|_| UnreadableHeader::NotAscii),
            )
        };
        Self {
            accept: text(warp::http::header::ACCEPT),
            content_type: text(warp::http::header::CONTENT_TYPE),
            content_encoding: text(warp::http::header::CONTENT_ENCODING),
            content_length: text(warp::http::header::CONTENT_LENGTH)
                .and_then(|length| length.trim().parse().ok()),
            idempotency_key: strict(HeaderName::from_static("idempotency-key"), false),
            if_match: strict(warp::http::header::IF_MATCH, false),
            min_log_position: strict(HeaderName::from_static("x-min-log-position"), true),
            authorization: strict(warp::http::header::AUTHORIZATION, false).map(Credentials),
            request_id: text(warp::http::HeaderName::from_static("x-request-id"))
                .filter(|id| is_request_id(id))
                .unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
            query,
        }
    }

    /// Who asked, for the events this request causes.
    pub fn audit_trail(&self, caller: &Caller) -> AuditTrail {
        AuditTrail {
            request_id: Some(self.request_id.clone()),
            actor: Some(caller.name().to_owned()),
        }
    }

    /// The `Authorization` header's value; `Err` when it cannot be read.
    pub fn authorization(&self) -> Result<Option<&str>, UnreadableHeader> {
        self.authorization
            .as_ref()
            .map(|Credentials(text)| text.as_deref().map_err(|why| *why))
            .transpose()
    }
}

/// The longest `X-Request-Id` kept.
pub const MAX_REQUEST_ID: usize = 128;

/// A client's `X-Request-Id` is kept when it is 1 to 128 visible ASCII characters; otherwise the
/// server assigns one.
fn is_request_id(id: &str) -> bool {
    (1..=MAX_REQUEST_ID).contains(&id.len()) && id.bytes().all(|byte| byte.is_ascii_graphic())
}

/// Header set on a 201 whose event was durable but not yet in this replica's read model when the
/// projection wait ran out.
pub const PROJECTION_PENDING: &str = "x-projection-pending";

/// Header carrying how many customers a `find` matches over all pages.
pub const TOTAL_COUNT: &str = "x-total-count";

/// Header carrying the log position an answer reflects.
pub const LOG_POSITION: &str = "x-log-position";

/// Header naming the request, echoed from the client or assigned; events carry it too.
pub const REQUEST_ID: &str = "x-request-id";

/// Header set on a 201 that answers a retried `Idempotency-Key` from the original create.
pub const IDEMPOTENT_REPLAYED: &str = "idempotent-replayed";

/// `If-Match`: a customer's version as `ETag` gives it (`"3"`), or `*` (any current customer:
/// the same as none, since a change needs the customer to exist). Weak tags (`W/"3"`) are
/// allowed in the list but never match (RFC 9110 compares If-Match strongly): with no strong
/// tag beside them, the condition is false.
pub fn if_match(meta: &RequestMeta) -> Result<IfMatch, FieldError> {
    let Some(raw) = &meta.if_match else {
        return Ok(IfMatch::Any);
    };
    let raw = raw
        .as_deref()
        .map_err(|why| unreadable_header("If-Match", *why))?
        .trim();
    if raw == "*" {
        return Ok(IfMatch::Any);
    }
    let refused = || {
        let message = format!(
            "If-Match must be versions as ETag gives them, in double quotes and separated by \
             commas (e.g. \"3\"), or *; got {}",
            shown(raw, POSITION_SHOWN)
        );
        header_refused("If-Match", "invalid_format", message)
    };
    let mut strong = Vec::new();
    for tag in raw.split(',').map(str::trim) {
        let (weak, quoted) = match tag.strip_prefix("W/") {
            Some(quoted) => (true, quoted),
            None => (false, tag),
        };
        let version = quoted
            .strip_prefix('"')
            .and_then(|rest| rest.strip_suffix('"'))
            .filter(|digits| !digits.is_empty() && digits.len() <= 19)
            .filter(|digits| digits.bytes().all(|byte| byte.is_ascii_digit()))
            .and_then(|digits| digits.parse::<u64>().ok())
            .ok_or_else(refused)?;
        if !weak {
            strong.push(version);
        }
    }
    strong.sort_unstable();
    strong.dedup();
    match strong.as_slice() {
        [] => Ok(IfMatch::Never),
        [version] => Ok(IfMatch::Version(*version)),
        _ => Ok(IfMatch::OneOf(strong)),
    }
}

/// What `If-Match` asks.
pub enum IfMatch {
    /// No condition (`*`, or no header).
    Any,
    /// The customer must be at this version.
    Version(u64),
    /// The customer must be at one of these versions (two or more, ascending).
    OneOf(Vec<u64>),
    /// Only weak tags: nothing matches.
    Never,
}

/// `Idempotency-Key`, when given: refused when it cannot be read, never taken as absent (a retry
/// meant to be idempotent must never run as a fresh request).
pub fn idempotency_key(meta: &RequestMeta) -> Result<Option<IdempotencyKey>, FieldError> {
    meta.idempotency_key
        .as_ref()
        .map(|raw| {
            let raw = raw
                .as_deref()
                .map_err(|why| unreadable_header("Idempotency-Key", *why))?;
            IdempotencyKey::parse(raw).map_err(|rule| header_error("Idempotency-Key", rule))
        })
        .transpose()
}

/// The `ETag` of a customer at `version`.
pub fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).expect("digits in quotes are a valid header")
}

/// The longest `X-Min-Log-Position` read: room for hundreds of partitions, and a bound on what a
/// refusal echoes.
pub const MAX_POSITION_HEADER: usize = 8 * 1024;

/// How much of a position a refusal quotes.
pub const POSITION_SHOWN: usize = 200;

/// Reads `X-Min-Log-Position`.
pub fn min_log_position(raw: &HeaderText) -> Result<LogPosition, FieldError> {
    let raw = raw
        .as_deref()
        .map_err(|why| unreadable_header("X-Min-Log-Position", *why))?;
    if raw.len() > MAX_POSITION_HEADER {
        let message = format!("X-Min-Log-Position must be at most {MAX_POSITION_HEADER} bytes");
        return Err(header_refused("X-Min-Log-Position", "too_long", message));
    }
    LogPosition::parse(raw).map_err(|reason| {
        let message = format!("X-Min-Log-Position {reason}; it takes what X-Log-Position gave");
        header_refused("X-Min-Log-Position", "invalid_format", message)
    })
}

/// A header that cannot be read: refused, so that a retry meant to be idempotent never silently
/// runs as a fresh create, and a read never waits for less than was asked.
fn unreadable_header(header: &str, why: UnreadableHeader) -> FieldError {
    let message = match why {
        UnreadableHeader::NotAscii => format!("{header} must be visible ASCII characters"),
        UnreadableHeader::Repeated => format!("{header} may be given once"),
    };
    header_refused(header, "invalid_format", message)
}

/// A 400 naming `header`, the rule it broke (`code`) and how (`message`).
pub fn header_refused(header: &str, code: &'static str, message: String) -> FieldError {
    FieldError::new(header, code, message)
}

/// A 400 naming `header` and the rule its value broke.
pub fn header_error(header: &str, rule: RuleViolation) -> FieldError {
    FieldError::broken(header, rule)
}

/// `X-Log-Position`'s value for `position`.
pub fn position_header(position: &LogPosition) -> HeaderValue {
    HeaderValue::from_str(&position.to_string())
        .expect("digits, colons and commas are a valid header")
}
