//! `customer-registry migrate --encrypt` copies a plain (v1) log into a new topic with every
//! personal field sealed: every record once, in each customer's order, event ids kept; it
//! resumes after a crash; the new topic gives the same registry; and its customers, old ones
//! included, can then be erased.

use crate::common;
use crate::common::{
    get, http, kafka_bootstrap, read_topic, send, text, tool, unique_topic, Registry,
};
use crate::repartition::{assert_faithful_copy, export, write_history};
use customer_registry::log::Partitioning;
use serde_json::Value;
use std::process::{Command, Output};

fn migrate(bootstrap: &str, from: &str, to: &str, env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_customer-registry"))
        .args([
            "migrate",
            "--encrypt",
            "--json",
            "--kafka-bootstrap",
            bootstrap,
        ])
        .args(["--from", from, "--to", to, "--kek-file"])
        .arg(common::kek_file())
        .envs(env.iter().copied())
        .output()
        .expect("running customer-registry migrate")
}

#[tokio::test]
async fn a_plain_log_migrated_with_encrypt_gives_the_same_registry_and_then_erases() {
    let bootstrap = kafka_bootstrap();
    let (from, to) = (unique_topic("migrate-from"), unique_topic("migrate-to"));
    common::create_topic_kept_forever(&bootstrap, &from, 4).await;
    let live = write_history(&bootstrap, &from, Partitioning::over(4), 100_000);

    // A run that crashes part-way, then one that resumes it.
    let crashed = migrate(
        &bootstrap,
        &from,
        &to,
        &[("REGISTRY_TEST_CRASH_AFTER", "30000")],
    );
    assert_eq!(
        crashed.status.code(),
        None,
        "killed by a signal: {}",
        text(&crashed)
    );
    let resumed = migrate(&bootstrap, &from, &to, &[]);
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed));
    let report: Value = serde_json::from_slice(&resumed.stdout).unwrap();
    assert_eq!(report["targetRecords"], 100_000, "{report}");
    assert_eq!(report["customers"], live, "{report}");
    assert_eq!(report["mismatchedCustomers"], 0, "{report}");
    let before = report["copiedBefore"].as_u64().unwrap();
    assert!(before > 0 && before <= 30_000, "{report}");
    assert_eq!(
        report["copied"].as_u64().unwrap() + before,
        100_000,
        "{report}"
    );

    // Every record sealed, nothing personal in plain text, each customer's events in order.
    let (source, target) = (read_topic(&bootstrap, &from), read_topic(&bootstrap, &to));
    assert_faithful_copy(&source, &target, 4, &from);
    for record in &target {
        assert_eq!(
            record.published["schemaVersion"], 2,
            "{:?}",
            record.published
        );
        // Only readable members in `data`; the personal ones travel sealed (base64, which
        // holds no space: a street's " Rue" cannot appear in it by chance).
        let readable = [
            "id",
            "code",
            "accountId",
            "createdAt",
            "version",
            "personal",
        ];
        let data = record.published["data"].as_object().unwrap();
        assert!(
            data.keys()
                .all(|member| readable.contains(&member.as_str())),
            "{data:?}"
        );
        assert!(!record.published.to_string().contains(" Rue"));
        assert_eq!(record.header("schema-version"), Some("2"));
    }
    let dir = tempfile::tempdir().unwrap();
    let exported = export(&bootstrap, &to, dir.path());
    assert_eq!(exported.len(), live);
    assert_eq!(exported, export(&bootstrap, &from, dir.path()));

    // Served, the new topic erases a customer written before encryption.
    let registry = Registry::start(&bootstrap, &to, &dir.path().join("data"));
    let old = &exported[0];
    let path = format!("/api/v01/customers/{}", old["id"].as_str().unwrap());
    assert_eq!(get(&registry, &path).await, (200, old.clone()));
    let erased = send(http().post(registry.url(&format!("{path}/erasure")))).await;
    assert_eq!(erased.status, 202, "{}", erased.body);
    assert_eq!(get(&registry, &path).await.0, 410);
    assert!(registry.stop());
    let audited = tool(&["audit"], &bootstrap, &to, &dir.path().join("data"));
    assert_eq!(audited.status.code(), Some(0), "{}", text(&audited));
}
