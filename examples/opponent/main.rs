//! The benchmark's HTTP opponent: the customers resource written the way a team without event
//! sourcing would, a plain service on PostgreSQL (axum, tokio-postgres, a deadpool connection
//! pool). It answers the routes the load generator drives with the registry's JSON: create, get,
//! find by accountId with email / lastName / city + state / code, and update; every request but
//! `/healthz` carries a bearer key checked against the registry's key file (SHA-256, as the
//! registry does). Its table and indexes are the ones `scripts/bench.sh` creates for pgbench.
//!
//! Not the registry: it shares none of its code, so that the comparison is of two services.

mod body;
mod sql;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use clap::Parser;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:28090")]
    listen: String,
    /// libpq-style connection string, e.g. `host=/tmp port=25432 user=bench dbname=postgres`.
    #[arg(long)]
    database: String,
    /// Connections in the pool (pgbench's clients in the same run: 32).
    #[arg(long, default_value_t = 32)]
    pool_size: usize,
    /// The registry's API key file (`customer-registry keys add`): any key in it is accepted.
    #[arg(long)]
    api_keys: String,
}

/// What every handler shares.
struct Service {
    pool: deadpool_postgres::Pool,
    /// Hex SHA-256 of every accepted key.
    key_digests: HashSet<String>,
}

type Shared = Arc<Service>;

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let config: tokio_postgres::Config = cli.database.parse().expect("a connection string");
    let manager = deadpool_postgres::Manager::from_config(
        config,
        tokio_postgres::NoTls,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    let pool = deadpool_postgres::Pool::builder(manager)
        .max_size(cli.pool_size)
        .build()
        .expect("a connection pool");
    let service = Arc::new(Service {
        pool,
        key_digests: key_digests(&cli.api_keys),
    });
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/v01/customers", get(find).put(create))
        .route("/api/v01/customers/{id}", get(read).post(update))
        .with_state(service);
    let listener = tokio::net::TcpListener::bind(&cli.listen)
        .await
        .expect("the listen address");
    println!("opponent listening on {}", cli.listen);
    axum::serve(listener, app).await.expect("the server");
}

/// The hex SHA-256 of every key in the key file at `path` (one JSON object a line).
fn key_digests(path: &str) -> HashSet<String> {
    std::fs::read_to_string(path)
        .expect("the key file")
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let entry: serde_json::Value = serde_json::from_str(line).expect("a key entry");
            entry["sha256"].as_str().expect("a sha256").to_owned()
        })
        .collect()
}

/// An error answer: a status and a problem document.
struct Problem(StatusCode, String);

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "title": self.0.canonical_reason(),
            "status": self.0.as_u16(),
            "detail": self.1,
        });
        (
            self.0,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body.to_string(),
        )
            .into_response()
    }
}

impl From<tokio_postgres::Error> for Problem {
    fn from(error: tokio_postgres::Error) -> Self {
        let detail = match error.as_db_error() {
            Some(database) => database.message().to_owned(),
            None => error.to_string(),
        };
        Problem(StatusCode::INTERNAL_SERVER_ERROR, detail)
    }
}

impl From<deadpool_postgres::PoolError> for Problem {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        Problem(StatusCode::SERVICE_UNAVAILABLE, error.to_string())
    }
}

/// Passes a request whose bearer key is in the key file.
fn authenticate(service: &Service, headers: &HeaderMap) -> Result<(), Problem> {
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or_else(|| Problem(StatusCode::UNAUTHORIZED, "a bearer key is needed".into()))?;
    let digest: String = Sha256::digest(key.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    if service.key_digests.contains(&digest) {
        Ok(())
    } else {
        Err(Problem(StatusCode::UNAUTHORIZED, "unknown key".into()))
    }
}

/// A customer's JSON answer with its ETag.
fn customer_answer(status: StatusCode, customer: &sql::CustomerRow) -> Response {
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(customer).expect("a customer serialises"),
    )
        .into_response();
    let etag = format!("\"{}\"", customer.version);
    response.headers_mut().insert(
        header::ETAG,
        HeaderValue::from_str(&etag).expect("digits are a header value"),
    );
    response
}

async fn create(
    State(service): State<Shared>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    authenticate(&service, &headers)?;
    let new = body::NewCustomer::parse(&body)
        .map_err(|detail| Problem(StatusCode::BAD_REQUEST, detail))?;
    let client = service.pool.get().await?;
    let customer = match sql::insert(&client, &new).await {
        Err(error) if error.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
            return Err(Problem(
                StatusCode::CONFLICT,
                "the account has a customer with this code".into(),
            ))
        }
        inserted => inserted?,
    };
    let mut response = customer_answer(StatusCode::CREATED, &customer);
    let location = format!("/api/v01/customers/{}", customer.id);
    response.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(&location).expect("a path is a header value"),
    );
    Ok(response)
}

async fn read(
    State(service): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    authenticate(&service, &headers)?;
    let id = customer_id(&id)?;
    let client = service.pool.get().await?;
    match sql::by_id(&client, id).await? {
        Some(customer) => Ok(customer_answer(StatusCode::OK, &customer)),
        None => Err(not_found()),
    }
}

async fn update(
    State(service): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    authenticate(&service, &headers)?;
    let id = customer_id(&id)?;
    let change =
        body::Change::parse(&body).map_err(|detail| Problem(StatusCode::BAD_REQUEST, detail))?;
    let client = service.pool.get().await?;
    match sql::update(&client, id, &change).await? {
        Some(customer) => Ok(customer_answer(StatusCode::OK, &customer)),
        None => Err(not_found()),
    }
}

async fn find(
    State(service): State<Shared>,
    Query(parameters): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    authenticate(&service, &headers)?;
    let filter = sql::Filter::parse(&parameters)
        .map_err(|detail| Problem(StatusCode::BAD_REQUEST, detail))?;
    let client = service.pool.get().await?;
    let (customers, total) = sql::find(&client, &filter).await?;
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(&customers).expect("customers serialise"),
    )
        .into_response();
    response
        .headers_mut()
        .insert("x-total-count", HeaderValue::from(total));
    Ok(response)
}

fn customer_id(text: &str) -> Result<uuid::Uuid, Problem> {
    text.parse().map_err(|_| not_found())
}

fn not_found() -> Problem {
    Problem(StatusCode::NOT_FOUND, "no such customer".into())
}
