//! The events the service publishes follow the public contract in `events/`.

use crate::common;
use crate::common::contract::{assert_valid, load, schema};
use crate::common::{create_all, kafka_bootstrap, read_topic, unique_topic, Registry};
use serde_json::{json, Value};

#[test]
fn the_published_examples_validate() {
    for kind in ["created", "updated", "deleted"] {
        let example = load(&format!("events/examples/customer-{kind}.v1.json"));
        assert_valid(&schema(kind), &example);
        // And the registry itself reads each as the event it describes.
        let decoded =
            customer_registry::domain::RegistryEvent::decode(example.to_string().as_bytes())
                .unwrap_or_else(|error| panic!("the {kind} example: {error}"));
        assert_eq!(
            decoded.event_type().to_lowercase(),
            format!("customer{kind}")
        );
    }
}

#[test]
fn the_change_schemas_reject_what_the_contract_forbids() {
    let updated = schema("updated");
    let example = load("events/examples/customer-updated.v1.json");
    let mut version_one = example.clone();
    version_one["data"]["version"] = json!(1);
    let mut no_changes = example.clone();
    no_changes["data"]["changes"] = json!({});
    let mut unknown_field = example.clone();
    unknown_field["data"]["changes"]["nickname"] = json!("x");
    let mut not_text = example.clone();
    not_text["data"]["changes"]["city"] = json!(5);
    for broken in [version_one, no_changes, unknown_field, not_text] {
        assert!(!updated.is_valid(&broken), "{broken} should not validate");
    }
    let deleted = schema("deleted");
    let mut no_version = load("events/examples/customer-deleted.v1.json");
    no_version["data"]
        .as_object_mut()
        .unwrap()
        .remove("version");
    assert!(!deleted.is_valid(&no_version));
    assert!(
        !deleted.is_valid(&example),
        "an update is not a delete (eventType)"
    );
}

#[test]
fn the_schema_rejects_what_the_contract_forbids() {
    let validator = schema("created");
    let example = load("events/examples/customer-created.v1.json");
    let mut no_account = example.clone();
    no_account["data"]
        .as_object_mut()
        .unwrap()
        .remove("accountId");
    let mut newer = example.clone();
    newer["schemaVersion"] = json!(2);
    let mut null_field = example.clone();
    null_field["data"]["city"] = Value::Null;
    let mut bad_code = example;
    bad_code["data"]["code"] = json!("no spaces");
    for broken in [no_account, newer, null_field, bad_code] {
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
        json!({"accountId": 1, "code": "ERP:cust/0042_a.b-C"}),
    ];
    let created = create_all(&registry, &bodies).await;

    let validator = schema("created");
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
        // The API answers the customer with its version and update time; the event carries
        // the customer as v1 always did (version 1, updated when created).
        let answered = created
            .iter()
            .find(|answer| answer["id"] == customer["id"])
            .expect("the API answered this customer");
        assert_eq!(answered["version"], 1);
        assert_eq!(answered["updatedAt"], answered["createdAt"]);
        let mut as_created = answered.clone();
        as_created.as_object_mut().unwrap().remove("version");
        as_created.as_object_mut().unwrap().remove("updatedAt");
        assert_eq!(
            &as_created, customer,
            "the event carries what the API answered"
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
        assert!(
            customer["code"].is_string(),
            "v1.3: every create carries its code"
        );
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
