//! `/metrics` in the Prometheus text format, read back with an independent parser
//! (`prometheus-parse`), against the real binary and a real broker.

use crate::common::{http, kafka_bootstrap, unique_topic, Registry, PATIENCE};
use prometheus_parse::{Sample, Scrape, Value};
use serde_json::json;
use std::time::{Duration, Instant};

/// Scrapes `url` and parses the answer, failing the test on anything but a 200 in the text format.
async fn scrape(url: &str) -> Vec<Sample> {
    let response = http().get(url).send().await.expect("GET /metrics");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    let lines = text.lines().map(|line| Ok(line.to_owned()));
    Scrape::parse(lines)
        .expect("a valid text exposition")
        .samples
}

/// The value of the sample `name` whose labels include every one of `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|sample| {
            sample.metric == name
                && labels
                    .iter()
                    .all(|(label, wanted)| sample.labels.get(label) == Some(*wanted))
        })
        .map(|sample| match &sample.value {
            Value::Counter(value) | Value::Gauge(value) | Value::Untyped(value) => *value,
            Value::Histogram(buckets) => buckets.last().map_or(0.0, |bucket| bucket.count),
            Value::Summary(_) => panic!("no summaries are exposed"),
        })
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_requests_records_and_lag_in_the_text_format() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("metrics");
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.jsonl");
    let added = std::process::Command::new(env!("CARGO_BIN_EXE_customer-registry"))
        .args([
            "keys",
            "add",
            "--file",
            keys.to_str().unwrap(),
            "--name",
            "ops",
            "--admin",
        ])
        .output()
        .unwrap();
    assert!(added.status.success());
    let key = String::from_utf8(added.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_owned();
    let registry = Registry::start_with(
        &bootstrap,
        &topic,
        &dir.path().join("data"),
        &[
            "--api-keys",
            keys.to_str().unwrap(),
            "--metrics-listen",
            "127.0.0.1:0",
        ],
    );

    for name in ["Ada", "Grace", "Edsger"] {
        let response = http()
            .put(registry.url("/api/v01/customers"))
            .bearer_auth(&key)
            .json(&json!({"accountId": 7, "lastName": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 201);
    }
    let unauthorized = http()
        .get(registry.url("/api/v01/customers"))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status().as_u16(), 401);
    let missing = format!("/api/v01/customers/{}", uuid::Uuid::now_v7());
    let not_found = http()
        .get(registry.url(&missing))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(not_found.status().as_u16(), 404);

    // From loopback, /metrics on the API's address needs no key. The lag comes from the
    // readiness check, which reads the log's end once a second: wait until it has seen the
    // creates' records applied on every partition.
    let lag = |samples: &[Sample]| -> Option<f64> {
        (0..3)
            .map(|partition| {
                let partition = partition.to_string();
                value(
                    samples,
                    "registry_projection_lag_records",
                    &[("partition", &partition)],
                )
            })
            .sum()
    };
    let deadline = Instant::now() + PATIENCE;
    let samples = loop {
        let samples = scrape(&registry.url("/metrics")).await;
        if lag(&samples) == Some(0.0) {
            break samples;
        }
        assert!(
            Instant::now() < deadline,
            "the lag series never showed every partition caught up: {:?}",
            lag(&samples)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let requests = |method, route, status| {
        value(
            &samples,
            "registry_http_requests_total",
            &[("method", method), ("route", route), ("status", status)],
        )
    };
    assert_eq!(requests("PUT", "/api/v01/customers", "201"), Some(3.0));
    assert_eq!(requests("GET", "/api/v01/customers", "401"), Some(1.0));
    assert_eq!(requests("GET", "/api/v01/customers/:id", "404"), Some(1.0));
    let created_latencies = value(
        &samples,
        "registry_http_request_duration_seconds",
        &[("route", "/api/v01/customers")],
    );
    assert_eq!(created_latencies, Some(4.0), "3 creates and the 401 find");
    let records = |outcome| {
        value(
            &samples,
            "registry_projector_records_total",
            &[("outcome", outcome)],
        )
    };
    assert_eq!(records("applied"), Some(3.0));
    assert_eq!(records("rejected"), Some(0.0));
    assert_eq!(value(&samples, "registry_customers", &[]), Some(3.0));
    assert_eq!(
        value(&samples, "registry_creates_in_flight", &[]),
        Some(0.0)
    );
    assert_eq!(
        value(&samples, "registry_producer_queue_records", &[]),
        Some(0.0)
    );
    assert_eq!(value(&samples, "registry_ready", &[]), Some(1.0));
    assert!(value(&samples, "registry_read_model_disk_bytes", &[]).unwrap() > 0.0);

    // The --metrics-listen address serves /metrics to anyone, and nothing else.
    let log = std::fs::read_to_string(&registry.log_path).unwrap();
    let address = log
        .lines()
        .find_map(|line| line.split("metrics (no key needed) on http://").nth(1))
        .and_then(|rest| rest.split('/').next())
        .expect("the metrics address in the log")
        .to_owned();
    let samples = scrape(&format!("http://{address}/metrics")).await;
    assert_eq!(value(&samples, "registry_customers", &[]), Some(3.0));
    let other = http()
        .get(format!("http://{address}/api/v01/customers"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status().as_u16(), 404);
}
