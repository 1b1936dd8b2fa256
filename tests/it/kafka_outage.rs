//! Stop Kafka during load and start it again: finds keep answering from the read model, creates
//! fail fast with 503 meanwhile, nothing acknowledged is lost or doubled, and the service
//! recovers by itself. Runs its own broker (scripts/kafka.sh on free ports), since it stops it.

use crate::common;
use crate::common::load::{create_all, Target};
use crate::common::{find_eventually, free_ports, get, http, Registry};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A broker of this test's own, stopped when dropped.
struct Broker {
    ports: [u16; 2],
    data_dir: PathBuf,
}

impl Broker {
    fn start(data_dir: &Path) -> Broker {
        let broker = Broker {
            ports: free_ports(),
            data_dir: data_dir.to_owned(),
        };
        broker.run("start");
        broker
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.ports[0])
    }

    fn run(&self, action: &str) {
        let status = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka.sh"))
            .arg(action)
            .env("KAFKA_PORT", self.ports[0].to_string())
            .env("KAFKA_CONTROLLER_PORT", self.ports[1].to_string())
            .env("KAFKA_DATA_DIR", &self.data_dir)
            .env("KAFKA_HEAP_OPTS", "-Xms128m -Xmx512m")
            .status()
            .expect("running scripts/kafka.sh");
        assert!(status.success(), "scripts/kafka.sh {action} failed");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.run("stop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kafka_outage_under_load_loses_nothing_and_the_service_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("kafka"));
    let registry = Registry::start(
        &broker.bootstrap(),
        "customers.events",
        &dir.path().join("data"),
    );
    let (status, before) =
        common::create(&registry, &json!({"accountId": 81, "lastName": "Before"})).await;
    assert_eq!(status, 201, "{before}");

    let target = Target::new(&registry.base_url);
    // 40 creates 300 ms apart per client: the load lasts over 12 s, well past the broker's stop
    // (at 100 ms apart, a slow stop on a busy machine once let the load finish before it).
    let load = tokio::spawn({
        let target = target.clone();
        async move {
            create_all(
                &target,
                82,
                (4, 40, Duration::from_millis(300)),
                Duration::from_secs(240),
            )
            .await
        }
    });
    // Under load: the broker stops once the clients' first creates are acknowledged (a 201
    // waits for its projection, so a found customer was acknowledged), with more to come.
    let load_started = Instant::now();
    loop {
        let (_, found) = get(&registry, "/api/v01/customers?accountId=82").await;
        if found.as_array().is_some_and(|found| !found.is_empty()) {
            break;
        }
        assert!(
            load_started.elapsed() < Duration::from_secs(60),
            "the load acknowledged nothing in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    broker.run("stop");
    let stopped = Instant::now();

    // Kafka is down: reads answer from the read model, a create fails within the bound.
    let (status, held) = get(&registry, "/api/v01/customers?accountId=81").await;
    assert_eq!(status, 200);
    assert_eq!(held, json!([before]));
    let started = Instant::now();
    let during = http()
        .put(registry.url("/api/v01/customers"))
        .header("idempotency-key", "during-outage")
        .json(&json!({"accountId": 83}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        during.status().as_u16(),
        503,
        "a create while Kafka is down"
    );
    assert!(
        started.elapsed() <= Duration::from_secs(30),
        "answered within the 30 s bound"
    );
    assert!(during.headers().contains_key("retry-after"));
    let problem: Value = during.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Key"),
        "the answer says how to retry: {problem}"
    );

    // The probes: alive throughout, not ready while the brokers cannot be reached.
    let probe = |path: &'static str| {
        let url = registry.url(path);
        async move {
            let response = http().get(url).send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let not_ready = wait_for_status(|| probe("/readyz"), 503).await;
    assert!(
        not_ready["reason"]
            .as_str()
            .unwrap()
            .contains("cannot be reached"),
        "{not_ready}"
    );
    assert_eq!(probe("/healthz").await.0, 200);

    // Down for longer than a create waits for Kafka (10 s): the creates the load had in flight
    // when the broker went fail, and are retried. (A shorter outage could let them all be
    // delivered once the broker is back, and the load would never see it.)
    let outage = Duration::from_secs(12);
    tokio::time::sleep(outage.saturating_sub(stopped.elapsed())).await;
    broker.run("start");
    let restarted = Instant::now();
    // Projection resumes with the broker: an event another producer writes right after the
    // broker's return is found (the times are reported for the README, not asserted on).
    let outside = uuid::Uuid::now_v7().to_string();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let event = json!({
        "eventId": uuid::Uuid::now_v7(), "eventType": "CustomerCreated", "schemaVersion": 1,
        "occurredAt": now,
        "data": {"id": outside, "accountId": 84, "lastName": "Outside", "createdAt": now}
    });
    let payload = event.to_string();
    common::produce_raw(
        &broker.bootstrap(),
        "customers.events",
        0,
        &outside,
        payload.as_bytes(),
    )
    .await;
    let written = restarted.elapsed();
    let outside_path = format!("/api/v01/customers/{outside}");
    let found = loop {
        let (status, body) = get(&registry, &outside_path).await;
        if status == 200 {
            break body;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(60),
            "an event written after the outage was not projected: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(found["lastName"], "Outside");
    let projected = restarted.elapsed();
    let ready = wait_for_status(|| probe("/readyz"), 200).await;
    assert_eq!(ready["ready"], true, "{ready}");
    eprintln!(
        "kafka outage: after the broker's start script returned, an event written at {} ms was \
         projected at {} ms ({} ms after it was written); /readyz 200 at {} ms",
        written.as_millis(),
        projected.as_millis(),
        (projected - written).as_millis(),
        restarted.elapsed().as_millis()
    );
    let outcome = load.await.unwrap();
    assert_eq!(outcome.acknowledged.len(), 4 * 40);
    assert!(
        outcome.retries > 0,
        "the outage happened during the load: {:?}",
        outcome.failure_statuses
    );
    let customers =
        find_eventually(&registry, "/api/v01/customers?accountId=82&limit=1000", 160).await;
    let ids: HashSet<&str> = customers
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), customers.len(), "no customer appears twice");
    for (key, acknowledged) in &outcome.acknowledged {
        assert!(
            customers.contains(acknowledged),
            "{key} survived the outage"
        );
    }

    // The outage was logged as a state, not once per failed poll: a line when it began, repeats
    // with a growing interval, a line when it ended; librdkafka's own lines only at debug level.
    let log = std::fs::read_to_string(&registry.log_path).unwrap();
    let outage_lines = log
        .lines()
        .filter(|line| line.contains("the event log is"))
        .count();
    eprintln!("kafka outage: {outage_lines} outage lines in the log");
    assert!(
        (2..=20).contains(&outage_lines),
        "{outage_lines} outage lines:\n{log}"
    );
    assert!(log.contains("the event log is reachable again"), "{log}");
    assert!(!log.contains("librdkafka"), "{log}");

    // Recovered by itself: a create now goes through on the same process.
    let (status, after) =
        common::create(&registry, &json!({"accountId": 81, "lastName": "After"})).await;
    assert_eq!(status, 201, "{after}");
    let (_, found) = get(&registry, "/api/v01/customers?accountId=81").await;
    assert_eq!(
        found,
        json!([before, after]),
        "found at once after the outage"
    );
    eprintln!(
        "kafka outage: {} creates acknowledged, {} found, 0 duplicates, {} retries, failures by status {:?}",
        outcome.acknowledged.len(),
        customers.len(),
        outcome.retries,
        outcome.failure_statuses
    );
}

/// Polls `probe` until it answers `status` (within 60 s), and returns that answer's body.
async fn wait_for_status<F, Fut>(probe: F, status: u16) -> Value
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = (u16, Value)>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (answered, body) = probe().await;
        if answered == status {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "still {answered} after 60 s, not {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
