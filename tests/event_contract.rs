//! The events the service publishes follow the public contract in `events/`.

mod common;

use common::{create_all, kafka_bootstrap, read_topic, unique_topic, Registry};
use serde_json::{json, Value};
use std::path::Path;

fn load(path: &str) -> Value {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn schema() -> jsonschema::Validator {
    jsonschema::options()
        .should_validate_formats(true)
        .build(&load("events/customer-created.v1.schema.json"))
        .expect("the published schema is a valid JSON Schema")
}

fn assert_valid(validator: &jsonschema::Validator, event: &Value) {
    let problems: Vec<String> = validator
        .iter_errors(event)
        .map(|error| format!("{} at {}", error, error.instance_path))
        .collect();
    assert!(
        problems.is_empty(),
        "{event} breaks the schema: {problems:#?}"
    );
}

#[test]
fn the_published_example_validates() {
    assert_valid(&schema(), &load("events/examples/customer-created.v1.json"));
}

#[test]
fn the_schema_rejects_what_the_contract_forbids() {
    let validator = schema();
    let example = load("events/examples/customer-created.v1.json");
    let mut no_account = example.clone();
    no_account["data"]
        .as_object_mut()
        .unwrap()
        .remove("accountId");
    let mut newer = example.clone();
    newer["schemaVersion"] = json!(2);
    let mut null_field = example;
    null_field["data"]["city"] = Value::Null;
    for broken in [no_account, newer, null_field] {
        assert!(!validator.is_valid(&broken), "{broken} should not validate");
    }
}

#[tokio::test]
async fn every_event_the_service_writes_validates_against_the_schema() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("contract");
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(&bootstrap, &topic, &dir.path().join("data"));
    let bodies = [
        json!({"accountId": 1}),
        json!({"accountId": 2147483647, "firstName": "Zoë", "lastName": "Ødegård",
               "organizationName": "Ødegård AS", "email": "zoe@example.no",
               "phone": "+47 22 33 44 55", "street": "Karl Johans gate 1", "city": "Oslo",
               "state": "03", "zipCode": "0154", "countryCode": "no"}),
    ];
    let created = create_all(&registry, &bodies).await;

    let validator = schema();
    let records = read_topic(&bootstrap, &topic);
    assert_eq!(records.len(), bodies.len());
    for record in &records {
        assert_valid(&validator, &record.value);
        let customer = &record.value["data"];
        assert_eq!(
            record.key,
            customer["id"].as_str().unwrap(),
            "keyed by customer id"
        );
        assert!(
            created.contains(customer),
            "{customer} is what the API answered"
        );
        assert_eq!(record.value["occurredAt"], customer["createdAt"]);
        assert_eq!(record.value["actor"], "anonymous");
        assert!(
            record.value["requestId"].is_string(),
            "every event names its request"
        );
        let header = |name: &str| {
            record
                .headers
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        assert_eq!(header("event-type"), Some("CustomerCreated"));
        assert_eq!(header("schema-version"), Some("1"));
        assert_eq!(header("content-type"), Some("application/json"));
    }
}

#[tokio::test]
async fn a_clients_request_id_is_echoed_and_recorded_in_the_event() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("request-id");
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start(&bootstrap, &topic, &dir.path().join("data"));
    let response = common::http()
        .put(registry.url("/api/v01/customers"))
        .header("x-request-id", "billing-run-2026-11/42")
        .json(&json!({"accountId": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    assert_eq!(response.headers()["x-request-id"], "billing-run-2026-11/42");
    let records = read_topic(&bootstrap, &topic);
    assert_eq!(records[0].value["requestId"], "billing-run-2026-11/42");

    let assigned = common::http()
        .get(registry.url("/api/v01/customers"))
        .send()
        .await
        .unwrap();
    let id = assigned.headers()["x-request-id"].to_str().unwrap();
    assert!(
        uuid::Uuid::parse_str(id).is_ok(),
        "an id is assigned when the client sends none"
    );
}
