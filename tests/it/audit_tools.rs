//! The replay tools against the real broker: rebuild, audit, export as of a moment, a customer's
//! history over HTTP, and tail.

use crate::common;
use crate::common::{
    create_all, find_eventually, get, http, kafka_bootstrap, text, tool, unique_topic, Registry,
    PATIENCE,
};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

async fn create_batch(registry: &Registry, account: u32, names: &[&str]) -> Vec<Value> {
    let bodies: Vec<Value> = names
        .iter()
        .map(|name| json!({"accountId": account, "lastName": name}))
        .collect();
    create_all(registry, &bodies).await
}

/// The one record the log holds for `customer` (its creation), read back through the history
/// endpoint: partition, offset, Kafka timestamp, key and event. The customer must be projected.
async fn published_record(registry: &Registry, customer: &Value) -> Value {
    let id = customer["id"].as_str().expect("a customer id");
    let (status, history) = get(registry, &format!("/api/v01/customers/{id}/events")).await;
    assert_eq!(status, 200, "the history of {id}: {history}");
    let records = history.as_array().expect("a history is an array");
    assert_eq!(records.len(), 1, "{id} has one event: {history}");
    assert_eq!(
        records[0]["event"]["data"],
        common::as_created(customer),
        "{history}"
    );
    records[0].clone()
}

/// When Kafka says `record` was written (the timestamp `export --as-of` compares with).
fn written_at(record: &Value) -> DateTime<Utc> {
    record["timestamp"]
        .as_str()
        .and_then(|timestamp| timestamp.parse().ok())
        .unwrap_or_else(|| panic!("a record with an RFC 3339 timestamp: {record}"))
}

/// Waits until the clock reads a later millisecond than `moment` (Kafka timestamps are whole
/// milliseconds), so that what is written next gets a later timestamp.
async fn wait_for_the_clock_to_pass(moment: DateTime<Utc>) {
    let deadline = Instant::now() + PATIENCE;
    while Utc::now().timestamp_millis() <= moment.timestamp_millis() {
        assert!(Instant::now() < deadline, "the clock never passed {moment}");
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn rebuild_swaps_in_a_read_model_with_the_same_answers_and_audit_finds_tampering() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("rebuild-audit");
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let queries = [
        "/api/v01/customers",
        "/api/v01/customers?accountId=91&lastName=b",
        "/api/v01/customers?offset=1&limit=2",
    ];

    let registry = Registry::start(&bootstrap, &topic, &data_dir);
    create_batch(&registry, 91, &["Alpha", "Bravo", "Beta"]).await;
    create_batch(&registry, 92, &["Gamma"]).await;
    let mut before = Vec::new();
    for query in queries {
        before.push(get(&registry, query).await);
    }
    let refused = tool(&["rebuild"], &bootstrap, &topic, &data_dir);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(
        text(&refused).contains("stop it first"),
        "{}",
        text(&refused)
    );
    assert!(registry.stop());

    let healthy = tool(&["audit"], &bootstrap, &topic, &data_dir);
    assert_eq!(healthy.status.code(), Some(0), "{}", text(&healthy));

    let rebuilt = tool(&["rebuild", "--json"], &bootstrap, &topic, &data_dir);
    assert_eq!(rebuilt.status.code(), Some(0), "{}", text(&rebuilt));
    let report: Value = serde_json::from_slice(&rebuilt.stdout).expect("a JSON report");
    assert_eq!(
        (report["eventsRead"].as_u64(), report["customers"].as_u64()),
        (Some(4), Some(4))
    );
    let entries: Vec<String> = std::fs::read_dir(&data_dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        entries,
        vec!["read-model"],
        "nothing left beside the live read model"
    );

    let registry = Registry::start(&bootstrap, &topic, &data_dir);
    for (query, answer) in queries.iter().zip(&before) {
        assert_eq!(
            &get(&registry, query).await,
            answer,
            "{query} after rebuild"
        );
    }
    let (status, all) = get(&registry, "/api/v01/customers").await;
    assert_eq!(status, 200, "{all}");
    let tampered_id = all[1]["id"].as_str().unwrap().to_owned();
    assert!(registry.stop());

    // Tamper with the read model behind the service's back, as a disk fault or an operator might;
    // in this process, so with no failpoint set.
    {
        let _no_failpoints = common::failpoints();
        let (model, mut writer) =
            customer_registry::read_model::open(&data_dir.join("read-model")).unwrap();
        let id = tampered_id.parse().unwrap();
        let held = model.get(id).unwrap().expect("the customer is held");
        // An update the log never carried, applied straight to the read model.
        use customer_registry::domain::{CustomerUpdated, FieldChange, RegistryEvent, TextField};
        use customer_registry::read_model::{ApplyOutcome, LogRecord, RecordChange};
        let forged = RegistryEvent::CustomerUpdated(CustomerUpdated {
            event_id: uuid::Uuid::now_v7(),
            occurred_at: held.updated_at,
            audit: Default::default(),
            customer_id: id,
            account_id: held.details.account_id,
            version: held.version + 1,
            changes: vec![FieldChange {
                field: TextField::LastName,
                value: Some("Tampered".into()),
            }],
        });
        let outcomes = writer
            .apply_batch(&[LogRecord {
                partition: 0,
                offset: 0,
                change: RecordChange::Event(Box::new(forged)),
            }])
            .unwrap();
        assert_eq!(outcomes, vec![ApplyOutcome::Applied]);
        writer.flush_all().unwrap();
    }
    let drift = tool(&["audit"], &bootstrap, &topic, &data_dir);
    assert_eq!(drift.status.code(), Some(1), "{}", text(&drift));
    assert!(
        text(&drift).contains(&format!("mismatch: customer {tampered_id}")),
        "{}",
        text(&drift)
    );
    let drift_json = tool(&["audit", "--json"], &bootstrap, &topic, &data_dir);
    let report: Value = serde_json::from_slice(&drift_json.stdout).expect("a JSON report");
    assert_eq!(report["mismatched"][0]["customerId"], tampered_id.as_str());
    assert_ne!(
        report["mismatched"][0]["logDigest"],
        report["mismatched"][0]["readModelDigest"]
    );

    // A rebuild repairs it: the log is the truth.
    let repaired = tool(&["rebuild"], &bootstrap, &topic, &data_dir);
    assert_eq!(repaired.status.code(), Some(0), "{}", text(&repaired));
    let healthy = tool(&["audit"], &bootstrap, &topic, &data_dir);
    assert_eq!(healthy.status.code(), Some(0), "{}", text(&healthy));
    let registry = Registry::start(&bootstrap, &topic, &data_dir);
    assert_eq!(get(&registry, "/api/v01/customers").await, before[0]);
}

#[tokio::test]
async fn export_as_of_a_moment_between_two_batches_holds_the_first_batch_only() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("export");
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(&bootstrap, &topic, &dir.path().join("data"));
    let first = create_batch(&registry, 93, &["One", "Two"]).await;
    find_eventually(&registry, "/api/v01/customers?accountId=93", first.len()).await;
    let mut first_written = Vec::new();
    for customer in &first {
        first_written.push(written_at(&published_record(&registry, customer).await));
    }
    let first_written = first_written.into_iter().max().unwrap();
    // The bound is compared with Kafka's millisecond timestamps: the second batch must be written
    // in a later millisecond than the first.
    wait_for_the_clock_to_pass(first_written).await;
    let second = create_batch(&registry, 93, &["Three"]).await;
    find_eventually(
        &registry,
        "/api/v01/customers?accountId=93",
        first.len() + second.len(),
    )
    .await;
    let second_written = written_at(&published_record(&registry, &second[0]).await);
    assert!(
        first_written < second_written,
        "the second batch was written ({second_written}) after the first ({first_written})"
    );
    // Strictly between the last record of the first batch and the record of the second.
    let moment = first_written + (second_written - first_written) / 2;
    assert!(first_written < moment && moment < second_written);
    let moment = moment.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);

    let export_dir = dir.path().join("export-data");
    let as_of = tool(
        &["export", "--as-of", &moment],
        &bootstrap,
        &topic,
        &export_dir,
    );
    assert_eq!(as_of.status.code(), Some(0), "{}", text(&as_of));
    let lines: Vec<Value> = String::from_utf8_lossy(&as_of.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(
        lines, first,
        "as of {moment}: the first batch (written by {first_written}), not the second (written \
         {second_written})"
    );

    let now = tool(
        &["export", "--format", "csv"],
        &bootstrap,
        &topic,
        &export_dir,
    );
    let csv = String::from_utf8_lossy(&now.stdout).into_owned();
    assert_eq!(csv.lines().count(), 1 + first.len() + second.len(), "{csv}");
    assert!(
        csv.starts_with("id,code,accountId,firstName,lastName"),
        "{csv}"
    );
    assert!(csv.contains("Three"));
}

#[tokio::test]
async fn a_customers_history_is_read_back_from_the_log() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("history");
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(&bootstrap, &topic, &dir.path().join("data"));
    let customer = create_batch(&registry, 94, &["Historic"]).await.remove(0);
    let id = customer["id"].as_str().unwrap();

    let (status, history) = get(&registry, &format!("/api/v01/customers/{id}/events")).await;
    assert_eq!(status, 200, "{history}");
    let records = history.as_array().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["event"]["data"], common::as_created(&customer));
    assert_eq!(records[0]["event"]["eventType"], "CustomerCreated");
    assert_eq!(records[0]["key"], id);
    assert!(records[0]["partition"].is_i64() && records[0]["offset"].is_i64());
    assert!(records[0]["timestamp"].is_string());

    let unknown = uuid::Uuid::now_v7();
    let (status, _) = get(&registry, &format!("/api/v01/customers/{unknown}/events")).await;
    assert_eq!(status, 404);

    // A burst of 40: each is answered (the record, or 503 busy with Retry-After: a few run at
    // once on readers of their own), and creates keep being projected meanwhile.
    let path = format!("/api/v01/customers/{id}/events");
    let burst = (0..40).map(|_| {
        let url = registry.url(&path);
        async move {
            let response = http().get(url).send().await.unwrap();
            let status = response.status().as_u16();
            let retry_after = response.headers().contains_key("retry-after");
            (status, retry_after, response.json::<Value>().await.unwrap())
        }
    });
    let during = create_batch(&registry, 95, &["During"]);
    let (answers, created) = tokio::join!(futures::future::join_all(burst), during);
    assert_eq!(created.len(), 1);
    let mut served = 0;
    for (status, retry_after, body) in answers {
        match status {
            200 => {
                served += 1;
                assert_eq!(body.as_array().unwrap().len(), 1, "{body}");
            }
            503 => {
                assert!(retry_after, "{body}");
                assert_eq!(body["type"], "/problems/history-busy", "{body}");
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert!(served >= 1, "at least one of the burst is served");
    eprintln!("history burst: {served} of 40 served, the rest 503 busy");
}

/// Reads `stdout` line by line on a thread of its own and passes each line on; the channel
/// closes when the stream ends (the process exited).
fn lines_of(stdout: ChildStdout) -> mpsc::UnboundedReceiver<String> {
    let (lines, received) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    received
}

/// The next line `lines` passes on, parsed as JSON; `None` when the stream ended. Fails the
/// test when none comes by `deadline`.
async fn next_json_line(
    lines: &mut mpsc::UnboundedReceiver<String>,
    deadline: Instant,
    waiting_for: &str,
) -> Option<Value> {
    let line = tokio::time::timeout_at(deadline.into(), lines.recv())
        .await
        .unwrap_or_else(|_| panic!("no line came within {PATIENCE:?}: {waiting_for}"))?;
    Some(
        serde_json::from_str(&line)
            .unwrap_or_else(|error| panic!("a JSON line, not {line:?}: {error}")),
    )
}

/// A read model that lags the log (its registry stopped while another replica went on writing)
/// is not drift: `audit` replays the log up to where the read model stopped, and compares that.
#[tokio::test]
async fn audit_of_a_read_model_behind_the_log_compares_up_to_where_it_stopped() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("audit-lag");
    let dir = tempfile::tempdir().unwrap();
    let (behind, ahead) = (dir.path().join("behind"), dir.path().join("ahead"));
    let registry = Registry::start(&bootstrap, &topic, &behind);
    let first = create_batch(&registry, 93, &["Before1", "Before2"]).await;
    find_eventually(&registry, "/api/v01/customers", 2).await;
    assert!(registry.stop(), "a clean stop");

    let other = Registry::start(&bootstrap, &topic, &ahead);
    create_batch(&other, 93, &["After"]).await;
    let id = first[0]["id"].as_str().unwrap();
    let updated = http()
        .post(other.url(&format!("/api/v01/customers/{id}")))
        .json(&json!({"lastName": "Changed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(updated.status().as_u16(), 200);
    assert!(other.stop(), "a clean stop");

    let audit = tool(&["audit", "--json"], &bootstrap, &topic, &behind);
    let report: Value = serde_json::from_slice(&audit.stdout)
        .unwrap_or_else(|error| panic!("{error}: {}", String::from_utf8_lossy(&audit.stderr)));
    assert_eq!(audit.status.code(), Some(0), "{report}");
    assert_eq!(report["eventsRead"], 2, "{report}");
    assert_eq!(report["customersInReadModel"], 2, "{report}");
    assert_ne!(report["logEnd"], report["readModelPosition"], "{report}");
}

/// Every customer of the tail test, on one page.
const ALL: &str = "/api/v01/customers?limit=1000";

#[tokio::test]
async fn tail_prints_the_events_created_after_it_started() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("tail");
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(&bootstrap, &topic, &dir.path().join("data"));
    let earlier = create_batch(&registry, 96, &["Earlier"]).await.remove(0);

    let err_path = dir.path().join("tail.err");
    let mut tail = Command::new(env!("CARGO_BIN_EXE_customer-registry"))
        .env("REGISTRY_KEK_FILE", crate::common::kek_file())
        .args([
            "events",
            "tail",
            "--kafka-bootstrap",
            &bootstrap,
            "--topic",
            &topic,
            "--account",
            "96",
        ])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut printed = lines_of(tail.stdout.take().expect("the tail's stdout"));
    let deadline = Instant::now() + PATIENCE;
    while !std::fs::read_to_string(&err_path)
        .unwrap_or_default()
        .contains("following")
    {
        assert!(Instant::now() < deadline, "tail did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let other = create_batch(&registry, 95, &["Other account"])
        .await
        .remove(0);
    let mut wanted = create_batch(&registry, 96, &["Later1", "Later2"]).await;

    // What the tail must leave out: a record from before it started, one of another account.
    find_eventually(&registry, ALL, 2 + wanted.len()).await;
    let left_out = [
        published_record(&registry, &earlier).await,
        published_record(&registry, &other).await,
    ];
    let mut expected = Vec::new();
    for customer in &wanted {
        expected.push(published_record(&registry, customer).await);
    }
    // Records keep their order within a partition only. So that the tail's printing every wanted
    // record proves it has read past those it must leave out, account 96 gets more creates until
    // each partition holding one of those also holds a wanted record written after it. Ids are
    // random: one create at a time would miss one of 12 partitions 60 times in a row about once
    // in 150 runs, so they come a dozen at a time, up to 600 (a miss once in ~10^22 runs).
    while let Some(uncovered) = left_out.iter().find(|skipped| {
        !expected
            .iter()
            .any(|record| record["partition"] == skipped["partition"])
    }) {
        assert!(
            wanted.len() < 600,
            "{} creates of account 96 and none landed on partition {}",
            wanted.len(),
            uncovered["partition"]
        );
        let names: Vec<String> = (0..12)
            .map(|n| format!("Later{}", wanted.len() + n + 1))
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let more = create_batch(&registry, 96, &names).await;
        find_eventually(&registry, ALL, 2 + wanted.len() + more.len()).await;
        for customer in more {
            expected.push(published_record(&registry, &customer).await);
            wanted.push(customer);
        }
    }

    let deadline = Instant::now() + PATIENCE;
    let mut lines: Vec<Value> = Vec::new();
    while lines.len() < expected.len() {
        let waiting_for = format!(
            "tail printed {} of the {} records of account 96 written after it started: {lines:?}",
            lines.len(),
            expected.len()
        );
        let line = next_json_line(&mut printed, deadline, &waiting_for)
            .await
            .unwrap_or_else(|| panic!("tail exited: {waiting_for}"));
        lines.push(line);
    }
    let _ = tail.kill();
    let _ = tail.wait();
    // Whatever else it printed before it was killed is part of its output too.
    let deadline = Instant::now() + PATIENCE;
    while let Some(line) = next_json_line(&mut printed, deadline, "the end of tail's output").await
    {
        lines.push(line);
    }

    for skipped in &left_out {
        assert!(
            lines.iter().all(|line| line["key"] != skipped["key"]),
            "tail leaves out {skipped}: {lines:#?}"
        );
    }
    // Records arrive in order within a partition only; they may sit on different ones.
    let by_id = |customer: &&Value| customer["id"].as_str().unwrap_or_default().to_owned();
    let mut data: Vec<&Value> = lines.iter().map(|line| &line["event"]["data"]).collect();
    data.sort_by_key(by_id);
    let wanted: Vec<Value> = wanted.iter().map(common::as_created).collect();
    let mut wanted: Vec<&Value> = wanted.iter().collect();
    wanted.sort_by_key(by_id);
    assert_eq!(data, wanted, "only account 96, only what came after");
    for line in &lines {
        assert!(
            line["partition"].is_i64() && line["offset"].is_i64() && line["timestamp"].is_string(),
            "{line}"
        );
    }
    let place = |record: &Value| (record["partition"].as_i64(), record["offset"].as_i64());
    lines.sort_by_key(place);
    expected.sort_by_key(place);
    assert_eq!(
        lines, expected,
        "each record exactly as the log holds it (partition, offset, timestamp, key, event)"
    );
    find_eventually(&registry, ALL, 2 + wanted.len()).await;
}

#[tokio::test]
async fn tools_refuse_what_they_cannot_do_with_exit_code_2() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("tool-errors");
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let registry = Registry::start(&bootstrap, &topic, &data_dir);
    create_batch(&registry, 97, &["Only"]).await;
    assert!(registry.stop());

    let empty = tool(
        &["audit"],
        &bootstrap,
        &topic,
        &dir.path().join("nothing-here"),
    );
    assert_eq!(empty.status.code(), Some(2), "{}", text(&empty));
    let typo = format!("{topic}-typo");
    for command in ["rebuild", "audit"] {
        let refused = tool(&[command], &bootstrap, &typo, &data_dir);
        assert_eq!(
            refused.status.code(),
            Some(2),
            "{command}: {}",
            text(&refused)
        );
        assert!(
            text(&refused).contains("does not exist"),
            "{}",
            text(&refused)
        );
    }
    let registry = Registry::start(&bootstrap, &topic, &data_dir);
    let (status, customers) = get(&registry, "/api/v01/customers").await;
    assert_eq!(status, 200, "{customers}");
    assert_eq!(
        customers.as_array().unwrap().len(),
        1,
        "the read model survived the typo"
    );
}

/// POSTs `patch` to customer `id`, asserting 200; returns the customer.
async fn update(registry: &Registry, id: &str, patch: Value) -> Value {
    let response = http()
        .post(registry.url(&format!("/api/v01/customers/{id}")))
        .json(&patch)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    response.json().await.unwrap()
}

/// DELETEs customer `id`, asserting 204.
async fn delete(registry: &Registry, id: &str) {
    let response = http()
        .delete(registry.url(&format!("/api/v01/customers/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 204);
}

/// The Kafka timestamp of the `at`th record of customer `id`'s history.
async fn history_written_at(registry: &Registry, id: &str, at: usize) -> DateTime<Utc> {
    let (status, history) = get(registry, &format!("/api/v01/customers/{id}/events")).await;
    assert_eq!(status, 200, "{history}");
    written_at(&history[at])
}

#[tokio::test]
async fn export_as_of_a_moment_between_an_update_and_a_delete_holds_the_updated_customer() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("export-lifecycle");
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(&bootstrap, &topic, &dir.path().join("data"));
    let created = create_batch(&registry, 95, &["Before"]).await.remove(0);
    let id = created["id"].as_str().unwrap().to_owned();
    let updated = update(&registry, &id, json!({"lastName": "After", "city": "Lund"})).await;
    let updated_at = history_written_at(&registry, &id, 1).await;
    wait_for_the_clock_to_pass(updated_at).await;
    delete(&registry, &id).await;
    let deleted_at = history_written_at(&registry, &id, 2).await;
    assert!(updated_at < deleted_at);
    let moment = updated_at + (deleted_at - updated_at) / 2;
    let moment = moment.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);

    let export_dir = dir.path().join("export-data");
    let as_of = tool(
        &["export", "--as-of", &moment],
        &bootstrap,
        &topic,
        &export_dir,
    );
    assert_eq!(as_of.status.code(), Some(0), "{}", text(&as_of));
    let lines: Vec<Value> = String::from_utf8_lossy(&as_of.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(
        lines,
        vec![updated.clone()],
        "as of {moment}: the customer as updated"
    );
    assert_eq!(lines[0]["version"], 2);

    let now = tool(&["export"], &bootstrap, &topic, &export_dir);
    assert_eq!(now.status.code(), Some(0), "{}", text(&now));
    assert_eq!(
        String::from_utf8_lossy(&now.stdout),
        "",
        "deleted customers are absent"
    );
    let csv = tool(
        &["export", "--as-of", &moment, "--format", "csv"],
        &bootstrap,
        &topic,
        &export_dir,
    );
    let csv = String::from_utf8_lossy(&csv.stdout).into_owned();
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .ends_with(",createdAt,updatedAt,version"),
        "{csv}"
    );
    assert!(csv.lines().nth(1).unwrap().ends_with(",2"), "{csv}");
}

#[tokio::test]
async fn a_rebuild_equals_the_live_read_model_after_a_random_mix_of_changes() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("rebuild-mix");
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let registry = Registry::start(&bootstrap, &topic, &data_dir);
    // The mix differs per step; the run is repeatable.
    let mut next = common::generator(0x2545_f491_4f6c_dd1d);
    let names = ["Ada", "Bo", "Cy", "Di", "Ed"];
    let cities = ["Oslo", "Lyon", "Graz", "Kiel"];
    let mut live: Vec<String> = Vec::new();
    let (mut creates, mut updates, mut deletes) = (0, 0, 0);
    for step in 0..120 {
        let choice = if live.len() < 3 { 0 } else { next(10) };
        match choice {
            0..=3 => {
                let body = json!({"accountId": 96 + next(3), "lastName": names[next(5) as usize],
                                  "city": cities[next(4) as usize]});
                live.push(
                    create_all(&registry, &[body]).await.remove(0)["id"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                );
                creates += 1;
            }
            4..=7 => {
                let id = live[next(live.len() as u64) as usize].clone();
                let patch = match next(3) {
                    0 => json!({"city": null}),
                    1 => {
                        json!({"lastName": names[next(5) as usize], "street": format!("{step} Rue")})
                    }
                    _ => json!({"city": cities[next(4) as usize]}),
                };
                update(&registry, &id, patch).await;
                updates += 1;
            }
            _ => {
                let id = live.swap_remove(next(live.len() as u64) as usize);
                delete(&registry, &id).await;
                deletes += 1;
            }
        }
    }
    assert!(
        updates > 20 && deletes > 5,
        "{creates} creates, {updates} updates, {deletes} deletes"
    );
    let queries = [
        "/api/v01/customers?limit=1000".to_owned(),
        "/api/v01/customers?accountId=97&limit=1000".to_owned(),
        "/api/v01/customers?city=oslo&limit=1000".to_owned(),
        "/api/v01/customers?lastName=c&limit=1000".to_owned(),
    ];
    let mut before = Vec::new();
    for query in &queries {
        before.push(get(&registry, query).await);
    }
    assert_eq!(before[0].1.as_array().unwrap().len(), live.len());
    assert!(registry.stop());

    let audit = tool(&["audit"], &bootstrap, &topic, &data_dir);
    assert_eq!(audit.status.code(), Some(0), "{}", text(&audit));
    let rebuilt = tool(&["rebuild"], &bootstrap, &topic, &data_dir);
    assert_eq!(rebuilt.status.code(), Some(0), "{}", text(&rebuilt));
    let registry = Registry::start(&bootstrap, &topic, &data_dir);
    for (query, answer) in queries.iter().zip(&before) {
        assert_eq!(
            &get(&registry, query).await,
            answer,
            "{query} after rebuild"
        );
    }
}
