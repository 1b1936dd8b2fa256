//! Load at a constant arrival rate, as wrk2 applies it: the schedule fixes when each request is
//! meant to start, and its latency runs from then, so an answer that stalls delays no later
//! measurement (no coordinated omission). Percentiles come from an HDR histogram.

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// The longest latency recorded, in microseconds; longer ones count as this.
const LONGEST_US: u64 = 60_000_000;

/// What an open-loop run sends and how fast.
pub struct Schedule {
    /// Requests a second.
    pub rate: f64,
    /// Sent, and not measured, before the measured seconds start.
    pub warmup: Duration,
    /// Measured.
    pub duration: Duration,
    /// Requests in flight at most: past it a request waits for one to end, its wait counted
    /// in its latency.
    pub max_in_flight: usize,
}

/// The moment the `n`th request is meant to start, `interval` apart from `start`.
fn intended(start: Instant, interval: Duration, n: u32) -> Instant {
    start + interval * n
}

/// The `n`th request of a run, and whether an answer's status is the one it expects.
pub struct Requests {
    /// Builds the `n`th request.
    pub build: Box<dyn Fn(u32) -> reqwest::RequestBuilder + Send + Sync>,
    /// Whether a status answers a request as it should.
    pub expected: fn(u16) -> bool,
}

/// Sends `requests` at `schedule`'s rate; the report gives the rate asked and achieved, errors
/// (answers of another status, or none), and p50 / p99 / p99.9 / max from each request's
/// intended start.
pub async fn run(requests: Requests, schedule: Schedule) -> Value {
    let interval = Duration::from_secs_f64(1.0 / schedule.rate);
    let start = Instant::now();
    let measured_from = start + schedule.warmup;
    let until = measured_from + schedule.duration;
    let in_flight = Arc::new(Semaphore::new(schedule.max_in_flight));
    let latencies = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, LONGEST_US, 3).expect("valid histogram bounds"),
    ));
    let errors = Arc::new(AtomicU64::new(0));
    let runtime = tokio::runtime::Handle::current();
    // The pacing runs on a thread of its own that sleeps with the kernel's timers (tens of
    // microseconds late): tokio's timer wheel fires at millisecond ticks, and the time a request
    // waited for its tick would count as the service's.
    let recorded = (Arc::clone(&latencies), Arc::clone(&errors));
    let pacer = std::thread::spawn(move || {
        let (latencies, errors) = recorded;
        let mut sent = Vec::new();
        for n in 0.. {
            let meant = intended(start, interval, n);
            if meant >= until {
                break;
            }
            std::thread::sleep(meant.saturating_duration_since(Instant::now()));
            let permit = runtime
                .block_on(Arc::clone(&in_flight).acquire_owned())
                .expect("the semaphore is never closed");
            let request = (requests.build)(n);
            let expected = requests.expected;
            let (latencies, errors) = (Arc::clone(&latencies), Arc::clone(&errors));
            sent.push(runtime.spawn(async move {
                let answered = match request.send().await {
                    Ok(response) if expected(response.status().as_u16()) => {
                        response.bytes().await.is_ok()
                    }
                    _ => false,
                };
                drop(permit);
                if meant < measured_from {
                    return;
                }
                if answered {
                    let micros = u64::try_from(meant.elapsed().as_micros()).unwrap_or(LONGEST_US);
                    latencies
                        .lock()
                        .saturating_record(micros.clamp(1, LONGEST_US));
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        sent
    });
    let sent = tokio::task::spawn_blocking(move || pacer.join().expect("the pacer"))
        .await
        .expect("the pacer's join");
    for request in sent {
        request.await.expect("a request task");
    }
    let latencies = latencies.lock();
    let millis = |quantile: f64| latencies.value_at_quantile(quantile) as f64 / 1000.0;
    json!({
        "rate": schedule.rate,
        "count": latencies.len(),
        "errors": errors.load(Ordering::Relaxed),
        "seconds": schedule.duration.as_secs_f64(),
        "perSecond": latencies.len() as f64 / schedule.duration.as_secs_f64(),
        "p50Ms": millis(0.50),
        "p99Ms": millis(0.99),
        "p999Ms": millis(0.999),
        "maxMs": latencies.max() as f64 / 1000.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use warp::Filter;

    #[test]
    fn the_schedule_does_not_drift_with_the_requests_sent() {
        let start = Instant::now();
        let interval = Duration::from_secs_f64(1.0 / 3.0);
        assert_eq!(intended(start, interval, 0), start);
        assert_eq!(
            intended(start, interval, 3_000) - start,
            interval * 3_000,
            "the 3,000th request is meant 1,000 s on, whatever the ones before it did"
        );
    }

    #[tokio::test]
    async fn requests_held_up_by_a_stalled_answer_count_their_wait() {
        // Given a server whose first answer takes 600 ms and every other none, and one request
        // in flight at most
        let stalled = Arc::new(AtomicBool::new(false));
        let routes = warp::any().then(move || {
            let first = !stalled.swap(true, Ordering::SeqCst);
            async move {
                if first {
                    tokio::time::sleep(Duration::from_millis(600)).await;
                }
                "ok"
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(warp::serve(routes).incoming(listener).run());
        let url = format!("http://{address}/");
        let client = reqwest::Client::new();

        // When 100 requests are meant to start 10 ms apart
        let requests = Requests {
            build: Box::new(move |_| client.get(&url)),
            expected: |status| status == 200,
        };
        let schedule = Schedule {
            rate: 100.0,
            warmup: Duration::ZERO,
            duration: Duration::from_secs(1),
            max_in_flight: 1,
        };
        let report = run(requests, schedule).await;

        // Then the 51 meant in the first 500 ms waited at least until 600 ms, at least 100 ms
        // each from their intended start: the median shows it (a closed loop would have timed
        // one slow request and 99 quick ones)
        assert_eq!(report["count"], 100, "{report}");
        assert!(report["p50Ms"].as_f64().unwrap() >= 100.0, "{report}");
    }
}
