//! Load at a constant arrival rate, as wrk2 applies it: the schedule fixes when each request is
//! meant to start, and its latency runs from then, so an answer that stalls delays no later
//! measurement (no coordinated omission). Percentiles come from an HDR histogram.

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde_json::{json, Value};
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
    /// in its latency (at most the registry's bound per API key, or the excess would be
    /// answered 429 at once and drop out of the percentiles).
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
    let measured = Arc::new(Mutex::new(Measured {
        latencies: Histogram::<u64>::new_with_bounds(1, LONGEST_US, 3)
            .expect("valid histogram bounds"),
        errors: 0,
        last_answer: measured_from,
    }));
    let runtime = tokio::runtime::Handle::current();
    // The pacing runs on a thread of its own that sleeps with the kernel's timers (tens of
    // microseconds late): tokio's timer wheel fires at millisecond ticks, and the time a request
    // waited for its tick would count as the service's. Each request holds its permit until its
    // latency is recorded, and no task is kept once done (a run sends hundreds of thousands).
    let (pacer_in_flight, pacer_measured) = (Arc::clone(&in_flight), Arc::clone(&measured));
    let pacer = std::thread::spawn(move || {
        let mut sent = 0u32;
        loop {
            let meant = intended(start, interval, sent);
            if meant >= until {
                return sent;
            }
            std::thread::sleep(meant.saturating_duration_since(Instant::now()));
            let permit = runtime
                .block_on(Arc::clone(&pacer_in_flight).acquire_owned())
                .expect("the semaphore is never closed");
            let request = (requests.build)(sent);
            let expected = requests.expected;
            let measured = Arc::clone(&pacer_measured);
            runtime.spawn(async move {
                let answered = match request.send().await {
                    Ok(response) if expected(response.status().as_u16()) => {
                        response.bytes().await.is_ok()
                    }
                    _ => false,
                };
                if meant >= measured_from {
                    measured.lock().record(meant, answered);
                }
                drop(permit);
            });
            sent += 1;
        }
    });
    let sent = tokio::task::spawn_blocking(move || pacer.join().expect("the pacer"))
        .await
        .expect("the pacer's join");
    // Every permit back: every request answered (or failed) and recorded.
    let permits = u32::try_from(schedule.max_in_flight).expect("a few thousand in flight at most");
    let _all = in_flight
        .acquire_many(permits)
        .await
        .expect("the semaphore is never closed");
    let measured = measured.lock();
    let latencies = &measured.latencies;
    let millis = |quantile: f64| latencies.value_at_quantile(quantile) as f64 / 1000.0;
    // Answers over the time they took to come: below the rate asked when the service fell
    // behind, since every request meant within the run is waited for.
    let answering = measured
        .last_answer
        .duration_since(measured_from)
        .max(schedule.duration);
    json!({
        "rate": schedule.rate,
        "sent": sent,
        "count": latencies.len(),
        "errors": measured.errors,
        "seconds": answering.as_secs_f64(),
        "perSecond": latencies.len() as f64 / answering.as_secs_f64(),
        "p50Ms": millis(0.50),
        "p99Ms": millis(0.99),
        "p999Ms": millis(0.999),
        "maxMs": latencies.max() as f64 / 1000.0,
    })
}

/// What the measured requests of a run came to.
struct Measured {
    /// Microseconds from each answered request's intended start to its answer.
    latencies: Histogram<u64>,
    /// Requests answered with another status, or not at all.
    errors: u64,
    /// When the last measured request ended.
    last_answer: Instant,
}

impl Measured {
    /// Records the request meant to start at `meant`, ending now.
    fn record(&mut self, meant: Instant, answered: bool) {
        let now = Instant::now();
        self.last_answer = self.last_answer.max(now);
        if answered {
            let micros = u64::try_from((now - meant).as_micros()).unwrap_or(LONGEST_US);
            self.latencies
                .saturating_record(micros.clamp(1, LONGEST_US));
        } else {
            self.errors += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
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
