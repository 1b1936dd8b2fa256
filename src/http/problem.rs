//! The one place where errors become HTTP answers: RFC 9457 problem documents.

use crate::domain::{FieldError, ValidationErrors};
use crate::read_model::ReadModelError;
use crate::write::EventLogError;
use serde::Serialize;
use std::convert::Infallible;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::{Rejection, Reply};

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request's fields or parameters broke the rules.
    #[error(transparent)]
    Validation(#[from] ValidationErrors),
    /// The body or the query string is not well-formed.
    #[error("{0}")]
    Malformed(String),
    /// The body's media type is not one `create` consumes.
    #[error("create consumes application/json, not {0}")]
    UnsupportedMediaType(String),
    /// The body is larger than the limit.
    #[error("the body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// No such resource.
    #[error("{0}")]
    NotFound(String),
    /// The resource exists but not with this method.
    #[error("this resource allows {allow}")]
    MethodNotAllowed {
        /// The methods it allows, for the `Allow` header.
        allow: &'static str,
    },
    /// The event log did not confirm the write.
    #[error(transparent)]
    EventLog(#[from] EventLogError),
    /// The read model failed.
    #[error(transparent)]
    ReadModel(#[from] ReadModelError),
}

/// The rejection that a known path raises for a method it does not allow.
#[derive(Debug)]
pub struct WrongMethod {
    /// The methods the path allows.
    pub allow: &'static str,
}

impl warp::reject::Reject for WrongMethod {}

/// An RFC 9457 problem document.
#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    problem_type: &'static str,
    title: &'static str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [FieldError]>,
}

impl ApiError {
    /// The status, the problem `type` (relative to the API's host) and its title.
    fn status_and_title(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            ApiError::Validation(_) => (
                StatusCode::BAD_REQUEST,
                "/problems/validation-failed",
                "The request broke validation rules",
            ),
            ApiError::Malformed(_) => (
                StatusCode::BAD_REQUEST,
                "/problems/malformed-request",
                "The request could not be parsed",
            ),
            ApiError::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "/problems/unsupported-media-type",
                "Unsupported media type",
            ),
            ApiError::PayloadTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "/problems/payload-too-large",
                "The body is too large",
            ),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "/problems/not-found", "Not found"),
            ApiError::MethodNotAllowed { .. } => (
                StatusCode::METHOD_NOT_ALLOWED,
                "/problems/method-not-allowed",
                "Method not allowed",
            ),
            ApiError::EventLog(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "/problems/event-log-unavailable",
                "The event log did not confirm the write",
            ),
            ApiError::ReadModel(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "/problems/read-model-failure",
                "The read model failed",
            ),
        }
    }
}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        let (status, problem_type, title) = self.status_and_title();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let errors = match &self {
            ApiError::Validation(ValidationErrors(errors)) => Some(errors.as_slice()),
            _ => None,
        };
        let problem = Problem {
            problem_type,
            title,
            status: status.as_u16(),
            detail: self.to_string(),
            errors,
        };
        let body = serde_json::to_vec(&problem).expect("a problem document always serialises");
        let mut response = Response::new(body.into());
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match self {
            ApiError::MethodNotAllowed { allow } => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            ApiError::EventLog(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
        }
        response
    }
}

/// Turns warp's own rejections (no route, wrong method, body too large, ...) into problem documents.
pub async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    let error = if let Some(wrong) = rejection.find::<WrongMethod>() {
        ApiError::MethodNotAllowed { allow: wrong.allow }
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::PayloadTooLarge {
            limit: super::MAX_BODY_BYTES,
        }
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        ApiError::Malformed("a Content-Length header is required".into())
    } else if rejection.find::<warp::reject::InvalidQuery>().is_some() {
        ApiError::Malformed("the query string is not well-formed".into())
    } else {
        ApiError::NotFound("no resource at this path".into())
    };
    Ok(error.into_response())
}
