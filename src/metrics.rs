//! Prometheus metrics: counted where things happen (requests, projected events, creates in
//! flight), and read at scrape time where a value already lives elsewhere (projection lag,
//! producer queue, read-model size), so nothing is kept twice.

use crate::read_model::ApplyOutcome;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use std::sync::Arc;
use std::time::Duration;

/// Upper bounds of the request-latency buckets, in seconds: 0.5 ms to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The registry's metrics. Cheap to clone; every clone counts into the same series.
#[derive(Clone)]
pub struct Metrics(Arc<Series>);

struct Series {
    registry: Registry,
    /// Each series' name and labels, as `name{label,...}`.
    names: Vec<String>,
    requests: IntCounterVec,
    refused: IntCounterVec,
    latency: HistogramVec,
    events: IntCounterVec,
    creates_in_flight: IntGauge,
    lag: IntGaugeVec,
    ready: IntGauge,
    producer_queue: IntGauge,
    customers: IntGauge,
    disk_bytes: IntGauge,
}

/// What is read at scrape time from the parts that hold it.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Records of each partition the projection has not applied yet, when the log's end is known.
    pub lag: Vec<(i32, i64)>,
    /// Whether `/readyz` answers 200.
    pub ready: bool,
    /// Records handed to the producer and not yet confirmed by Kafka.
    pub producer_queue: u64,
    /// Customers in the read model.
    pub customers: usize,
    /// Bytes the read model takes on disk.
    pub disk_bytes: u64,
}

/// A method as the metrics label it: the methods of HTTP, and `other` for any name a client
/// makes up.
fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "PUT" => "PUT",
        "POST" => "POST",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// Every outcome of a projected record, each a series from the start.
const OUTCOMES: [ApplyOutcome; 6] = [
    ApplyOutcome::Applied,
    ApplyOutcome::Duplicate,
    ApplyOutcome::Conflict,
    ApplyOutcome::Stale,
    ApplyOutcome::Absent,
    ApplyOutcome::Rejected,
];

/// The label of a record's outcome.
fn outcome_label(outcome: ApplyOutcome) -> &'static str {
    match outcome {
        ApplyOutcome::Applied => "applied",
        ApplyOutcome::Duplicate => "duplicate",
        ApplyOutcome::Conflict => "conflict",
        ApplyOutcome::Stale => "stale",
        ApplyOutcome::Absent => "absent",
        ApplyOutcome::Rejected => "rejected",
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every series, registered and at zero.
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "registry_http_requests_total",
                "HTTP requests answered, by route, method and status",
            ),
            &["route", "method", "status"],
        )
        .expect("a valid counter");
        let refused = IntCounterVec::new(
            Opts::new(
                "registry_http_requests_refused_total",
                "Requests the server answered 503 itself: `overloaded` (load shedding, before any \
                 route ran), `deadline` (cut off when not answered in time)",
            ),
            &["reason"],
        )
        .expect("a valid counter");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "registry_http_request_duration_seconds",
                "Time from a request's arrival to its answer, by route",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        )
        .expect("a valid histogram");
        let events = IntCounterVec::new(
            Opts::new(
                "registry_projector_records_total",
                "Records the projector consumed, by outcome: applied, duplicate, conflict, rejected",
            ),
            &["outcome"],
        )
        .expect("a valid counter");
        let creates_in_flight = IntGauge::new(
            "registry_creates_in_flight",
            "Creates between their arrival and their answer",
        )
        .expect("a valid gauge");
        let lag = IntGaugeVec::new(
            Opts::new(
                "registry_projection_lag_records",
                "Records of each partition not yet applied to the read model (checked each second)",
            ),
            &["partition"],
        )
        .expect("a valid gauge");
        let ready = IntGauge::new("registry_ready", "1 when /readyz answers 200, else 0")
            .expect("a valid gauge");
        let producer_queue = IntGauge::new(
            "registry_producer_queue_records",
            "Records handed to the Kafka producer and not yet confirmed",
        )
        .expect("a valid gauge");
        let customers = IntGauge::new("registry_customers", "Customers in the read model")
            .expect("a valid gauge");
        let disk_bytes = IntGauge::new(
            "registry_read_model_disk_bytes",
            "Bytes the read model takes on disk",
        )
        .expect("a valid gauge");
        let mut names = Vec::new();
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(refused.clone()),
            Box::new(latency.clone()),
            Box::new(events.clone()),
            Box::new(creates_in_flight.clone()),
            Box::new(lag.clone()),
            Box::new(ready.clone()),
            Box::new(producer_queue.clone()),
            Box::new(customers.clone()),
            Box::new(disk_bytes.clone()),
        ] {
            names.extend(collector.desc().iter().map(
                |desc| match desc.variable_labels.as_slice() {
                    [] => desc.fq_name.clone(),
                    labels => format!("{}{{{}}}", desc.fq_name, labels.join(",")),
                },
            ));
            registry
                .register(collector)
                .expect("each series is registered once");
        }
        for outcome in OUTCOMES {
            events.with_label_values(&[outcome_label(outcome)]);
        }
        for reason in [Refusal::Overloaded, Refusal::Deadline, Refusal::PerKey] {
            refused.with_label_values(&[reason.label()]);
        }
        Self(Arc::new(Series {
            registry,
            names,
            requests,
            refused,
            latency,
            events,
            creates_in_flight,
            lag,
            ready,
            producer_queue,
            customers,
            disk_bytes,
        }))
    }

    /// Counts an answered request. `route` is the route's template, never the raw path, and the
    /// method one of a fixed set, so that nothing a client sends makes a series of its own.
    pub fn observe_request(
        &self,
        route: &'static str,
        method: &str,
        status: u16,
        elapsed: Duration,
    ) {
        let series = &self.0;
        series
            .requests
            .with_label_values(&[route, method_label(method), &status.to_string()])
            .inc();
        series
            .latency
            .with_label_values(&[route])
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a request the server answered 503 itself (shed, or cut off at its deadline).
    pub fn count_refusal(&self, refusal: Refusal) {
        self.0.refused.with_label_values(&[refusal.label()]).inc();
    }

    /// Counts the records of a batch the projector applied, by outcome.
    pub fn count_records(&self, outcomes: &[ApplyOutcome]) {
        for outcome in OUTCOMES {
            let count = outcomes.iter().filter(|seen| **seen == outcome).count();
            if count > 0 {
                self.0
                    .events
                    .with_label_values(&[outcome_label(outcome)])
                    .inc_by(count as u64);
            }
        }
    }

    /// Counts a create from now until the guard is dropped.
    pub fn create_in_flight(&self) -> InFlight {
        self.0.creates_in_flight.inc();
        InFlight(self.0.creates_in_flight.clone())
    }

    /// Every series, as `name{label,...}` (the name alone for a series without labels), in
    /// the order they were registered.
    pub fn names(&self) -> &[String] {
        &self.0.names
    }

    /// The text exposition of every series, with `snapshot`'s values set first.
    pub fn render(&self, snapshot: &Snapshot) -> String {
        let series = &self.0;
        series.lag.reset();
        for (partition, lag) in &snapshot.lag {
            series
                .lag
                .with_label_values(&[&partition.to_string()])
                .set(*lag);
        }
        series.ready.set(i64::from(snapshot.ready));
        series
            .producer_queue
            .set(i64::try_from(snapshot.producer_queue).unwrap_or(i64::MAX));
        series
            .customers
            .set(i64::try_from(snapshot.customers).unwrap_or(i64::MAX));
        series
            .disk_bytes
            .set(i64::try_from(snapshot.disk_bytes).unwrap_or(i64::MAX));
        let mut text = Vec::new();
        TextEncoder::new()
            .encode(&series.registry.gather(), &mut text)
            .expect("the text encoder writes to memory");
        String::from_utf8(text).expect("the text exposition is UTF-8")
    }
}

/// Why the server answered a request 503 itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// As many requests as may run at once were running.
    Overloaded,
    /// The request was not answered within its deadline.
    Deadline,
    /// As many requests as one API key may run at once were running.
    PerKey,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::Overloaded => "overloaded",
            Refusal::Deadline => "deadline",
            Refusal::PerKey => "per_key",
        }
    }
}

/// A create counted in [`Metrics`]'s in-flight gauge until dropped.
pub struct InFlight(IntGauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The media type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_is_named_with_its_labels() {
        let names = Metrics::new().names().to_vec();
        assert_eq!(names.len(), 10, "{names:?}");
        assert!(names.contains(&"registry_http_requests_refused_total{reason}".to_owned()));
        assert!(names.contains(&"registry_ready".to_owned()));
    }

    #[test]
    fn every_series_is_exposed_from_the_start_and_counts_what_it_is_told() {
        let metrics = Metrics::new();
        metrics.observe_request("customers", "GET", 200, Duration::from_millis(3));
        metrics.observe_request("other", "MADEUP", 404, Duration::from_millis(1));
        metrics.count_records(&[ApplyOutcome::Applied; 5]);
        let guard = metrics.create_in_flight();
        let text = metrics.render(&Snapshot {
            lag: vec![(0, 2), (1, 0)],
            ready: true,
            producer_queue: 1,
            customers: 5,
            disk_bytes: 4096,
        });
        for line in [
            r#"registry_http_requests_total{method="GET",route="customers",status="200"} 1"#,
            r#"registry_http_requests_total{method="other",route="other",status="404"} 1"#,
            r#"registry_http_request_duration_seconds_bucket{route="customers",le="0.005"} 1"#,
            r#"registry_projector_records_total{outcome="applied"} 5"#,
            r#"registry_projector_records_total{outcome="rejected"} 0"#,
            "registry_creates_in_flight 1",
            r#"registry_http_requests_refused_total{reason="overloaded"} 0"#,
            r#"registry_projection_lag_records{partition="0"} 2"#,
            "registry_ready 1",
            "registry_producer_queue_records 1",
            "registry_customers 5",
            "registry_read_model_disk_bytes 4096",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
        drop(guard);
        let text = metrics.render(&Snapshot::default());
        assert!(text.lines().any(|l| l == "registry_creates_in_flight 0"));
        assert!(
            !text.contains("registry_projection_lag_records{"),
            "partitions no longer known are dropped"
        );
    }
}
