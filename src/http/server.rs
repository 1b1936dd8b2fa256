//! The HTTP server around the routes: how much work it takes on at once, and for how long.
//!
//! - At most [`Limits::max_connections`] connections are open; past that, new ones wait in the
//!   listen backlog until one closes.
//! - A request's head must arrive within [`Limits::header_read_timeout`], and an idle keep-alive
//!   connection is closed after the same time: a client that trickles header lines (or sends
//!   nothing) cannot hold a connection open.
//! - A head larger than [`MAX_HEAD_BYTES`] is refused (431) by hyper; that answer, and hyper's
//!   other answers to requests it cannot parse, carry problem documents (`unparsable.rs`).
//! - A request's body is read whole (up to [`MAX_BODY_BYTES`]) before the request takes a slot,
//!   and must arrive within [`Limits::body_read_timeout`] (then 408): a client that trickles a
//!   body holds only its own connection, never a slot others need.
//! - At most [`Limits::max_in_flight`] requests run at once; past that a request is refused at
//!   once with 503 and `Retry-After` (load shedding) instead of queueing behind the others. The
//!   probes and `/metrics` are never shed, so an orchestrator sees the truth under overload.
//! - At most [`Limits::max_in_flight_per_key`] of them carry one `Authorization` value (one API
//!   key's client); past that, 429 at once, so one tenant cannot take every slot. Requests
//!   without the header are not counted per key (they are refused at once when keys are
//!   required, and with authentication off there are no tenants).
//! - A request that has not been answered within [`Limits::request_deadline`] is answered 503.

use super::negotiation::problem_format;
use super::unparsable::ProblemAnswers;
use super::{ApiError, MAX_BODY_BYTES};
use crate::log::OutageLog;
use crate::metrics::{Metrics, Refusal};
use crate::shares::{Share, Shares};
use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tower_service::Service;
use warp::http::{header, Request};
use warp::reply::Response;

/// The address `serve` listens on unless `--listen` says otherwise (`scripts/run.sh` serves
/// there): the OpenAPI document's server.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The largest request head (request line and headers) read, in bytes; past it, 431.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// How long a request's head may take to arrive, and a keep-alive connection may stay idle.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an accept loop waits after the system refused a connection (out of file
/// descriptors), so that the loop does not spin while none is free.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// The bounds the server keeps.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections open at once.
    pub max_connections: usize,
    /// Requests being answered at once, probes aside.
    pub max_in_flight: usize,
    /// Requests being answered at once for one `Authorization` value.
    pub max_in_flight_per_key: usize,
    /// How long a request head may take, and an idle connection may stay open.
    pub header_read_timeout: Duration,
    /// How long a request body may take to arrive once its head has.
    pub body_read_timeout: Duration,
    /// How long a request may take to be answered.
    pub request_deadline: Duration,
}

/// The client's address, as the server accepted the connection.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub SocketAddr);

/// Serves `routes` (a filter made a service by [`warp::service`]) on `listener` within
/// `limits` until `stop` turns true, then shuts down without dropping a request a client has
/// sent: connections already waiting in the listen backlog are accepted, every accepted
/// connection gets its first request read (up to [`FIRST_REQUEST_GRACE`]), and the requests in
/// flight are answered; idle keep-alive connections are closed.
pub async fn serve(
    listener: TcpListener,
    routes: impl Routes,
    limits: Limits,
    metrics: Metrics,
    mut stop: watch::Receiver<bool>,
) {
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let server = Connections {
        routes,
        limits,
        metrics,
        in_flight: Arc::new(Semaphore::new(limits.max_in_flight)),
        per_key: Arc::default(),
        graceful: GracefulShutdown::new(),
        unread: Arc::new(AtomicUsize::new(0)),
    };
    let mut accept_failures = OutageLog::new("accepting HTTP connections");
    loop {
        let accepted = tokio::select! {
            // Checked first: once stopping, nothing new is taken on through the loop.
            biased;
            _ = stop.wait_for(|stop| *stop) => break,
            accepted = accept(&listener, &connections) => accepted,
        };
        match accepted {
            Ok((stream, remote, permit)) => {
                accept_failures.recovered();
                server.spawn(stream, remote, Some(permit));
            }
            Err(error) => {
                accept_failures.failed(&error);
                tokio::time::sleep(ACCEPT_RETRY).await;
            }
        }
    }
    // Clients in the backlog have sent their requests: they are answered, not reset. Each
    // accept waits a moment, so that a connection the reactor has not reported yet is taken too.
    while let Ok(Ok((stream, remote))) = tokio::time::timeout(BACKLOG_WAIT, listener.accept()).await
    {
        server.spawn(stream, remote, None);
    }
    drop(listener);
    // hyper closes a connection whose first request it has not read yet at once on shutdown,
    // even when the request waits in its buffer: each gets the chance to be read first.
    let grace = tokio::time::Instant::now() + FIRST_REQUEST_GRACE;
    while server.unread.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < grace {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.graceful.shutdown().await;
}

/// A request as the routes get it: its body already read.
pub type ReadRequest = Request<Full<Bytes>>;

/// The routes as a service of read requests (what [`warp::service`] makes of a filter).
pub trait Routes:
    Service<ReadRequest, Response = Response, Error = Infallible, Future: Send>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> Routes for S where
    S: Service<ReadRequest, Response = Response, Error = Infallible, Future: Send>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// How long shutdown waits for one more connection from the backlog before closing the listener.
const BACKLOG_WAIT: Duration = Duration::from_millis(10);

/// How long shutdown waits for connections accepted last to have their first request read.
pub const FIRST_REQUEST_GRACE: Duration = Duration::from_secs(1);

/// What every connection of one server shares.
struct Connections<S> {
    routes: S,
    limits: Limits,
    metrics: Metrics,
    in_flight: Arc<Semaphore>,
    per_key: Arc<KeyShares>,
    graceful: GracefulShutdown,
    /// Connections whose first request has not been read yet.
    unread: Arc<AtomicUsize>,
}

impl<S: Routes> Connections<S> {
    /// Serves one accepted connection on a task of its own.
    fn spawn(
        &self,
        stream: tokio::net::TcpStream,
        remote: SocketAddr,
        permit: Option<OwnedSemaphorePermit>,
    ) {
        self.unread.fetch_add(1, Ordering::AcqRel);
        let first_read = FirstRead {
            done: Arc::new(AtomicBool::new(false)),
            unread: Arc::clone(&self.unread),
        };
        let service = Guarded {
            routes: self.routes.clone(),
            client: ClientAddress(remote),
            in_flight: Arc::clone(&self.in_flight),
            per_key: Arc::clone(&self.per_key),
            max_per_key: self.limits.max_in_flight_per_key,
            deadline: self.limits.request_deadline,
            body_read_timeout: self.limits.body_read_timeout,
            first_read: first_read.clone(),
            metrics: self.metrics.clone(),
        };
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout)
            .max_buf_size(MAX_HEAD_BYTES)
            .serve_connection(
                TokioIo::new(ProblemAnswers::new(stream)),
                hyper::service::service_fn(move |request| service.clone().answer(request)),
            );
        let connection = self.graceful.watch(connection);
        tokio::spawn(async move {
            // A client that goes away mid-request, or never finishes its head, is no news.
            if let Err(error) = connection.await {
                tracing::debug!(%error, "HTTP connection ended with an error");
            }
            first_read.mark();
            drop(permit);
        });
    }
}

/// Marks, once, that a connection's first request has been read (or that it ended without one).
#[derive(Clone)]
struct FirstRead {
    done: Arc<AtomicBool>,
    unread: Arc<AtomicUsize>,
}

impl FirstRead {
    fn mark(&self) {
        if !self.done.swap(true, Ordering::AcqRel) {
            self.unread.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// The next connection, once fewer than the maximum are open.
async fn accept(
    listener: &TcpListener,
    connections: &Arc<Semaphore>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let permit = Arc::clone(connections)
        .acquire_owned()
        .await
        .expect("the connection semaphore is never closed");
    let (stream, remote) = listener.accept().await?;
    Ok((stream, remote, permit))
}

/// The routes, behind the in-flight bound and the deadline.
#[derive(Clone)]
struct Guarded<S> {
    routes: S,
    client: ClientAddress,
    in_flight: Arc<Semaphore>,
    per_key: Arc<KeyShares>,
    max_per_key: usize,
    deadline: Duration,
    body_read_timeout: Duration,
    first_read: FirstRead,
    metrics: Metrics,
}

impl<S> Guarded<S>
where
    S: Service<ReadRequest, Response = Response, Error = Infallible> + Send,
    S::Future: Send,
{
    async fn answer(mut self, request: Request<Incoming>) -> Result<Response, Infallible> {
        let arrived = std::time::Instant::now();
        self.first_read.mark();
        let route = super::routes::metrics_label(request.uri().path());
        let method = request.method().clone();
        // Read only if the server answers itself (a cheap clone: header values share bytes).
        let accept = request.headers().get(header::ACCEPT).cloned();
        let metrics = self.metrics.clone();
        // The routes count what they answer; what the server answers itself is counted here.
        let refused = |refusal: Option<Refusal>, error: ApiError| {
            if let Some(refusal) = refusal {
                metrics.count_refusal(refusal);
            }
            let accept = accept.as_ref().and_then(|accept| accept.to_str().ok());
            let response = error.into_response(problem_format(accept));
            metrics.observe_request(
                route,
                method.as_str(),
                response.status().as_u16(),
                arrived.elapsed(),
            );
            response
        };
        let (parts, body) = request.into_parts();
        if let Err(error) = one_host(&parts) {
            return Ok(refused(None, error));
        }
        let body = match read_body(&parts, body, self.body_read_timeout).await {
            Ok(body) => body,
            Err(error) => return Ok(refused(None, error)),
        };
        let mut request = Request::from_parts(parts, Full::new(body));
        request.extensions_mut().insert(self.client);
        let exempt = matches!(route, "/healthz" | "/readyz" | "/metrics");
        let _share = match (exempt, request.headers().get(header::AUTHORIZATION)) {
            (false, Some(key)) => match self.per_key.take(key.as_bytes(), self.max_per_key) {
                Some(share) => Some(share),
                None => {
                    let error = ApiError::TooManyRequests(self.max_per_key);
                    return Ok(refused(Some(Refusal::PerKey), error));
                }
            },
            _ => None,
        };
        let _permit = if exempt {
            None
        } else {
            match Arc::clone(&self.in_flight).try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => return Ok(refused(Some(Refusal::Overloaded), ApiError::Overloaded)),
            }
        };
        let deadline = self.deadline;
        let answering = async {
            if !exempt {
                if let Some(delay) = injected_delay() {
                    tokio::time::sleep(delay).await;
                }
            }
            self.routes.call(request).await
        };
        Ok(match tokio::time::timeout(deadline, answering).await {
            Ok(answered) => answered?,
            Err(_) => refused(
                Some(Refusal::Deadline),
                ApiError::DeadlineExceeded(deadline),
            ),
        })
    }
}

/// Requests in flight per `Authorization` value, by a hash of it (the value itself, a key, is
/// never kept).
#[derive(Default)]
struct KeyShares {
    shares: Arc<Shares<u64>>,
    /// One hasher for the server's life: the same key always hashes alike.
    hasher: hashbrown::DefaultHashBuilder,
}

impl KeyShares {
    /// A place for a request carrying `key`, unless `max` of them are in flight already.
    fn take(&self, key: &[u8], max: usize) -> Option<Share<u64>> {
        use std::hash::BuildHasher;
        self.shares.take(self.hasher.hash_one(key), max)
    }
}

/// An HTTP/1.1 request carries exactly one `Host` (RFC 9112 3.2: otherwise a 400); HTTP/1.0
/// needs none.
fn one_host(head: &warp::http::request::Parts) -> Result<(), ApiError> {
    let hosts = head.headers.get_all(header::HOST).iter().count();
    if head.version == warp::http::Version::HTTP_11 && hosts != 1 {
        return Err(ApiError::Malformed(format!(
            "an HTTP/1.1 request carries exactly one Host header, this one {hosts}"
        )));
    }
    Ok(())
}

/// Reads `body` whole within `timeout`. A body that `Content-Length` says is too large is not
/// read (the routes refuse it by its length); one that streams past the bound is cut one byte
/// past it, so the routes refuse it too.
async fn read_body(
    head: &warp::http::request::Parts,
    mut body: Incoming,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    let declared = head
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|length| length.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES) {
        return Ok(Bytes::new());
    }
    let reading = async {
        let mut collected = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|error| ApiError::Malformed(format!("reading the body: {error}")))?;
            if let Ok(data) = frame.into_data() {
                collected.extend_from_slice(&data);
                if collected.len() as u64 > MAX_BODY_BYTES {
                    break;
                }
            }
        }
        Ok(collected.freeze())
    };
    tokio::time::timeout(timeout, reading)
        .await
        .unwrap_or(Err(ApiError::BodyTimeout(timeout)))
}

/// A delay a test injects before the routes answer (failpoint `http-delay`, its argument in
/// milliseconds), standing for a request that takes long; never in a build without failpoints.
fn injected_delay() -> Option<Duration> {
    fail::fail_point!("http-delay", |ms: Option<String>| ms
        .and_then(|ms| ms.parse().ok())
        .map(Duration::from_millis));
    None
}
