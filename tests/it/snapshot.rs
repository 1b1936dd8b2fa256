//! New replicas from a snapshot: `customer-registry snapshot` writes a read model's committed
//! state (a running `serve`'s through its control socket, a stopped one's directly), and so does
//! `GET /api/v01/admin/snapshot`; `serve --restore-from` starts an empty data dir from one and
//! catches up from its offsets. A truncated, damaged or foreign snapshot is refused, with a
//! non-zero exit and nothing restored.

use crate::common::{
    create_all, create_topic_kept_forever, find_eventually, http, kafka_bootstrap,
    run_to_exit_with, text, tool, unique_topic, Registry,
};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

/// `customer-registry snapshot --data-dir DIR --out FILE --json`.
fn snapshot(data_dir: &Path, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_customer-registry"))
        .args(["snapshot", "--json", "--data-dir"])
        .arg(data_dir)
        .arg("--out")
        .arg(out)
        .output()
        .expect("running customer-registry snapshot")
}

async fn customers(registry: &Registry, count: usize) -> Vec<Value> {
    find_eventually(
        registry,
        "/api/v01/customers?accountId=77&limit=1000",
        count,
    )
    .await
}

#[tokio::test]
async fn a_new_replica_starts_from_a_snapshot_and_catches_up_from_its_offsets() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("snapshot");
    let dir = tempfile::tempdir().unwrap();
    let first = Registry::start(&bootstrap, &topic, &dir.path().join("first"));
    let bodies: Vec<Value> = (0..40)
        .map(|n| json!({"accountId": 77, "lastName": format!("Snap{n}"), "city": "Oslo"}))
        .collect();
    let created = create_all(&first, &bodies).await;
    for customer in &created[..10] {
        let path = format!("/api/v01/customers/{}", customer["id"].as_str().unwrap());
        let response = http()
            .post(first.url(&path))
            .json(&json!({"city": "Lyon"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
    }
    let path = format!("/api/v01/customers/{}", created[39]["id"].as_str().unwrap());
    let deleted = http().delete(first.url(&path)).send().await.unwrap();
    assert_eq!(deleted.status().as_u16(), 204);

    // A snapshot of the running replica, through its control socket.
    let file = dir.path().join("first.snapshot");
    let taken = snapshot(&dir.path().join("first"), &file);
    assert_eq!(taken.status.code(), Some(0), "{}", text(&taken));
    let report: Value = serde_json::from_slice(&taken.stdout).unwrap();
    assert_eq!(report["takenFrom"], "the running serve", "{report}");
    assert_eq!(report["topic"], topic.as_str());
    assert_eq!(report["bytes"], std::fs::metadata(&file).unwrap().len());

    // Written after the snapshot: the new replica catches up with them from the log.
    let later: Vec<Value> = (0..5)
        .map(|n| json!({"accountId": 77, "lastName": format!("Later{n}")}))
        .collect();
    create_all(&first, &later).await;
    let expected = customers(&first, 44).await;

    let restored_dir = dir.path().join("restored");
    let restored = Registry::start_with(
        &bootstrap,
        &topic,
        &restored_dir,
        &["--restore-from", file.to_str().unwrap()],
    );
    let log = std::fs::read_to_string(&restored.log_path).unwrap();
    assert!(
        log.contains("restored the read model from a snapshot"),
        "{log}"
    );
    assert_eq!(customers(&restored, 44).await, expected);

    // The same through HTTP, from the restored replica.
    let response = http()
        .get(restored.url("/api/v01/admin/snapshot"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/octet-stream"
    );
    let over_http = dir.path().join("over-http.snapshot");
    std::fs::write(&over_http, response.bytes().await.unwrap()).unwrap();
    let third = Registry::start_with(
        &bootstrap,
        &topic,
        &dir.path().join("third"),
        &["--restore-from", over_http.to_str().unwrap()],
    );
    assert_eq!(customers(&third, 44).await, expected);

    // A replica that has a read model resumes its own; the flag is ignored.
    assert!(restored.stop());
    let again = Registry::start_with(
        &bootstrap,
        &topic,
        &restored_dir,
        &["--restore-from", file.to_str().unwrap()],
    );
    let log = std::fs::read_to_string(&again.log_path).unwrap();
    assert!(log.contains("--restore-from is ignored"), "{log}");
    assert_eq!(customers(&again, 44).await, expected);
    assert!(again.stop());

    // With no serve running, the tool reads the read model itself; the audit agrees with the log.
    let stopped = snapshot(&restored_dir, &dir.path().join("stopped.snapshot"));
    assert_eq!(stopped.status.code(), Some(0), "{}", text(&stopped));
    let report: Value = serde_json::from_slice(&stopped.stdout).unwrap();
    assert_eq!(
        report["takenFrom"], "the read model (no serve running)",
        "{report}"
    );
    let audit = tool(&["audit"], &bootstrap, &topic, &restored_dir);
    assert_eq!(audit.status.code(), Some(0), "{}", text(&audit));
}

#[tokio::test]
async fn a_truncated_damaged_or_foreign_snapshot_is_refused_and_nothing_is_restored() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("snapshot-refused");
    let dir = tempfile::tempdir().unwrap();
    let source = Registry::start(&bootstrap, &topic, &dir.path().join("source"));
    let bodies: Vec<Value> = (0..30)
        .map(|n| json!({"accountId": 77, "lastName": format!("Whole{n}")}))
        .collect();
    create_all(&source, &bodies).await;
    assert!(source.stop());
    let file = dir.path().join("whole.snapshot");
    let taken = snapshot(&dir.path().join("source"), &file);
    assert_eq!(taken.status.code(), Some(0), "{}", text(&taken));
    let whole = std::fs::read(&file).unwrap();

    let mut damaged = whole.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x20;
    // Another topic that exists (a restore needs its topic there): the snapshot is not of it.
    let foreign_topic = unique_topic("snapshot-foreign");
    create_topic_kept_forever(&bootstrap, &foreign_topic, 12).await;
    // Name, the file, the topic the replica follows, what the refusal says.
    type Case<'a> = (&'a str, Vec<u8>, &'a str, &'a str);
    let cases: [Case; 4] = [
        (
            "truncated",
            whole[..whole.len() * 2 / 3].to_vec(),
            &topic,
            "truncated",
        ),
        ("damaged", damaged, &topic, "damaged"),
        (
            "foreign",
            whole.clone(),
            &foreign_topic,
            "the snapshot is of topic",
        ),
        (
            "not-a-snapshot",
            b"customer,lastName\n1,Smith\n".to_vec(),
            &topic,
            "not a customer-registry snapshot",
        ),
    ];
    for (name, bytes, wanted_topic, says) in cases {
        let path = dir.path().join(format!("{name}.snapshot"));
        std::fs::write(&path, bytes).unwrap();
        let data_dir = dir.path().join(format!("restore-{name}"));
        let (code, output) = run_to_exit_with(
            &bootstrap,
            wanted_topic,
            &data_dir,
            Duration::from_secs(60),
            &["--restore-from", path.to_str().unwrap()],
            &[],
        );
        assert_eq!(code, Some(1), "{name}: {output}");
        // A flipped bit in a length field reads as the file ending early.
        let said = output.contains(says) || (name == "damaged" && output.contains("truncated"));
        assert!(said, "{name}: {output}");
        let left: Vec<_> = std::fs::read_dir(&data_dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{name}: nothing restored, found {left:?}");
    }

    let nothing = snapshot(&dir.path().join("no-such-data-dir"), &dir.path().join("x"));
    assert_eq!(nothing.status.code(), Some(2), "{}", text(&nothing));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_taken_while_the_replica_flushes_under_load_restore_to_the_same_registry() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("snapshot-under-load");
    let dir = tempfile::tempdir().unwrap();
    let source_dir = dir.path().join("source");
    // Flushes every few changes, so that snapshots meet flushes under way.
    let flags = ["--flush-changes", "20", "--flush-interval-ms", "100"];
    let source = Registry::start_with(&bootstrap, &topic, &source_dir, &flags);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (url, stop) = (source.url("/api/v01/customers"), stop.clone());
        tokio::spawn(async move {
            let mut written = 0usize;
            // At most a page of them (a find answers up to 1,000).
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && written < 900 {
                let body = json!({"accountId": 77, "lastName": format!("Busy{written}")});
                let response = http().put(&url).json(&body).send().await.unwrap();
                assert_eq!(response.status().as_u16(), 201);
                written += 1;
            }
            written
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut files = Vec::new();
    for n in 0..3 {
        let file = dir.path().join(format!("busy-{n}.snapshot"));
        let taken = snapshot(&source_dir, &file);
        assert_eq!(taken.status.code(), Some(0), "{}", text(&taken));
        files.push(file);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let response = http()
        .get(source.url("/api/v01/admin/snapshot"))
        .send()
        .await
        .unwrap();
    let over_http = dir.path().join("busy-http.snapshot");
    std::fs::write(&over_http, response.bytes().await.unwrap()).unwrap();
    files.push(over_http);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.await.unwrap();
    let expected = customers(&source, written).await;
    for (n, file) in files.iter().enumerate() {
        let data_dir = dir.path().join(format!("restored-{n}"));
        let restored = Registry::start_with(
            &bootstrap,
            &topic,
            &data_dir,
            &["--restore-from", file.to_str().unwrap()],
        );
        assert_eq!(customers(&restored, written).await, expected, "{file:?}");
        assert!(restored.stop());
        let audit = tool(&["audit"], &bootstrap, &topic, &data_dir);
        assert_eq!(audit.status.code(), Some(0), "{file:?}: {}", text(&audit));
    }
}
