//! The HTTP API: warp filters for the customers resource, handlers at the end of each chain,
//! content negotiation (JSON and XML), `problem`, where every error becomes an answer, and
//! `openapi`, the API's OpenAPI document, built from the same route table and rules.
//!
//! The route tree is total: every request ends in a handler, so every answer (including 404 and
//! 405) is rendered by this module in the format the client asked for, never by warp's defaults.

mod body;
#[cfg(test)]
mod fuzz;
mod handlers;
mod headers;
mod negotiation;
mod openapi;
mod problem;
mod query_string;
pub mod routes;
pub mod server;
mod unparsable;
mod xml;

pub use headers::RequestMeta;
pub use problem::ApiError;
pub use routes::{Operation, ROUTES};

use crate::auth::Authenticator;
use crate::log::HistoryReader;
use crate::metrics::Metrics;
use crate::projection::readiness::Readiness;
use crate::projection::ProjectionProgress;
use crate::read_model::ReadModel;
use crate::write::Registrar;
use bytes::Buf;
use futures::{Stream, StreamExt, TryStreamExt};
use negotiation::Consumes;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use warp::filters::BoxedFilter;
use warp::http::HeaderMap;
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: u64 = 64 * 1024;

/// What the handlers share: the write side, the read model, and the projection's progress.
#[derive(Clone)]
pub struct ApiState {
    /// Handles creates, updates and deletes.
    pub registrar: Arc<Registrar>,
    /// The topic, for its partitions' ends (a position past one is never reached).
    pub event_log: Arc<crate::log::EventLog>,
    /// The read model that answers queries.
    pub read_model: ReadModel,
    /// How far the projection has got.
    pub progress: ProjectionProgress,
    /// How long a read waits for the position in `X-Min-Log-Position`.
    pub catch_up_wait: Duration,
    /// Reads a customer's records back from the log.
    pub history: Arc<HistoryReader>,
    /// Whether this replica should get traffic, for `/readyz`.
    pub readiness: Readiness,
    /// Who is asking: the API keys, or none when authentication is off.
    pub auth: Authenticator,
    /// Where requests, creates and projected records are counted.
    pub metrics: Metrics,
    /// Opens sealed events for the customers' histories.
    pub opener: Arc<dyn crate::domain::Opener + Send + Sync>,
}

/// Serves the API on `listener` within `limits` until `stop` turns true (see [`server::serve`]).
pub async fn serve_api(
    listener: tokio::net::TcpListener,
    state: ApiState,
    limits: server::Limits,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let metrics = state.metrics.clone();
    server::serve(
        listener,
        warp::service(routes(state)),
        limits,
        metrics,
        stop,
    )
    .await;
}

/// Serves [`metrics_routes`] on `listener`, as [`serve_api`] serves the API.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    state: ApiState,
    limits: server::Limits,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let metrics = state.metrics.clone();
    let routes = warp::service(metrics_routes(state));
    server::serve(listener, routes, limits, metrics, stop).await;
}

/// Every route of the API, each request counted in the metrics by its route's label.
fn routes(state: ApiState) -> impl Filter<Extract = impl Reply, Error = Rejection> + Clone {
    let metrics = state.metrics.clone();
    api_routes(state).with(warp::log::custom(move |info| {
        metrics.observe_request(
            routes::metrics_label(info.path()),
            info.method().as_str(),
            info.status().as_u16(),
            info.elapsed(),
        );
    }))
}

/// The routes on the `--metrics-listen` address: `/metrics` without a key (whoever can reach
/// that address may scrape), and 404 for anything else.
fn metrics_routes(
    state: ApiState,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    warp::path!("metrics")
        .and(get_or_head())
        .and(with_state(state))
        .map(handlers::metrics_text)
        .or(warp::any().and(request_meta()).map(handlers::no_such_path))
        .unify()
}

/// The API: every request goes to the operation [`ROUTES`] gives its path and method, or is
/// answered 404 (no such path) or 405 (with the route's `Allow`).
fn api_routes(state: ApiState) -> BoxedFilter<(Response,)> {
    warp::method()
        .and(warp::path::full())
        .and(request_meta())
        .and(body_stream())
        .and(warp::ext::optional::<server::ClientAddress>())
        .and(with_state(state))
        .then(dispatch)
        .boxed()
}

/// Runs the operation a request's path and method select.
async fn dispatch(
    method: warp::http::Method,
    path: warp::path::FullPath,
    meta: RequestMeta,
    body: body::BodyStream,
    client: Option<server::ClientAddress>,
    state: ApiState,
) -> Response {
    let Some(matched) = routes::resolve(path.as_str()) else {
        return handlers::no_such_path(meta);
    };
    let Some(operation) = matched.route.operation(&method) else {
        return handlers::method_not_allowed(meta, matched.route.allow());
    };
    let id = || {
        matched
            .parameter
            .expect("the routes of these operations have a {customerId} or {requestId} segment")
            .to_owned()
    };
    match operation {
        Operation::FindCustomers => handlers::find_customers(meta, state).await,
        Operation::CreateCustomer => handlers::create_customer(meta, body, state).await,
        Operation::GetCustomer => handlers::get_customer(id(), meta, state).await,
        Operation::UpdateCustomer => {
            handlers::update_customer(id(), meta, body, state, Consumes::Update).await
        }
        Operation::PatchCustomer => {
            handlers::update_customer(id(), meta, body, state, Consumes::MergePatch).await
        }
        Operation::DeleteCustomer => handlers::delete_customer(id(), meta, state).await,
        Operation::CustomerHistory => handlers::customer_history(id(), meta, state).await,
        Operation::EraseCustomer => handlers::erase_customer(id(), meta, state).await,
        Operation::ErasureStatus => handlers::erasure_status(id(), meta, state).await,
        Operation::ListRejectedEvents => handlers::list_rejected_events(meta, state).await,
        Operation::TakeSnapshot => handlers::read_model_snapshot(meta, state),
        Operation::OpenApiDocument => handlers::openapi_document(),
        Operation::Liveness => handlers::alive(),
        Operation::Readiness => handlers::readiness(state),
        Operation::Metrics => handlers::metrics(client, meta, state),
    }
}

fn with_state(state: ApiState) -> impl Filter<Extract = (ApiState,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

fn request_meta() -> impl Filter<Extract = (RequestMeta,), Error = Infallible> + Clone {
    warp::header::headers_cloned()
        .and(raw_query())
        .map(|headers: HeaderMap, query: String| RequestMeta::read(&headers, query))
}

fn get_or_head() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::get().or(warp::head()).unify()
}

/// The query string, or an empty one when the URL has none.
fn raw_query() -> impl Filter<Extract = (String,), Error = Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

/// The body as a stream, so its size is checked while it arrives rather than after.
fn body_stream() -> impl Filter<Extract = (body::BodyStream,), Error = Rejection> + Clone {
    warp::body::stream().map(into_byte_stream)
}

fn into_byte_stream<S, B>(stream: S) -> body::BodyStream
where
    S: Stream<Item = Result<B, warp::Error>> + Send + 'static,
    B: Buf,
{
    stream
        .map_ok(|mut chunk| chunk.copy_to_bytes(chunk.remaining()))
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{EventLog, EventLogSettings, LogPosition};
    use std::collections::BTreeMap;
    use tokio::sync::watch;

    /// The API over an empty read model, whose projection reaches what `progress` sends, and
    /// saw the log end at `0:5` when it started. Nothing here talks to Kafka.
    fn api(
        dir: &std::path::Path,
    ) -> (
        impl Filter<Extract = (Response,), Error = Rejection> + Clone,
        watch::Sender<BTreeMap<i32, i64>>,
    ) {
        api_with(dir, Authenticator::disabled())
    }

    /// [`api`], with `auth` deciding who may do what.
    fn api_with(
        dir: &std::path::Path,
        auth: Authenticator,
    ) -> (
        impl Filter<Extract = (Response,), Error = Rejection> + Clone,
        watch::Sender<BTreeMap<i32, i64>>,
    ) {
        let (read_model, _) = crate::read_model::open(dir).unwrap();
        read_model.bind_to_log("unused", "no-cluster").unwrap();
        let (progress_sender, progress) = watch::channel(BTreeMap::new());
        let (_, looks) = watch::channel((0, 0));
        let progress = ProjectionProgress::new(
            progress,
            LogPosition::parse("0:5").unwrap(),
            Arc::default(),
            looks,
        );
        let settings = EventLogSettings {
            kafka_bootstrap: "127.0.0.1:1".into(),
            topic: "unused".into(),
            topic_partitions: 1,
            topic_replication: None,
        };
        let history = Arc::new(HistoryReader::new(settings.clone()));
        let event_log = Arc::new(
            EventLog::connect(
                &settings,
                crate::log::Partitioning::over(1),
                crate::log::ClusterHealth::new(1),
            )
            .unwrap(),
        );
        let registrar = Registrar::new(
            Arc::clone(&event_log),
            read_model.clone(),
            progress.clone(),
            Duration::from_millis(10),
            Arc::clone(&history),
            crate::crypto::Encryption::Off,
        );
        let state = ApiState {
            registrar: Arc::new(registrar),
            event_log,
            read_model,
            progress: progress.clone(),
            catch_up_wait: Duration::from_millis(10),
            history,
            auth,
            metrics: Metrics::new(),
            opener: Arc::new(crate::domain::NoKeys),
            readiness: crate::projection::readiness::spawn(
                &settings.kafka_bootstrap,
                &settings.topic,
                progress.clone(),
                0,
                crate::log::ClusterHealth::new(1),
                watch::channel(false).1,
            )
            .unwrap(),
        };
        (api_routes(state), progress_sender)
    }

    #[tokio::test]
    async fn reads_wait_until_the_projection_has_caught_up_with_the_log_end_seen_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let (api, progress) = api(dir.path());
        for path in [
            "/api/v01/customers",
            "/api/v01/customers/01936a4e-8b1c-7def-8a00-000000000001",
        ] {
            let response = warp::test::request().path(path).reply(&api).await;
            assert_eq!(response.status(), 503, "{path}");
            assert_eq!(response.headers()["retry-after"], "1");
            let problem: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
            assert_eq!(problem["type"], "/problems/catching-up");
        }
        progress.send(BTreeMap::from([(0, 5)])).unwrap();
        let response = warp::test::request()
            .path("/api/v01/customers")
            .reply(&api)
            .await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-total-count"], "0");
        let response = warp::test::request()
            .path("/api/v01/customers/01936a4e-8b1c-7def-8a00-000000000001")
            .reply(&api)
            .await;
        assert_eq!(
            response.status(),
            404,
            "caught up: an unknown customer is unknown"
        );
    }

    #[tokio::test]
    async fn operations_without_parameters_refuse_them_and_a_long_id_is_not_echoed() {
        let dir = tempfile::tempdir().unwrap();
        let (api, progress) = api(dir.path());
        progress.send(BTreeMap::from([(0, 5)])).unwrap();
        let item = "/api/v01/customers/01936a4e-8b1c-7def-8a00-000000000001";
        for (method, path) in [
            ("GET", format!("{item}?fields=id")),
            ("HEAD", format!("{item}?fields=id")),
            ("GET", format!("{item}/events?limit=5")),
            ("DELETE", format!("{item}?force=1")),
            ("POST", format!("{item}?dryRun")),
            ("PATCH", format!("{item}?x=1&y=2")),
        ] {
            let response = warp::test::request()
                .method(method)
                .path(&path)
                .header("content-type", "application/json")
                .body("{}")
                .reply(&api)
                .await;
            assert_eq!(response.status(), 400, "{method} {path}");
            if method != "HEAD" {
                let problem: serde_json::Value = serde_json::from_slice(response.body()).unwrap();
                assert_eq!(problem["errors"][0]["code"], "unknown_parameter", "{path}");
            }
        }
        let long = format!("/api/v01/customers/{}", "x".repeat(8_000));
        let response = warp::test::request().path(&long).reply(&api).await;
        assert_eq!(response.status(), 404);
        assert!(response.body().len() < 1_000, "{}", response.body().len());
    }

    #[tokio::test]
    async fn a_patch_needs_its_media_type_and_no_body_may_be_encoded() {
        let dir = tempfile::tempdir().unwrap();
        let (api, progress) = api(dir.path());
        progress.send(BTreeMap::from([(0, 5)])).unwrap();
        let item = "/api/v01/customers/01936a4e-8b1c-7def-8a00-000000000001";
        let untyped = warp::test::request()
            .method("PATCH")
            .path(item)
            .body(r#"{"city": "Oslo"}"#)
            .reply(&api)
            .await;
        assert_eq!(untyped.status(), 415);
        for (method, path) in [("PUT", "/api/v01/customers"), ("POST", item)] {
            let encoded = warp::test::request()
                .method(method)
                .path(path)
                .header("content-type", "application/json")
                .header("content-encoding", "gzip")
                .body([0x1f, 0x8b, 0x08, 0x00])
                .reply(&api)
                .await;
            assert_eq!(encoded.status(), 415, "{method}");
            let problem: serde_json::Value = serde_json::from_slice(encoded.body()).unwrap();
            assert!(
                problem["detail"].as_str().unwrap().contains("gzip"),
                "{problem}"
            );
        }
    }

    #[tokio::test]
    async fn liveness_needs_nothing_and_readiness_says_why_not() {
        let dir = tempfile::tempdir().unwrap();
        let (api, _progress) = api(dir.path());
        let alive = warp::test::request().path("/healthz").reply(&api).await;
        assert_eq!(alive.status(), 200);
        let ready = warp::test::request().path("/readyz").reply(&api).await;
        assert_eq!(
            ready.status(),
            503,
            "not checked, and no broker at 127.0.0.1:1"
        );
        let verdict: serde_json::Value = serde_json::from_slice(ready.body()).unwrap();
        assert_eq!(verdict["ready"], false);
        assert!(verdict["reason"].is_string(), "{verdict}");
    }

    #[tokio::test]
    async fn metrics_are_open_to_loopback_and_to_admin_keys_only() {
        use crate::auth::{key_file, Scope};
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys.jsonl");
        let admin = key_file::add(&keys, "ops", Scope::Admin).unwrap();
        let account = crate::domain::AccountId::parse(1).unwrap();
        let scoped = key_file::add(&keys, "eu", Scope::accounts(vec![account])).unwrap();
        let auth = Authenticator::from_file(&keys).unwrap();
        let (api, _progress) = api_with(&dir.path().join("read-model"), auth);
        let scrape = |remote: &str, key: Option<&str>| {
            let mut request = warp::test::request()
                .path("/metrics")
                .extension(server::ClientAddress(remote.parse().unwrap()));
            if let Some(key) = key {
                request = request.header("authorization", format!("Bearer {key}"));
            }
            request.reply(&api)
        };
        assert_eq!(scrape("127.0.0.1:5000", None).await.status(), 200);
        assert_eq!(scrape("[::1]:5000", None).await.status(), 200);
        let remote = "10.1.2.3:5000";
        let refused = scrape(remote, None).await;
        assert_eq!(refused.status(), 401);
        assert!(refused.headers().contains_key("www-authenticate"));
        assert_eq!(scrape(remote, Some(&scoped)).await.status(), 403);
        let scraped = scrape(remote, Some(&admin)).await;
        assert_eq!(scraped.status(), 200);
        let text = String::from_utf8(scraped.body().to_vec()).unwrap();
        assert!(
            text.contains("# TYPE registry_creates_in_flight gauge"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn the_openapi_document_describes_exactly_the_routes() {
        let document = openapi::document();
        let verbs = [
            "get", "head", "put", "post", "patch", "delete", "options", "trace",
        ];
        let documented: BTreeMap<String, String> = document["paths"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(path, item)| {
                let mut methods: Vec<String> = item
                    .as_object()
                    .unwrap()
                    .keys()
                    .filter(|key| verbs.contains(&key.as_str()))
                    .map(|method| method.to_uppercase())
                    .collect();
                methods.sort();
                (path.clone(), methods.join(", "))
            })
            .collect();
        let routed: BTreeMap<String, String> = ROUTES
            .iter()
            .map(|route| {
                let mut methods: Vec<&str> = route.allow().split(", ").collect();
                methods.sort_unstable();
                (route.path.to_owned(), methods.join(", "))
            })
            .collect();
        assert_eq!(documented, routed);

        let dir = tempfile::tempdir().unwrap();
        let (api, progress) = api(dir.path());
        progress.send(BTreeMap::from([(0, 5)])).unwrap();
        let served = warp::test::request()
            .path("/api/v01/openapi.json")
            .reply(&api)
            .await;
        assert_eq!(served.status(), 200);
        assert_eq!(served.headers()["content-type"], "application/json");
        assert_eq!(served.body(), openapi::DOCUMENT.as_bytes());
        for route in ROUTES {
            let (path, methods) = (route.path, route.allow());
            let concrete = path.replace("{customerId}", "01936a4e-8b1c-7def-8a00-000000000001");
            for method in methods.split(", ") {
                let response = warp::test::request()
                    .method(method)
                    .path(&concrete)
                    .reply(&api)
                    .await;
                let body = String::from_utf8_lossy(response.body()).into_owned();
                assert_ne!(response.status(), 405, "{method} {path}: {body}");
                assert!(
                    !body.contains("no resource at this path"),
                    "{method} {path} is not routed"
                );
            }
            for other in ["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE"] {
                if methods.split(", ").any(|method| method == other) {
                    continue;
                }
                let response = warp::test::request()
                    .method(other)
                    .path(&concrete)
                    .reply(&api)
                    .await;
                assert_eq!(response.status(), 405, "{other} {path}");
                assert_eq!(response.headers()["allow"], *methods, "{other} {path}");
            }
        }
    }
}
