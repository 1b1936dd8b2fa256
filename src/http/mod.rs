//! The HTTP API: warp filters for the customers resource, handlers at the end of each chain, and
//! [`problem`], where every error becomes an answer.

mod handlers;
mod problem;

pub use problem::ApiError;

use crate::projection::ProjectionProgress;
use crate::read_model::ReadModel;
use crate::write::EventLog;
use std::sync::Arc;
use std::time::Duration;
use warp::http::Method;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: u64 = 64 * 1024;

/// What the handlers share: the write side, the read model, and the projection's progress.
#[derive(Clone)]
pub struct ApiState {
    /// The event log's writer.
    pub event_log: Arc<EventLog>,
    /// The read model that answers queries.
    pub read_model: ReadModel,
    /// How far the projection has got.
    pub progress: ProjectionProgress,
    /// How long a create waits for its event to be projected.
    pub projection_wait: Duration,
}

/// Every route of the API, with errors turned into problem documents.
pub fn routes(
    state: ApiState,
) -> impl Filter<Extract = (impl Reply,), Error = std::convert::Infallible> + Clone {
    let collection = warp::path!("api" / "v01" / "customers");
    let item = warp::path!("api" / "v01" / "customers" / String);

    let create = collection
        .and(warp::put())
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::body::content_length_limit(MAX_BODY_BYTES))
        .and(warp::body::bytes())
        .and(with_state(state.clone()))
        .then(handlers::create_customer);
    let find = collection
        .and(warp::get())
        .and(warp::query::<Vec<(String, String)>>())
        .and(with_state(state.clone()))
        .then(handlers::find_customers);
    let get = item
        .and(warp::get())
        .and(with_state(state))
        .then(handlers::get_customer);

    create
        .or(find)
        .or(collection.and(other_method(&[Method::GET, Method::PUT], "GET, PUT")))
        .or(get)
        .or(item
            .and(other_method(&[Method::GET], "GET"))
            .map(|_id: String, never: Response| never))
        .recover(problem::recover)
}

fn with_state(
    state: ApiState,
) -> impl Filter<Extract = (ApiState,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// Matches any method but `allowed`, rejecting with the `Allow` list so the answer is a 405.
/// For an allowed method it rejects as "not found", the weakest rejection, so the real route's
/// own rejection (say, a body too large) is the one answered.
fn other_method(
    allowed: &'static [Method],
    allow: &'static str,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::method().and_then(move |method: Method| async move {
        let rejection = if allowed.contains(&method) {
            warp::reject::not_found()
        } else {
            warp::reject::custom(problem::WrongMethod { allow })
        };
        Err::<Response, Rejection>(rejection)
    })
}
