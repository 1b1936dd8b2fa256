//! API keys and tenant isolation, against the real binary and a real broker: every status for
//! every scope, the `keys` tool, reloads, and the refusal to serve without keys.

use crate::common::{
    http, kafka_bootstrap, read_topic, run_to_exit_with, unique_topic, Registry, PATIENCE,
};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Runs `customer-registry keys ARGS` and returns its output, failing the test on a non-zero exit
/// unless `may_fail`.
fn keys(args: &[&str], may_fail: bool) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_customer-registry"))
        .arg("keys")
        .args(args)
        .env_remove("REGISTRY_API_KEYS")
        .output()
        .expect("running customer-registry keys");
    assert!(
        may_fail || output.status.success(),
        "keys {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Adds a key to `file` with `scope` (`--admin` or `--accounts=…`) and returns it: the last line
/// of stdout.
pub(crate) fn add_key(file: &Path, name: &str, scope: &str) -> String {
    let output = keys(
        &[
            "add",
            "--file",
            file.to_str().unwrap(),
            "--name",
            name,
            scope,
        ],
        false,
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    stdout
        .lines()
        .last()
        .expect("a key on the last line")
        .to_owned()
}

/// A request to `path` with `key` (if any); returns status, `WWW-Authenticate` and the body.
async fn call(
    registry: &Registry,
    method: reqwest::Method,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> (u16, Option<String>, Value) {
    let mut request = http().request(method, registry.url(path));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("a request");
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|value| value.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON from {path}: {text}"))
    };
    (status, challenge, body)
}

async fn create(registry: &Registry, key: &str, account: u32, name: &str) -> (u16, Value) {
    let body = json!({"accountId": account, "lastName": name});
    let (status, _, body) = call(
        registry,
        reqwest::Method::PUT,
        "/api/v01/customers",
        Some(key),
        Some(&body),
    )
    .await;
    (status, body)
}

async fn get(registry: &Registry, path: &str, key: Option<&str>) -> (u16, Value) {
    let (status, _, body) = call(registry, reqwest::Method::GET, path, key, None).await;
    (status, body)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_scope_gets_exactly_what_its_key_reaches() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("auth-scopes");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("api-keys.jsonl");
    let admin = add_key(&file, "ops", "--admin");
    let eu = add_key(&file, "billing-eu", "--accounts=42,43");
    let us = add_key(&file, "billing-us", "--accounts=44");

    // The file holds hashes and scopes, never a key; `list` shows names and scopes.
    let stored = std::fs::read_to_string(&file).unwrap();
    for key in [&admin, &eu, &us] {
        assert!(key.starts_with("crk_") && !stored.contains(key.as_str()));
    }
    let listed = keys(&["list", "--file", file.to_str().unwrap()], false);
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(
        listed.contains("billing-eu") && listed.contains("accounts 42,43"),
        "{listed}"
    );
    assert!(
        listed.contains("ops") && listed.contains("admin"),
        "{listed}"
    );
    let listed = keys(&["list", "--file", file.to_str().unwrap(), "--json"], false);
    let listed: Vec<Value> = String::from_utf8(listed.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(
        listed[1],
        json!({"name": "billing-eu", "scope": {"accounts": [42, 43]}})
    );

    let registry = Registry::start_with(
        &bootstrap,
        &topic,
        &dir.path().join("data"),
        &["--api-keys", file.to_str().unwrap()],
    );

    // Probes need no key.
    assert_eq!(get(&registry, "/healthz", None).await.0, 200);
    let deadline = Instant::now() + PATIENCE;
    while get(&registry, "/readyz", None).await.0 != 200 {
        assert!(Instant::now() < deadline, "/readyz never turned 200");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Creates: a scoped key inside its scope, outside it, and the admin anywhere.
    let (status, in_eu) = create(&registry, &eu, 42, "Inside").await;
    assert_eq!(status, 201, "{in_eu}");
    let (status, refused) = create(&registry, &eu, 44, "Outside").await;
    assert_eq!(status, 403, "{refused}");
    assert_eq!(refused["type"], "/problems/forbidden");
    assert!(
        refused["detail"].as_str().unwrap().contains("44"),
        "{refused}"
    );
    let (status, in_us) = create(&registry, &admin, 44, "Elsewhere").await;
    assert_eq!(status, 201, "{in_us}");
    let (status, _) = create(&registry, &us, 44, "Also").await;
    assert_eq!(status, 201);
    let in_eu_path = format!("/api/v01/customers/{}", in_eu["id"].as_str().unwrap());
    let in_us_path = format!("/api/v01/customers/{}", in_us["id"].as_str().unwrap());

    // No key, a malformed header, an unknown key: 401 with a Bearer challenge, everywhere.
    let protected = [
        (reqwest::Method::PUT, "/api/v01/customers".to_owned()),
        (reqwest::Method::GET, "/api/v01/customers".to_owned()),
        (reqwest::Method::GET, in_eu_path.clone()),
        (reqwest::Method::GET, format!("{in_eu_path}/events")),
        (
            reqwest::Method::GET,
            "/api/v01/admin/rejected-events".to_owned(),
        ),
    ];
    let body = json!({"accountId": 42});
    for (method, path) in &protected {
        let (status, challenge, problem) =
            call(&registry, method.clone(), path, None, Some(&body)).await;
        assert_eq!(status, 401, "{method} {path}: {problem}");
        assert_eq!(problem["type"], "/problems/unauthorized");
        assert!(challenge.unwrap().starts_with("Bearer"), "{method} {path}");
        let unknown = format!("{eu}0");
        let (status, challenge, _) =
            call(&registry, method.clone(), path, Some(&unknown), Some(&body)).await;
        assert_eq!(status, 401, "{method} {path}");
        assert!(challenge.unwrap().contains(r#"error="invalid_token""#));
    }
    let basic = http()
        .get(registry.url("/api/v01/customers"))
        .header("authorization", format!("Basic {eu}"))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status().as_u16(), 401);

    // A scoped find covers its accounts only; naming another account is a 403.
    let response = http()
        .get(registry.url("/api/v01/customers"))
        .bearer_auth(&eu)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-total-count"], "1");
    let found: Vec<Value> = response.json().await.unwrap();
    assert_eq!(found, vec![in_eu.clone()]);
    let (status, problem) = get(&registry, "/api/v01/customers?accountId=44", Some(&eu)).await;
    assert_eq!(status, 403, "{problem}");
    let (status, found) = get(&registry, "/api/v01/customers?accountId=43", Some(&eu)).await;
    assert_eq!((status, found), (200, json!([])));
    let (status, found) = get(&registry, "/api/v01/customers", Some(&admin)).await;
    assert_eq!(status, 200);
    assert_eq!(
        found.as_array().unwrap().len(),
        3,
        "the admin sees every account"
    );

    // Another account's customer is as unknown as an id that names nobody.
    let (status, own) = get(&registry, &in_eu_path, Some(&eu)).await;
    assert_eq!((status, &own), (200, &in_eu));
    let (status, other) = get(&registry, &in_us_path, Some(&eu)).await;
    assert_eq!(status, 404);
    let nobody = format!("/api/v01/customers/{}", uuid::Uuid::now_v7());
    let (_, unknown) = get(&registry, &nobody, Some(&eu)).await;
    let without_id = |problem: &Value, path: &str| {
        let id = path.rsplit('/').next().unwrap();
        problem["detail"].as_str().unwrap().replace(id, "ID")
    };
    assert_eq!(
        without_id(&other, &in_us_path),
        without_id(&unknown, &nobody)
    );
    let (status, _) = get(&registry, &format!("{in_us_path}/events"), Some(&eu)).await;
    assert_eq!(status, 404);
    let (status, history) = get(&registry, &format!("{in_us_path}/events"), Some(&us)).await;
    assert_eq!(status, 200, "{history}");

    // The admin listing needs an admin key.
    let (status, problem) = get(&registry, "/api/v01/admin/rejected-events", Some(&eu)).await;
    assert_eq!(status, 403, "{problem}");
    let (status, listing) = get(&registry, "/api/v01/admin/rejected-events", Some(&admin)).await;
    assert_eq!((status, listing), (200, json!([])));

    // Each event names the key that caused it.
    let actors: Vec<(u64, String)> = read_topic(&bootstrap, &topic)
        .into_iter()
        .map(|record| {
            (
                record.value["data"]["accountId"].as_u64().unwrap(),
                record.value["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut actors = actors;
    actors.sort();
    assert_eq!(
        actors,
        [
            (42, "billing-eu".to_owned()),
            (44, "billing-us".to_owned()),
            (44, "ops".to_owned())
        ]
    );
}

/// Polls `path` with `key` until it answers `wanted`, failing after [`PATIENCE`].
async fn until_status(registry: &Registry, path: &str, key: &str, wanted: u16) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (status, body) = get(registry, path, Some(key)).await;
        if status == wanted {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{path} still answers {status} ({body}), not {wanted}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_added_and_revoked_while_serving_take_effect_without_a_restart() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("auth-reload");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("api-keys.jsonl");
    let first = add_key(&file, "first", "--accounts=1");
    let registry = Registry::start_with_env(
        &bootstrap,
        &topic,
        &dir.path().join("data"),
        &[],
        &[("REGISTRY_API_KEYS", file.to_str().unwrap())],
    );
    let path = "/api/v01/customers";
    until_status(&registry, path, &first, 200).await;

    let second = add_key(&file, "second", "--accounts=2");
    until_status(&registry, path, &second, 200).await;
    let revoked = keys(
        &[
            "revoke",
            "--file",
            file.to_str().unwrap(),
            "--name",
            "first",
        ],
        false,
    );
    assert!(String::from_utf8_lossy(&revoked.stdout).contains("revoked"));
    until_status(&registry, path, &first, 401).await;
    assert_eq!(get(&registry, path, Some(&second)).await.0, 200);

    // SIGHUP reads the file again too.
    let hangup = Command::new("kill")
        .args(["-HUP", &registry.pid().to_string()])
        .status()
        .unwrap();
    assert!(hangup.success());
    let deadline = Instant::now() + PATIENCE;
    loop {
        let log = std::fs::read_to_string(&registry.log_path).unwrap();
        if log.contains("API keys reloaded") && log.contains("SIGHUP") {
            break;
        }
        assert!(Instant::now() < deadline, "no reload on SIGHUP:\n{log}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A broken file keeps the keys in use.
    std::fs::write(&file, "{not json\n").unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let log = std::fs::read_to_string(&registry.log_path).unwrap();
        if log.contains("the keys loaded before stay in use") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no error for a broken file:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(get(&registry, path, Some(&second)).await.0, 200);
    // No key ever reaches the log.
    let log = std::fs::read_to_string(&registry.log_path).unwrap();
    assert!(!log.contains(&first) && !log.contains(&second));
}

#[test]
fn the_keys_tool_refuses_what_it_cannot_do() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("api-keys.jsonl");
    let file = file.to_str().unwrap();
    add_key(Path::new(file), "ops", "--admin");
    for (args, why) in [
        (
            vec!["add", "--file", file, "--name", "ops", "--admin"],
            "already has",
        ),
        (vec!["add", "--file", file, "--name", "x"], "required"),
        (
            vec![
                "add",
                "--file",
                file,
                "--name",
                "x",
                "--admin",
                "--accounts=1",
            ],
            "cannot be used with",
        ),
        (
            vec!["add", "--file", file, "--name", "x", "--accounts=0"],
            "account id",
        ),
        (
            vec!["add", "--file", file, "--name", "anonymous", "--admin"],
            "anonymous",
        ),
        (
            vec!["revoke", "--file", file, "--name", "nobody"],
            "no key named",
        ),
    ] {
        let output = keys(&args, true);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(why), "{args:?}: {stderr}");
    }
}

#[test]
fn serve_refuses_to_start_without_keys_unless_told_no_auth() {
    let bootstrap = kafka_bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (code, output) = run_to_exit_with(
        &bootstrap,
        &unique_topic("auth-none"),
        &data,
        PATIENCE,
        &[],
        &[("REGISTRY_NO_AUTH", "0")],
    );
    assert_eq!(code, Some(1), "{output}");
    assert!(
        output.contains("--api-keys") && output.contains("--no-auth"),
        "{output}"
    );
    let missing = dir.path().join("missing.jsonl");
    let (code, output) = run_to_exit_with(
        &bootstrap,
        &unique_topic("auth-missing"),
        &data,
        PATIENCE,
        &["--api-keys", missing.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, Some(1), "{output}");
    assert!(output.contains("missing.jsonl"), "{output}");

    let registry = Registry::start_with_env(
        &bootstrap,
        &unique_topic("auth-off"),
        &data,
        &[],
        &[("REGISTRY_NO_AUTH", "1")],
    );
    let log = std::fs::read_to_string(&registry.log_path).unwrap();
    assert!(log.contains("WITHOUT authentication"), "{log}");
}
