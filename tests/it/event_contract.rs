//! The events the service publishes follow the public contract in `events/`.

use crate::common;
use crate::common::contract::{assert_valid, load, schema, schema_file};
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
fn the_sealed_examples_validate_and_open_with_the_example_kek_to_the_v1_examples_content() {
    use customer_registry::crypto::data_key::Keyring;
    use customer_registry::crypto::key_record::KeyRecord;
    use customer_registry::crypto::key_store::KeyStore;
    use customer_registry::domain::RegistryEvent;
    use std::os::unix::fs::PermissionsExt;

    // The example KEK file, private as the registry insists.
    let dir = tempfile::tempdir().unwrap();
    let kek_file = dir.path().join("example-kek.jsonl");
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("events/examples/example-kek.jsonl"),
        &kek_file,
    )
    .unwrap();
    std::fs::set_permissions(&kek_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let store = KeyStore::new(Keyring::load(&kek_file).unwrap());
    let key_record = load("events/examples/data-key-record.v1.json");
    assert_valid(&schema_file("data-key-record.v1"), &key_record);
    let kafka_key = format!(
        "{}/{}",
        key_record["customerId"].as_str().unwrap(),
        key_record["keyId"].as_str().unwrap()
    );
    store.apply(
        KeyRecord::decode(
            kafka_key.as_bytes(),
            Some(key_record.to_string().as_bytes()),
        )
        .unwrap(),
        None,
    );
    assert_valid(
        &schema_file("keys-erased-record.v1"),
        &load("events/examples/keys-erased-record.v1.json"),
    );

    let open = |kind: &str| {
        let example = load(&format!("events/examples/customer-{kind}.v2.json"));
        assert_valid(&schema_file(&format!("customer-{kind}.v2")), &example);
        RegistryEvent::decode_with(example.to_string().as_bytes(), &store)
            .unwrap_or_else(|error| panic!("the {kind} v2 example: {error}"))
    };
    let plain = |kind: &str| {
        RegistryEvent::decode(
            load(&format!("events/examples/customer-{kind}.v1.json"))
                .to_string()
                .as_bytes(),
        )
        .unwrap()
    };
    // Made by the Python consumer's script from the spec alone: the Rust reader opens them to
    // what the v1 examples carry.
    assert_eq!(open("created"), plain("created"));
    let (RegistryEvent::CustomerUpdated(sealed), RegistryEvent::CustomerUpdated(clear)) =
        (open("updated"), plain("updated"))
    else {
        panic!("updates decode as updates")
    };
    assert_eq!(sealed.changes, clear.changes);
    assert_eq!(sealed.event_id, clear.event_id);
    assert_eq!(open("deleted").event_id(), plain("deleted").event_id());

    // The erasure: its ids are the ones the registry derives from the customer, in the event and
    // in the marker.
    let erased = open("erased");
    let RegistryEvent::CustomerErased(erasure) = &erased else {
        panic!("the erased example decodes as CustomerErased")
    };
    let customer = erasure.customer_id;
    assert_eq!(
        erasure.erasure_id,
        customer_registry::domain::erasure_id(customer)
    );
    assert_eq!(
        erasure.event_id,
        customer_registry::domain::erased_event_id(customer)
    );
    let marker = load("events/examples/keys-erased-record.v1.json");
    assert_eq!(marker["requestId"], erasure.erasure_id.to_string());
    assert_eq!(marker["customerId"], customer.to_string());
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
    newer["schemaVersion"] = json!(3);
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
    let sealed = schema_file("customer-created.v2");
    let records = read_topic(&bootstrap, &topic);
    assert_eq!(records.len(), bodies.len());
    for record in &records {
        // As published: v2, nothing personal in plain text; opened: what v1 carried.
        assert_valid(&sealed, &record.published);
        let published = record.published.to_string();
        for personal in [
            "Zoë",
            "Ødegård",
            "zoe@example.no",
            "22 33 44 55",
            "Karl Johans",
            "Oslo",
        ] {
            assert!(!published.contains(personal), "{personal} in {published}");
        }
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
        assert!(
            customer["code"].is_string(),
            "v1.3: every create carries its code"
        );
        assert_eq!(record.header("event-type"), Some("CustomerCreated"));
        assert_eq!(record.header("schema-version"), Some("2"));
        assert_eq!(record.header("content-type"), Some("application/json"));
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
