//! Concurrent clients that create customers the way a careful client does: each create carries
//! its own `Idempotency-Key` and is retried, with the same key, until the registry answers 201.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Where the clients send requests; the test moves it when it restarts the registry.
#[derive(Clone)]
pub struct Target(Arc<RwLock<String>>);

impl Target {
    /// Clients aimed at `base_url`.
    pub fn new(base_url: &str) -> Self {
        Self(Arc::new(RwLock::new(base_url.to_owned())))
    }

    /// Aim at a restarted registry.
    pub fn set(&self, base_url: &str) {
        *self.0.write().unwrap() = base_url.to_owned();
    }

    /// Where clients send requests now.
    pub fn get(&self) -> String {
        self.0.read().unwrap().clone()
    }
}

/// What the clients saw.
#[derive(Debug, Default)]
pub struct LoadOutcome {
    /// Idempotency key → the customer the registry acknowledged for it.
    pub acknowledged: BTreeMap<String, Value>,
    /// Attempts that failed and were retried (connection refused, 503, ...).
    pub retries: usize,
    /// Status codes of failed attempts that did answer.
    pub failure_statuses: BTreeMap<u16, usize>,
}

/// Runs `clients` concurrent clients, each creating `per_client` customers in `account` with
/// `pace` between creates, until every create is acknowledged or `patience` runs out (which
/// fails the test).
pub async fn create_all(
    target: &Target,
    account: u32,
    (clients, per_client, pace): (usize, usize, Duration),
    patience: Duration,
) -> LoadOutcome {
    let deadline = Instant::now() + patience;
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let target = target.clone();
            tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(40))
                    .build()
                    .unwrap();
                let mut outcome = LoadOutcome::default();
                for n in 0..per_client {
                    tokio::time::sleep(pace).await;
                    let key = format!("client{client}-create{n}");
                    let body = json!({"accountId": account, "firstName": format!("C{client}"),
                                      "lastName": format!("N{n}")});
                    loop {
                        assert!(Instant::now() < deadline, "{key} was never acknowledged");
                        let url = format!("{}/api/v01/customers", target.get());
                        let sent = http
                            .put(url)
                            .header("idempotency-key", &key)
                            .json(&body)
                            .send()
                            .await;
                        match sent {
                            Ok(response) if response.status().as_u16() == 201 => {
                                let customer: Value = response.json().await.unwrap();
                                outcome.acknowledged.insert(key, customer);
                                break;
                            }
                            Ok(response) => {
                                *outcome
                                    .failure_statuses
                                    .entry(response.status().as_u16())
                                    .or_default() += 1;
                            }
                            Err(_) => {}
                        }
                        outcome.retries += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                outcome
            })
        })
        .collect();
    let mut total = LoadOutcome::default();
    for task in tasks {
        let outcome = task.await.expect("a client task");
        total.acknowledged.extend(outcome.acknowledged);
        total.retries += outcome.retries;
        for (status, count) in outcome.failure_statuses {
            *total.failure_statuses.entry(status).or_default() += count;
        }
    }
    total
}
