//! The answers that carry problem documents: each with a schema narrowed to its status and
//! types, its headers, and the answers many operations share.

use super::headers::header;
use super::{content, reference, schema, Format, ProblemType, MAX_HEAD_BYTES};
use crate::auth::MAX_CREDENTIALS;
use serde_json::{json, Map, Value};

/// The problem schemas narrowed to one status and some types, as the answers name them.
#[derive(Default)]
pub struct ProblemSchemas(Map<String, Value>);

impl ProblemSchemas {
    /// An answer with a problem of one of `types` (all of one status), described by
    /// `description`; as `HEAD` answers it (no body) when `head`.
    pub fn reply(&mut self, types: &[ProblemType], description: &str, head: bool) -> Reply {
        let status = types[0].status().as_u16();
        assert!(
            types.iter().all(|kind| kind.status().as_u16() == status),
            "one status per answer: {types:?}"
        );
        let name: String = types
            .iter()
            .map(|kind| {
                let last = kind.uri().rsplit('/').next().unwrap_or_default();
                last.split('-').map(capitalized).collect::<String>()
            })
            .collect();
        let name = format!("Problem{status}{name}");
        if !self.0.contains_key(&name) {
            let mut titles: Vec<&str> = types.iter().map(|kind| kind.title()).collect();
            titles.sort_unstable();
            titles.dedup();
            let listed: Vec<String> = types
                .iter()
                .map(|kind| format!("`{}`", kind.uri()))
                .collect();
            let uris: Vec<&str> = types.iter().map(|kind| kind.uri()).collect();
            let narrowed = json!({
                "description": format!(
                    "A {status} problem document of type {}.",
                    listed.join(" or ")
                ),
                "allOf": [schema("Problem")],
                "properties": {
                    "type": {"type": "string", "enum": uris},
                    "status": {"type": "integer", "const": status},
                    "title": {"type": "string", "enum": titles},
                },
            });
            self.0.insert(name.clone(), narrowed);
        }
        Reply {
            status,
            types: types.to_vec(),
            schema: schema(&name),
            description: description.to_owned(),
            head,
            headers: Vec::new(),
            request_id: RequestId::Always,
            json_only: false,
        }
    }

    /// The schemas, by component name.
    pub fn into_schemas(self) -> Map<String, Value> {
        self.0
    }
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// Whether an answer carries `X-Request-Id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequestId {
    Always,
    Sometimes,
    Never,
}

/// An answer with a problem document, built up: [`ProblemSchemas::reply`], then its headers.
pub struct Reply {
    status: u16,
    types: Vec<ProblemType>,
    schema: Value,
    description: String,
    head: bool,
    headers: Vec<(String, Value)>,
    request_id: RequestId,
    json_only: bool,
}

impl Reply {
    /// The answer carries the header `name` as `header` describes it.
    pub fn header(mut self, name: &str, header: Value) -> Self {
        self.headers.push((name.to_owned(), header));
        self
    }

    /// Some answers of this kind carry `X-Request-Id` and some do not (those the server
    /// answers before any route: load shedding, the deadline).
    pub fn sometimes_request_id(mut self) -> Self {
        self.request_id = RequestId::Sometimes;
        self
    }

    /// The answer never carries `X-Request-Id`.
    pub fn without_request_id(mut self) -> Self {
        self.request_id = RequestId::Never;
        self
    }

    /// The answer is in JSON whatever `Accept` says.
    pub fn json_only(mut self) -> Self {
        self.json_only = true;
        self
    }

    /// The answer as the document writes it.
    pub fn build(self) -> Value {
        let mut headers = Map::new();
        // The HTTP layer's own 400 (a request that is not well-formed HTTP) has no request id.
        let request_id = match self.request_id {
            RequestId::Always if self.status == 400 => RequestId::Sometimes,
            other => other,
        };
        if request_id != RequestId::Never {
            let always = request_id == RequestId::Always;
            headers.insert("X-Request-Id".into(), header("X-Request-Id", always));
        }
        headers.extend(self.headers);
        let mut media = vec![(Format::Json.problem_content_type(), self.schema.clone())];
        if !self.json_only {
            media.push((Format::Xml.problem_content_type(), self.schema));
        }
        let listed: Vec<String> = self
            .types
            .iter()
            .map(|kind| format!("`{}`", kind.uri()))
            .collect();
        json!({
            "description": format!("{} Problem type(s): {}.", self.description, listed.join("; ")),
            "headers": headers,
            "content": content(&media, self.head),
        })
    }
}

/// The answers many operations share, by component name: 401, 406 and 431, each also as
/// `HEAD` answers it.
pub fn shared_responses(problems: &mut ProblemSchemas) -> Map<String, Value> {
    let mut responses = Map::new();
    for head in [false, true] {
        let suffix = if head { "Head" } else { "" };
        let unauthorized = problems
            .reply(
                &[ProblemType::Unauthorized],
                &format!(
                    "No valid API key: no Authorization header, one that is not `Bearer <key>` \
                     (or longer than {MAX_CREDENTIALS} bytes, or not visible ASCII, or sent \
                     twice), or an unknown or revoked key."
                ),
                head,
            )
            .header("WWW-Authenticate", header("WWW-Authenticate", true))
            .build();
        responses.insert(format!("Unauthorized{suffix}"), unauthorized);
        let not_acceptable = problems
            .reply(
                &[ProblemType::NotAcceptable],
                "`Accept` allows neither JSON (`application/json`, `application/problem+json`, \
                 `application/*`, `*/*`) nor XML (`application/xml`, `text/xml`, \
                 `application/problem+xml`, `text/*`). Always answered in JSON.",
                head,
            )
            .json_only()
            .build();
        responses.insert(format!("NotAcceptable{suffix}"), not_acceptable);
        let head_too_large = problems
            .reply(
                &[ProblemType::RequestHeadTooLarge],
                &format!(
                    "The request head (request line and headers, query string included) is over \
                     {MAX_HEAD_BYTES} bytes: refused by the HTTP layer before any route runs, \
                     always in JSON, without X-Request-Id; the connection is closed."
                ),
                head,
            )
            .without_request_id()
            .json_only()
            .build();
        responses.insert(format!("RequestHeadTooLarge{suffix}"), head_too_large);
    }
    responses
}

/// What load shedding and the request deadline answer, on any operation but the probes'.
pub const SHED: [ProblemType; 2] = [ProblemType::Overloaded, ProblemType::DeadlineExceeded];

/// The HTTP layer's 400s, as a 400 answer's description ends.
pub const HTTP_400: &str = " (malformed-request: the HTTP layer's answer to a request that is \
    not well-formed HTTP/1.1, in JSON, without X-Request-Id; or to an HTTP/1.1 request without \
    exactly one Host header.)";

/// The shared 401.
pub fn unauthorized(head: bool) -> Value {
    shared("Unauthorized", head)
}

/// The shared 406.
pub fn not_acceptable(head: bool) -> Value {
    shared("NotAcceptable", head)
}

/// The shared 431.
pub fn head_too_large(head: bool) -> Value {
    shared("RequestHeadTooLarge", head)
}

fn shared(name: &str, head: bool) -> Value {
    let suffix = if head { "Head" } else { "" };
    reference("responses", &format!("{name}{suffix}"))
}
