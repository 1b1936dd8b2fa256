//! The benchmark's load generator (run by `scripts/bench.sh`): HTTP load against a running
//! registry (closed-loop: so many clients that never pause; open-loop: a constant arrival rate),
//! the Kafka ceilings (straight produce, bare consume), and query parameters for the PostgreSQL
//! comparison. Every scenario prints one JSON object on stdout.

mod data;
mod open_loop;

use clap::{Parser, Subcommand};
use customer_registry::domain::{
    Customer, CustomerCreated, CustomerDetails, FieldValue, RegistryEvent,
};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::{json, Value};
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The allocator the service runs with (see `src/main.rs`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// PUT `customers` generated customers with `concurrency` clients.
    Create {
        #[arg(long)]
        url: String,
        #[arg(long)]
        customers: u64,
        /// The first generated customer to send (those before it were loaded elsewhere).
        #[arg(long, default_value_t = 0)]
        first: u64,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Produce the same events straight to Kafka: the ceiling for creates.
    Produce {
        #[arg(long)]
        bootstrap: String,
        #[arg(long)]
        topic: String,
        #[arg(long)]
        customers: u64,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Read a topic from offset 0 to its end: the ceiling for rebuilds.
    Consume {
        #[arg(long)]
        bootstrap: String,
        #[arg(long)]
        topic: String,
    },
    /// GET finds (or gets) with parameters drawn from an export, for `duration` seconds.
    Query {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Requests sent, and not measured, before the measured seconds start: the read model's
        /// cache is warmed as PostgreSQL's is by its own warm-up.
        #[arg(long, default_value_t = 3)]
        warmup_seconds: u64,
    },
    /// Requests at a constant arrival rate (`--rate` a second), each request's latency counted
    /// from the moment the schedule meant it to start (no coordinated omission): p50 / p99 /
    /// p99.9 / max from an HDR histogram.
    Open {
        #[command(flatten)]
        target: Target,
        /// The first generated customer a `create` run sends (those before it were loaded).
        #[arg(long, default_value_t = 0)]
        first: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Requests a second.
        #[arg(long)]
        rate: f64,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Requests sent, and not measured, before the measured seconds start.
        #[arg(long, default_value_t = 2)]
        warmup_seconds: u64,
        /// Requests in flight at most; past it a request waits, its wait counted. 128: the
        /// registry's bound per API key (`REGISTRY_MAX_IN_FLIGHT_PER_KEY`), past which it would
        /// answer 429 at once.
        #[arg(long, default_value_t = 128)]
        max_in_flight: usize,
    },
    /// Update random customers drawn from an export, for `duration` seconds: each update sets a
    /// new email and phone (the email index changes with it).
    Update {
        #[arg(long)]
        url: String,
        /// JSON Lines export of the registry (`customer-registry export`).
        #[arg(long)]
        export: String,
        /// `unconditional` (POST), `conditional` (GET for the ETag, then POST with `If-Match`:
        /// the read-modify-write cycle is what is timed) or `keyed` (POST with a new
        /// `Idempotency-Key`).
        #[arg(long)]
        mode: UpdateMode,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Write query parameters drawn from an export as CSV, for PostgreSQL's pgbench.
    Params {
        #[arg(long)]
        export: String,
        #[arg(long, default_value_t = 10_000)]
        count: usize,
    },
}

/// Where a query or an open loop sends its requests, and what they ask.
#[derive(clap::Args)]
struct Target {
    #[arg(long)]
    url: String,
    /// JSON Lines export of the registry (`customer-registry export`); not for `healthz` or
    /// `create`.
    #[arg(long)]
    export: Option<String>,
    /// `lastname`, `email`, `citystate`, `get`, `code`, or `healthz` (the cheapest answer the
    /// HTTP stack gives: its ceiling); in an open loop also `create` (new customers, numbered
    /// from `--first`) and `update` (unconditional, of random customers of the export).
    #[arg(long)]
    kind: String,
}

#[tokio::main]
async fn main() {
    let report = match Cli::parse().scenario {
        Scenario::Create {
            url,
            customers,
            first,
            concurrency,
            seed,
        } => create(&url, first..first + customers, concurrency, seed).await,
        Scenario::Produce {
            bootstrap,
            topic,
            customers,
            concurrency,
            seed,
        } => produce(&bootstrap, &topic, customers, concurrency, seed).await,
        Scenario::Consume { bootstrap, topic } => consume(&bootstrap, &topic),
        Scenario::Query {
            target,
            concurrency,
            seconds,
            warmup_seconds,
        } => {
            query(
                &target,
                concurrency,
                Duration::from_secs(warmup_seconds),
                Duration::from_secs(seconds),
            )
            .await
        }
        Scenario::Open {
            target,
            first,
            seed,
            rate,
            seconds,
            warmup_seconds,
            max_in_flight,
        } => {
            let schedule = open_loop::Schedule {
                rate,
                warmup: Duration::from_secs(warmup_seconds),
                duration: Duration::from_secs(seconds),
                max_in_flight,
            };
            let requests = open_requests(&target, first, seed);
            open_loop::run(requests, schedule).await
        }
        Scenario::Update {
            url,
            export,
            mode,
            concurrency,
            seconds,
        } => {
            update(
                &url,
                &export,
                mode,
                concurrency,
                Duration::from_secs(seconds),
            )
            .await
        }
        Scenario::Params { export, count } => {
            params(&export, count);
            return;
        }
    };
    println!("{report}");
}

/// Throughput and latency percentiles of a run.
fn summary(mut latencies_us: Vec<u32>, elapsed: Duration, errors: u64) -> Value {
    latencies_us.sort_unstable();
    let at = |q: f64| {
        if latencies_us.is_empty() {
            0.0
        } else {
            let index =
                ((latencies_us.len() as f64 * q).ceil() as usize).clamp(1, latencies_us.len()) - 1;
            f64::from(latencies_us[index]) / 1000.0
        }
    };
    json!({
        "count": latencies_us.len(),
        "errors": errors,
        "seconds": elapsed.as_secs_f64(),
        "perSecond": latencies_us.len() as f64 / elapsed.as_secs_f64(),
        "p50Ms": at(0.50),
        "p99Ms": at(0.99),
        "p999Ms": at(0.999),
    })
}

/// An HTTP client; with `LOADGEN_API_KEY` set, every request carries it as a bearer token.
fn http_client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Ok(key) = std::env::var("LOADGEN_API_KEY") {
        let value = format!("Bearer {key}")
            .parse()
            .expect("an API key is ASCII");
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("an HTTP client")
}

/// PUTs the generated customers numbered `customers` with `concurrency` clients.
async fn create(
    url: &str,
    customers: std::ops::Range<u64>,
    concurrency: usize,
    seed: u64,
) -> Value {
    let next = Arc::new(AtomicU64::new(customers.start));
    let client = http_client();
    let started = Instant::now();
    let progress = indicatif::ProgressBar::new(customers.end - customers.start);
    progress.set_style(
        indicatif::ProgressStyle::with_template(
            "{pos}/{len} customers loaded  {per_sec}  ETA {eta}",
        )
        .expect("a valid template"),
    );
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (next, client, url, progress) = (
                next.clone(),
                client.clone(),
                format!("{url}/api/v01/customers"),
                progress.clone(),
            );
            tokio::spawn(async move {
                let (mut latencies, mut errors) = (Vec::new(), 0u64);
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= customers.end {
                        return (latencies, errors);
                    }
                    let body = data::customer(seed, n);
                    let sent = Instant::now();
                    match client.put(&url).json(&body).send().await {
                        Ok(response) if response.status().as_u16() == 201 => {
                            latencies.push(sent.elapsed().as_micros() as u32);
                            progress.inc(1);
                        }
                        _ => errors += 1,
                    }
                }
            })
        })
        .collect();
    let (latencies, errors) = gather(workers).await;
    progress.finish_and_clear();
    summary(latencies, started.elapsed(), errors)
}

async fn produce(
    bootstrap: &str,
    topic: &str,
    customers: u64,
    concurrency: usize,
    seed: u64,
) -> Value {
    // A topic like the registry's: three partitions, nothing ever deleted.
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("an admin client");
    let new_topic = NewTopic::new(topic, 3, TopicReplication::Fixed(1)).set("retention.ms", "-1");
    let _ = admin
        .create_topics([&new_topic], &AdminOptions::new())
        .await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .create()
        .expect("a producer");
    let next = Arc::new(AtomicU64::new(0));
    // The customers' own JSON, as an export writes it: what the footprint is compared with.
    let customer_json_bytes = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (next, producer, topic) = (next.clone(), producer.clone(), topic.to_owned());
            let customer_json_bytes = customer_json_bytes.clone();
            tokio::spawn(async move {
                let (mut latencies, mut errors) = (Vec::new(), 0u64);
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= customers {
                        return (latencies, errors);
                    }
                    let created = created_event_for(&data::customer(seed, n));
                    let json = serde_json::to_vec(&created.customer).expect("a customer's JSON");
                    let event = RegistryEvent::CustomerCreated(created);
                    customer_json_bytes.fetch_add(json.len() as u64 + 1, Ordering::Relaxed);
                    let (key, payload) = (event.customer_id().to_string(), event.encode());
                    let sent = Instant::now();
                    let record = FutureRecord::to(&topic).key(&key).payload(&payload);
                    match producer.send(record, Duration::from_secs(30)).await {
                        Ok(_) => latencies.push(sent.elapsed().as_micros() as u32),
                        Err(_) => errors += 1,
                    }
                }
            })
        })
        .collect();
    let (latencies, errors) = gather(workers).await;
    let mut report = summary(latencies, started.elapsed(), errors);
    report["customerJsonBytes"] = customer_json_bytes.load(Ordering::Relaxed).into();
    report
}

/// The event the registry would write for `body`.
fn created_event_for(body: &Value) -> CustomerCreated {
    let fields = body
        .as_object()
        .expect("generated customers are objects")
        .iter()
        .map(|(name, value)| {
            let value = match value {
                Value::Number(number) => {
                    FieldValue::Integer(number.as_i64().expect("generated numbers are integers"))
                }
                Value::String(text) => FieldValue::Text(text.clone()),
                _ => FieldValue::Null,
            };
            (name.clone(), value)
        });
    let details = CustomerDetails::parse(fields).expect("generated customers are valid");
    // A create with a code names the customer the code derives, as the registry's does.
    let customer = match &details.code {
        Some(code) => Customer::register_as(code.customer_id(details.account_id), details.clone()),
        None => Customer::register(details),
    };
    CustomerCreated::new(customer)
}

fn consume(bootstrap: &str, topic: &str) -> Value {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "customer-registry.bench")
        .set("enable.auto.commit", "false")
        .create()
        .expect("a consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let mut assignment = TopicPartitionList::new();
    let mut remaining = 0i64;
    for partition in metadata.topics()[0].partitions() {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition.id(), Duration::from_secs(10))
            .expect("watermarks");
        assignment
            .add_partition_offset(topic, partition.id(), Offset::Offset(low))
            .expect("assignment");
        remaining += high - low;
    }
    consumer.assign(&assignment).expect("assign");
    let total = remaining;
    let started = Instant::now();
    while remaining > 0 {
        if let Some(Ok(_)) = consumer.poll(Duration::from_secs(10)) {
            remaining -= 1;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    json!({"count": total, "seconds": seconds, "perSecond": total as f64 / seconds})
}

fn read_export(path: &str) -> Vec<Value> {
    let file = std::fs::File::open(path).expect("the export");
    std::io::BufReader::new(file)
        .lines()
        .map(|line| serde_json::from_str(&line.expect("a line")).expect("a customer"))
        .collect()
}

/// The customer ids of an export, in its order.
fn export_ids(path: &str) -> Vec<String> {
    read_export(path)
        .iter()
        .filter_map(|customer| customer["id"].as_str().map(str::to_owned))
        .collect()
}

/// The requests of an open-loop run at `target` (see `Scenario::Open`).
fn open_requests(target: &Target, first: u64, seed: u64) -> open_loop::Requests {
    let (url, kind, export) = (&target.url, target.kind.as_str(), target.export.as_deref());
    let client = http_client();
    let customers = format!("{url}/api/v01/customers");
    match kind {
        "create" => open_loop::Requests {
            build: Box::new(move |n| {
                client
                    .put(&customers)
                    .json(&data::customer(seed, first + u64::from(n)))
            }),
            expected: |status| status == 201,
        },
        "update" => {
            let ids = export_ids(export.expect("--export is needed for update"));
            open_loop::Requests {
                build: Box::new(move |n| {
                    let mut rng = data::Rng::new(seed + u64::from(n));
                    let id = &ids[(rng.next_u64() % ids.len() as u64) as usize];
                    client
                        .post(format!("{customers}/{id}"))
                        .json(&new_contact(&mut rng))
                }),
                expected: |status| status == 200,
            }
        }
        _ => {
            let paths = paths_for(kind, export);
            let url = url.to_owned();
            open_loop::Requests {
                build: Box::new(move |n| {
                    client.get(format!("{url}{}", paths[n as usize % paths.len()]))
                }),
                expected: |status| (200..300).contains(&status),
            }
        }
    }
}

/// The body of an update: a new email and phone drawn from `rng`.
fn new_contact(rng: &mut data::Rng) -> Value {
    let number = rng.next_u64() % 10_000_000;
    json!({
        "email": format!("updated{number}@example.com"),
        "phone": format!("+1 (646) {:03}-{:04}", number / 10_000 % 1000, number % 10_000),
    })
}

/// The paths of the requests of `kind`: `/healthz` (the HTTP stack's cheapest answer), or up to
/// 10,000 drawn from the customers of `export` (seeded, so that every run and every opponent
/// asks the same).
fn paths_for(kind: &str, export: Option<&str>) -> Vec<String> {
    if kind == "healthz" {
        return vec!["/healthz".to_owned()];
    }
    let customers = read_export(export.unwrap_or_else(|| panic!("--export is needed for {kind}")));
    let mut rng = data::Rng::new(7);
    (0..10_000)
        .filter_map(|_| {
            request_path(
                kind,
                &customers[(rng.next_u64() % customers.len() as u64) as usize],
            )
        })
        .collect()
}

/// The path of one request of `kind`, drawn from `customer`.
fn request_path(kind: &str, customer: &Value) -> Option<String> {
    let text = |name: &str| customer[name].as_str().map(urlencoding);
    let account = customer["accountId"].as_u64()?;
    Some(match kind {
        "lastname" => {
            let prefix: String = customer["lastName"].as_str()?.chars().take(3).collect();
            format!(
                "/api/v01/customers?accountId={account}&lastName={}",
                urlencoding(&prefix)
            )
        }
        "email" => format!(
            "/api/v01/customers?accountId={account}&email={}",
            text("email")?
        ),
        "citystate" => format!(
            "/api/v01/customers?accountId={account}&city={}&state={}",
            text("city")?,
            text("state")?
        ),
        "get" => format!("/api/v01/customers/{}", customer["id"].as_str()?),
        "code" => format!(
            "/api/v01/customers?accountId={account}&code={}",
            text("code")?
        ),
        other => panic!("unknown query kind {other}"),
    })
}

fn urlencoding(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

async fn query(target: &Target, concurrency: usize, warmup: Duration, duration: Duration) -> Value {
    let paths = Arc::new(paths_for(&target.kind, target.export.as_deref()));
    let url = target.url.as_str();
    let client = http_client();
    let measured_from = Instant::now() + warmup;
    let measured_until = measured_from + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let (paths, client, url) = (paths.clone(), client.clone(), url.to_owned());
            tokio::spawn(async move {
                let (mut latencies, mut errors) = (Vec::new(), 0u64);
                let mut n = worker;
                while Instant::now() < measured_until {
                    let path = &paths[n % paths.len()];
                    n += concurrency;
                    let sent = Instant::now();
                    let answered = match client.get(format!("{url}{path}")).send().await {
                        Ok(response) if response.status().is_success() => {
                            response.bytes().await.is_ok()
                        }
                        _ => false,
                    };
                    if sent < measured_from {
                        continue;
                    }
                    if answered {
                        latencies.push(sent.elapsed().as_micros() as u32);
                    } else {
                        errors += 1;
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let (latencies, errors) = gather(workers).await;
    summary(latencies, measured_from.elapsed(), errors)
}

/// How the update scenario sends its updates.
#[derive(Clone, Copy, clap::ValueEnum)]
enum UpdateMode {
    Unconditional,
    Conditional,
    Keyed,
}

impl UpdateMode {
    /// The seed of worker `worker`'s updates: its own per mode, since a run of one mode after
    /// another with the same seed would send the same updates again, which change nothing.
    fn seed(self, worker: usize) -> u64 {
        let mode = match self {
            UpdateMode::Unconditional => 0,
            UpdateMode::Conditional => 1,
            UpdateMode::Keyed => 2,
        };
        1000 + worker as u64 + mode * 1_000_000
    }
}

async fn update(
    url: &str,
    export: &str,
    mode: UpdateMode,
    concurrency: usize,
    duration: Duration,
) -> Value {
    let ids = Arc::new(export_ids(export));
    let client = http_client();
    // Conditional updates another client's change overtook (412): part of the work, not errors.
    let overtaken = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let until = started + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let (ids, client, overtaken) = (ids.clone(), client.clone(), overtaken.clone());
            let url = format!("{url}/api/v01/customers");
            tokio::spawn(async move {
                let mut rng = data::Rng::new(mode.seed(worker));
                let (mut latencies, mut errors) = (Vec::new(), 0u64);
                while Instant::now() < until {
                    let id = &ids[(rng.next_u64() % ids.len() as u64) as usize];
                    let body = new_contact(&mut rng);
                    let sent = Instant::now();
                    match update_once(&client, &format!("{url}/{id}"), mode, &body).await {
                        Some(200) => latencies.push(sent.elapsed().as_micros() as u32),
                        Some(412) => {
                            overtaken.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => errors += 1,
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let (latencies, errors) = gather(workers).await;
    let mut report = summary(latencies, started.elapsed(), errors);
    report["overtaken"] = overtaken.load(Ordering::Relaxed).into();
    report
}

/// Sends one update of `mode` to the customer at `url`; its status, or `None` when it failed.
async fn update_once(
    client: &reqwest::Client,
    url: &str,
    mode: UpdateMode,
    body: &Value,
) -> Option<u16> {
    let request = client.post(url).json(body);
    let request = match mode {
        UpdateMode::Unconditional => request,
        UpdateMode::Keyed => request.header("Idempotency-Key", uuid::Uuid::now_v7().to_string()),
        UpdateMode::Conditional => {
            let read = client.get(url).send().await.ok()?;
            if !read.status().is_success() {
                return None;
            }
            let etag = read.headers().get(reqwest::header::ETAG)?.clone();
            read.bytes().await.ok()?;
            request.header(reqwest::header::IF_MATCH, etag)
        }
    };
    let response = request.send().await.ok()?;
    let status = response.status().as_u16();
    response.bytes().await.ok()?;
    Some(status)
}

fn params(export: &str, count: usize) {
    let customers = read_export(export);
    let mut rng = data::Rng::new(7);
    let mut out = std::io::stdout().lock();
    for n in 1..=count {
        let customer = &customers[(rng.next_u64() % customers.len() as u64) as usize];
        // PostgreSQL's text COPY format: `\N` for a missing field, backslashes doubled.
        let copy_text = |text: Option<String>| match text {
            Some(text) => text.replace('\\', "\\\\").replace(['\t', '\n'], " "),
            None => "\\N".to_owned(),
        };
        let field = |name: &str| copy_text(customer[name].as_str().map(str::to_owned));
        let last3 = copy_text(
            customer["lastName"]
                .as_str()
                .map(|name| name.chars().take(3).collect()),
        );
        writeln!(
            out,
            "{n}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            customer["accountId"],
            last3,
            field("email"),
            field("city"),
            field("state"),
            field("id"),
            field("code")
        )
        .expect("writing params");
    }
}

async fn gather(workers: Vec<tokio::task::JoinHandle<(Vec<u32>, u64)>>) -> (Vec<u32>, u64) {
    let (mut latencies, mut errors) = (Vec::new(), 0);
    for worker in workers {
        let (worker_latencies, worker_errors) = worker.await.expect("a worker");
        latencies.extend(worker_latencies);
        errors += worker_errors;
    }
    (latencies, errors)
}
