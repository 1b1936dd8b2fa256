//! Read-your-writes through a load balancer: `scripts/cluster.sh` runs two replicas behind
//! HAProxy, which balances every request on its own (round-robin), so a write and the read after
//! it often reach different replicas. A read that sends back its write's `X-Log-Position` as
//! `X-Min-Log-Position` must show that write whichever replica answers it.

use crate::common::{free_ports, http, kafka_bootstrap, text, try_send, unique_topic, Answer};
use prometheus_parse::{Scrape, Value as Sample};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Create-then-find pairs, and as many update-then-get pairs (one per created customer).
const CUSTOMERS: usize = 500;
/// Concurrent clients.
const CLIENTS: usize = 8;
/// Each client opens a new connection (a new HTTP client) after this many customers.
const CUSTOMERS_PER_CONNECTION: usize = 5;
const ACCOUNT: u32 = 61;

/// A cluster started by `scripts/cluster.sh` in a directory of its own; stopped when dropped, so
/// on every exit path of the test, a panic included (which keeps the directory and its logs).
struct Cluster {
    dir: Option<tempfile::TempDir>,
    port: u16,
}

impl Cluster {
    /// Starts `replicas` replicas on `topic` behind a balancer on a free port; fails the test,
    /// with the script's output and how to install HAProxy, when the cluster does not start.
    fn start(bootstrap: &str, topic: &str, replicas: usize) -> Cluster {
        let cluster = Cluster {
            dir: Some(tempfile::tempdir().expect("a temporary directory")),
            port: free_ports::<1>()[0],
        };
        let output = cluster
            .script("start")
            .args(["--replicas", &replicas.to_string()])
            .env("REGISTRY_BIN", env!("CARGO_BIN_EXE_customer-registry"))
            .env("REGISTRY_KAFKA_BOOTSTRAP", bootstrap)
            .env("REGISTRY_TOPIC", topic)
            .env("REGISTRY_NO_AUTH", "1")
            .env("REGISTRY_KEK_FILE", crate::common::kek_file())
            .env_remove("REGISTRY_API_KEYS")
            .env("CLUSTER_REPLICA_BASE_PORT", "0")
            .output()
            .expect("running scripts/cluster.sh start");
        assert!(
            output.status.success(),
            "scripts/cluster.sh start failed ({}). It needs HAProxy: when the script could not \
             install it, install Debian's package yourself (`sudo apt-get update && sudo apt-get \
             install -y haproxy`) and run the test again.\n{}",
            output.status,
            text(&output)
        );
        cluster
    }

    fn script(&self, command: &str) -> Command {
        let mut script = Command::new("bash");
        script
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster.sh"))
            .arg(command)
            .env("CLUSTER_DIR", self.dir())
            .env("CLUSTER_PORT", self.port.to_string());
        script
    }

    fn dir(&self) -> &Path {
        self.dir.as_ref().expect("the cluster's directory").path()
    }

    /// The balancer's URL for `path`.
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Each replica's name and `http://address`, as the script lists them.
    fn replicas(&self) -> Vec<(String, String)> {
        let listing = std::fs::read_to_string(self.dir().join("replicas"))
            .expect("scripts/cluster.sh lists the replicas it started");
        listing
            .lines()
            .map(|line| {
                let (name, address) = line.split_once(' ').expect("a line `name address`");
                (name.to_owned(), format!("http://{address}"))
            })
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        match self.script("stop").output() {
            Ok(output) if output.status.success() => {}
            Ok(output) => eprintln!("scripts/cluster.sh stop failed:\n{}", text(&output)),
            Err(error) => eprintln!("cannot run scripts/cluster.sh stop: {error}"),
        }
        if std::thread::panicking() {
            if let Some(dir) = self.dir.take() {
                eprintln!("the cluster's logs are kept in {}", dir.keep().display());
            }
        }
    }
}

/// Requests to the customers routes that the replica at `base_url` answered, from its own
/// counters (`/metrics` is open to loopback clients on the API's address).
async fn customer_requests_answered(base_url: &str) -> f64 {
    let text = http()
        .get(format!("{base_url}/metrics"))
        .send()
        .await
        .expect("GET /metrics from a replica")
        .text()
        .await
        .expect("the metrics text");
    let scrape = Scrape::parse(text.lines().map(|line| Ok(line.to_owned())))
        .expect("a valid text exposition");
    scrape
        .samples
        .iter()
        .filter(|sample| sample.metric == "registry_http_requests_total")
        .filter(|sample| {
            sample
                .labels
                .get("route")
                .is_some_and(|route| route.starts_with("/api/v01/customers"))
        })
        .map(|sample| match sample.value {
            Sample::Counter(value) | Sample::Untyped(value) => value,
            _ => panic!("registry_http_requests_total is a counter"),
        })
        .sum()
}

/// What one client saw.
#[derive(Default)]
struct Outcome {
    /// Reads that answered but did not show the write they followed.
    misses: Vec<String>,
    /// Requests answered with an unexpected status.
    failures: Vec<String>,
    /// Pairs whose write and read two different replicas answered (HAProxy says which in
    /// `X-Served-By`).
    crossed: usize,
    pairs: usize,
}

/// [`try_send`], with the reason there is no answer as text, for the client's failures.
async fn answer_of(request: reqwest::RequestBuilder) -> Result<Answer, String> {
    try_send(request).await.map_err(|error| error.to_string())
}

/// Client `client`'s share of the customers: for each, create it and find it by its name, then
/// change its city and get it, each read with its write's position.
async fn run_client(balancer: String, client: usize) -> Outcome {
    let mut outcome = Outcome::default();
    let mut http_client = http();
    for (done, n) in (client..CUSTOMERS).step_by(CLIENTS).enumerate() {
        if done > 0 && done % CUSTOMERS_PER_CONNECTION == 0 {
            http_client = http();
        }
        if let Err(failure) =
            create_then_find_then_update_then_get(&http_client, &balancer, n, &mut outcome).await
        {
            outcome.failures.push(format!("customer {n}: {failure}"));
        }
    }
    outcome
}

async fn create_then_find_then_update_then_get(
    http_client: &reqwest::Client,
    balancer: &str,
    n: usize,
    outcome: &mut Outcome,
) -> Result<(), String> {
    // Fixed width: no name is a prefix of another, so the find answers exactly one customer.
    let last_name = format!("Balancer{n:04}");
    let created = answer_of(
        http_client
            .put(format!("{balancer}/api/v01/customers"))
            .json(&json!({"accountId": ACCOUNT, "lastName": last_name, "city": "Before"})),
    )
    .await?;
    if created.status != 201 || created.position().is_empty() {
        return Err(format!(
            "create answered {}: {}",
            created.status, created.body
        ));
    }
    let found = answer_of(
        http_client
            .get(format!(
                "{balancer}/api/v01/customers?accountId={ACCOUNT}&lastName={last_name}"
            ))
            .header("x-min-log-position", created.position()),
    )
    .await?;
    if found.status != 200 {
        return Err(format!("find answered {}: {}", found.status, found.body));
    }
    outcome.pairs += 1;
    outcome.crossed += usize::from(found.header("x-served-by") != created.header("x-served-by"));
    if found.body != json!([created.body]) {
        outcome.misses.push(format!(
            "find after create at {} ({} then {}): {}",
            created.position(),
            created.header("x-served-by"),
            found.header("x-served-by"),
            found.body
        ));
    }

    let id = created.body["id"]
        .as_str()
        .ok_or("a created customer has an id")?;
    let city = format!("After{n}");
    // A change reads the customer first: sent without the create's position, it could reach a
    // replica that has not applied the create yet and be answered 404.
    let updated = answer_of(
        http_client
            .post(format!("{balancer}/api/v01/customers/{id}"))
            .header("x-min-log-position", created.position())
            .json(&json!({"city": city})),
    )
    .await?;
    if updated.status != 200 || updated.position().is_empty() {
        return Err(format!(
            "update answered {}: {}",
            updated.status, updated.body
        ));
    }
    let got = answer_of(
        http_client
            .get(format!("{balancer}/api/v01/customers/{id}"))
            .header("x-min-log-position", updated.position()),
    )
    .await?;
    if got.status != 200 {
        return Err(format!("get answered {}: {}", got.status, got.body));
    }
    outcome.pairs += 1;
    outcome.crossed += usize::from(got.header("x-served-by") != updated.header("x-served-by"));
    if got.body["city"] != city || got.body["version"] != 2 {
        outcome.misses.push(format!(
            "get after update at {} ({} then {}): {}",
            updated.position(),
            updated.header("x-served-by"),
            got.header("x-served-by"),
            got.body
        ));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_read_through_the_balancer_shows_the_write_whose_position_it_sends() {
    let started = Instant::now();
    let cluster = Cluster::start(&kafka_bootstrap(), &unique_topic("balancer"), 2);
    let replicas = cluster.replicas();
    assert_eq!(replicas.len(), 2, "{replicas:?}");
    let startup = started.elapsed();

    // The balancer keeps /metrics to each replica's own address.
    let metrics = http().get(cluster.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status().as_u16(), 404);

    let mut answered_before = BTreeMap::new();
    for (name, base_url) in &replicas {
        answered_before.insert(name, customer_requests_answered(base_url).await);
    }

    let load_started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| tokio::spawn(run_client(cluster.url(""), client)))
        .collect();
    let mut outcome = Outcome::default();
    for client in clients {
        let seen = client.await.expect("a client task");
        outcome.misses.extend(seen.misses);
        outcome.failures.extend(seen.failures);
        outcome.crossed += seen.crossed;
        outcome.pairs += seen.pairs;
    }
    let load = load_started.elapsed();

    let mut answered = BTreeMap::new();
    for (name, base_url) in &replicas {
        answered.insert(
            name,
            customer_requests_answered(base_url).await - answered_before[name],
        );
    }
    let total: f64 = answered.values().sum();
    println!(
        "balancer: started in {startup:?}; {} pairs in {load:?} ({} crossed replicas); requests \
         answered per replica: {answered:?}",
        outcome.pairs, outcome.crossed
    );

    assert!(
        outcome.failures.is_empty(),
        "{} customers failed, e.g. {:?}",
        outcome.failures.len(),
        &outcome.failures[..outcome.failures.len().min(5)]
    );
    assert_eq!(outcome.pairs, 2 * CUSTOMERS);
    assert!(
        outcome.misses.is_empty(),
        "{} reads missed their write, e.g. {:?}",
        outcome.misses.len(),
        &outcome.misses[..outcome.misses.len().min(5)]
    );
    // Four requests a customer, each answered by exactly one replica, and each replica a real share.
    assert_eq!(total, (4 * CUSTOMERS) as f64, "{answered:?}");
    for (name, count) in &answered {
        assert!(
            *count >= total / 4.0,
            "{name} answered {count} of {total} requests: {answered:?}"
        );
    }
    // The point of X-Min-Log-Position: many reads reached another replica than their write.
    assert!(
        outcome.crossed >= outcome.pairs / 10,
        "only {} of {} pairs crossed replicas",
        outcome.crossed,
        outcome.pairs
    );
}
