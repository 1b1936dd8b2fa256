//! Handlers at the end of each route: parse at the edge, call the write side or the read model,
//! and answer; every failure goes through [`ApiError`].

use super::{ApiError, ApiState};
use crate::domain::{CustomerDetails, CustomerId, FieldValue};
use crate::read_model::CustomerQuery;
use crate::write;
use bytes::Bytes;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Reply;

/// Header set on a 201 whose event was durable but not yet in this replica's read model when the
/// projection wait ran out.
const PROJECTION_PENDING: &str = "x-projection-pending";

/// `PUT /api/v01/customers`: validate, append `CustomerCreated`, answer 201 once Kafka confirmed it.
pub async fn create_customer(
    content_type: Option<String>,
    body: Bytes,
    state: ApiState,
) -> Response {
    answer(create(content_type.as_deref(), &body, &state).await)
}

/// `GET /api/v01/customers`: the page of customers the filters select.
pub async fn find_customers(pairs: Vec<(String, String)>, state: ApiState) -> Response {
    answer(find(&pairs, &state))
}

/// `GET /api/v01/customers/{id}`: one customer, or 404.
pub async fn get_customer(id: String, state: ApiState) -> Response {
    answer(get(&id, &state))
}

fn answer(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(Reply::into_response)
}

async fn create(
    content_type: Option<&str>,
    body: &[u8],
    state: &ApiState,
) -> Result<Response, ApiError> {
    require_json(content_type)?;
    let details = CustomerDetails::parse(json_fields(body)?)?;
    let (customer, position) = write::create_customer(&state.event_log, details).await?;
    let projected = state
        .progress
        .wait_until_applied(position, state.projection_wait)
        .await;
    let mut response =
        warp::reply::with_status(warp::reply::json(&customer), StatusCode::CREATED).into_response();
    let location = format!("/api/v01/customers/{}", customer.id);
    let headers = response.headers_mut();
    headers.insert(
        header::LOCATION,
        HeaderValue::from_str(&location).expect("a path of ASCII and a UUID is a valid header"),
    );
    if !projected {
        headers.insert(PROJECTION_PENDING, HeaderValue::from_static("true"));
    }
    Ok(response)
}

fn find(pairs: &[(String, String)], state: &ApiState) -> Result<Response, ApiError> {
    let query = CustomerQuery::parse(pairs)?;
    // A long walk of the index must not stall the other requests on this worker.
    let page = tokio::task::block_in_place(|| state.read_model.find(&query))?;
    Ok(warp::reply::json(&page).into_response())
}

fn get(id: &str, state: &ApiState) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound(format!("no customer with id {id}"));
    let id: CustomerId = id.parse().map_err(|_| not_found())?;
    let customer = state.read_model.get(id)?.ok_or_else(not_found)?;
    Ok(warp::reply::json(&customer).into_response())
}

/// `create` reads JSON: `application/json` or any `+json` type; no `Content-Type` is taken as JSON.
fn require_json(content_type: Option<&str>) -> Result<(), ApiError> {
    let Some(content_type) = content_type else {
        return Ok(());
    };
    let media_type = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if media_type == "application/json" || media_type.ends_with("+json") {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(media_type))
    }
}

/// The top-level fields of a JSON object body.
fn json_fields(body: &[u8]) -> Result<Vec<(String, FieldValue)>, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|error| ApiError::Malformed(format!("the body is not valid JSON: {error}")))?;
    let serde_json::Value::Object(object) = value else {
        return Err(ApiError::Malformed("the body must be a JSON object".into()));
    };
    Ok(object
        .into_iter()
        .map(|(name, value)| (name, field_value(value)))
        .collect())
}

fn field_value(value: serde_json::Value) -> FieldValue {
    use serde_json::Value;
    match value {
        Value::Null => FieldValue::Null,
        Value::String(text) => FieldValue::Text(text),
        Value::Number(number) => number.as_i64().map_or(
            FieldValue::Other("a non-integer number"),
            FieldValue::Integer,
        ),
        Value::Bool(_) => FieldValue::Other("a boolean"),
        Value::Array(_) => FieldValue::Other("an array"),
        Value::Object(_) => FieldValue::Other("an object"),
    }
}
