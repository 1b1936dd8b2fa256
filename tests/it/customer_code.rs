//! The merchant's `code`: given at create or defaulted to the id, unique per account (decided by
//! the log, across replicas), found by `find?code=`, fixed after create; and the gateway's XML
//! form, with `id`, `code` and `accountId` as attributes of `<customer>`.

use crate::common::{
    create, find_eventually, get, http, kafka_bootstrap, read_topic, unique_topic,
};
use crate::common::{get_caught_up, Registry};
use serde_json::{json, Value};

const XML: &str = "application/xml";

/// PUTs `body` as JSON with `headers`; returns status, headers and body.
async fn put(
    registry: &Registry,
    headers: &[(&str, &str)],
    body: &Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = http().put(registry.url("/api/v01/customers")).json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("PUT");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.json().await.expect("JSON"))
}

/// PUTs an XML body asking for XML; returns status and body text.
async fn put_xml(registry: &Registry, body: &str) -> (u16, String) {
    let response = http()
        .put(registry.url("/api/v01/customers"))
        .header("content-type", XML)
        .header("accept", XML)
        .body(body.to_owned())
        .send()
        .await
        .expect("PUT");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn a_code_is_the_merchants_or_the_id_and_unique_per_account() {
    let (registry, _dir) = Registry::start_alone("code-unique");

    let (status, uncoded) = create(&registry, &json!({"accountId": 42, "lastName": "Ng"})).await;
    assert_eq!(status, 201, "{uncoded}");
    assert_eq!(
        uncoded["code"], uncoded["id"],
        "no code: the code is the id"
    );

    let (status, coded) = create(
        &registry,
        &json!({"accountId": 42, "code": " ABC-1 ", "lastName": "Ada"}),
    )
    .await;
    assert_eq!(status, 201, "{coded}");
    assert_eq!(coded["code"], "ABC-1", "trimmed");
    let members: Vec<&String> = coded.as_object().unwrap().keys().collect();
    assert_eq!(&members[..3], ["id", "code", "accountId"], "{coded}");

    let (status, headers, taken) = put(
        &registry,
        &[],
        &json!({"accountId": 42, "code": "ABC-1", "lastName": "Eve"}),
    )
    .await;
    assert_eq!(status, 409, "{taken}");
    assert_eq!(taken["type"], "/problems/duplicate-code");
    assert_eq!(taken["customerId"], coded["id"]);
    assert_eq!(taken["errors"][0]["field"], "code");
    assert_eq!(taken["errors"][0]["code"], "duplicate_code");
    assert_eq!(
        headers["location"],
        format!("/api/v01/customers/{}", coded["id"].as_str().unwrap()).as_str()
    );

    let (status, elsewhere) = create(
        &registry,
        &json!({"accountId": 43, "code": "ABC-1", "lastName": "Eve"}),
    )
    .await;
    assert_eq!(status, 201, "another account: {elsewhere}");
    assert_ne!(elsewhere["id"], coded["id"]);
    let (status, other_case) = create(&registry, &json!({"accountId": 42, "code": "abc-1"})).await;
    assert_eq!(status, 201, "codes are case-sensitive: {other_case}");

    // An explicit code written like another customer's id takes that customer's code.
    let id_as_code = uncoded["id"].as_str().unwrap();
    let (status, _, clash) = put(
        &registry,
        &[],
        &json!({"accountId": 42, "code": id_as_code}),
    )
    .await;
    assert_eq!(status, 409, "{clash}");
    assert_eq!(clash["customerId"], uncoded["id"]);

    // The code is fixed at create; a deleted customer keeps it.
    let path = format!("/api/v01/customers/{}", coded["id"].as_str().unwrap());
    let refused = http()
        .post(registry.url(&path))
        .json(&json!({"code": "ABC-2"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 400);
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["errors"][0]["code"], "create_only", "{problem}");
    let deleted = http().delete(registry.url(&path)).send().await.unwrap();
    assert_eq!(deleted.status().as_u16(), 204);
    let (status, _, after_delete) =
        put(&registry, &[], &json!({"accountId": 42, "code": "ABC-1"})).await;
    assert_eq!(status, 409, "{after_delete}");
    assert_eq!(after_delete["customerId"], coded["id"]);

    for (body, field, code) in [
        (
            json!({"accountId": 42, "code": "a b"}),
            "code",
            "invalid_format",
        ),
        (
            json!({"accountId": 42, "code": "x".repeat(61)}),
            "code",
            "too_long",
        ),
        (json!({"accountId": 42, "code": 7}), "code", "invalid_type"),
    ] {
        let (status, problem) = create(&registry, &body).await;
        assert_eq!(status, 400, "{body}: {problem}");
        assert_eq!(problem["errors"][0]["field"], field);
        assert_eq!(problem["errors"][0]["code"], code, "{body}");
    }
}

#[tokio::test]
async fn find_by_code_is_the_cross_reference_lookup() {
    let (registry, _dir) = Registry::start_alone("code-find");
    let (_, first) = create(&registry, &json!({"accountId": 7, "code": "ERP/0001"})).await;
    let (_, uncoded) = create(&registry, &json!({"accountId": 7, "firstName": "Zed"})).await;
    let (_, other) = create(&registry, &json!({"accountId": 8, "code": "ERP/0001"})).await;

    let found = find_eventually(&registry, "/api/v01/customers?accountId=7&code=ERP/0001", 1).await;
    assert_eq!(found[0], first);
    let everywhere = get_caught_up(&registry, "/api/v01/customers?code=ERP%2F0001").await;
    let mut ids: Vec<&str> = everywhere
        .as_array()
        .unwrap()
        .iter()
        .map(|customer| customer["id"].as_str().unwrap())
        .collect();
    ids.sort();
    let mut expected = vec![first["id"].as_str().unwrap(), other["id"].as_str().unwrap()];
    expected.sort();
    assert_eq!(ids, expected, "without accountId: every account");

    let by_id = format!(
        "/api/v01/customers?accountId=7&code={}",
        uncoded["id"].as_str().unwrap()
    );
    assert_eq!(get_caught_up(&registry, &by_id).await, json!([uncoded]));
    for none in [
        "/api/v01/customers?accountId=7&code=erp/0001",
        "/api/v01/customers?accountId=7&code=ERP/000",
        "/api/v01/customers?accountId=9&code=ERP/0001",
        "/api/v01/customers?accountId=7&code=ERP/0001&firstName=Zed",
    ] {
        assert_eq!(get_caught_up(&registry, none).await, json!([]), "{none}");
    }
    let (status, problem) = get(&registry, "/api/v01/customers?code=a%20b").await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "code");
}

#[tokio::test]
async fn creates_of_one_code_racing_over_two_replicas_make_one_customer() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic("code-race");
    let dir = tempfile::tempdir().unwrap();
    let replica_a = Registry::start(&bootstrap, &topic, &dir.path().join("a"));
    let replica_b = Registry::start(&bootstrap, &topic, &dir.path().join("b"));

    let mut attempts = Vec::new();
    for n in 0..16 {
        let replica = if n % 2 == 0 { &replica_a } else { &replica_b };
        let body = json!({"accountId": 5, "code": "RACE-1", "firstName": format!("n{n}")});
        attempts.push(async move { put(replica, &[], &body).await });
    }
    let answers = futures::future::join_all(attempts).await;
    let created: Vec<&Value> = answers
        .iter()
        .filter(|(status, _, _)| *status == 201)
        .map(|(_, _, body)| body)
        .collect();
    assert_eq!(created.len(), 1, "exactly one create wins: {answers:?}");
    let winner = created[0];
    for (status, _, body) in &answers {
        if *status != 201 {
            assert_eq!(*status, 409, "{body}");
            assert_eq!(
                body["customerId"], winner["id"],
                "every loser names the winner"
            );
        }
    }
    for replica in [&replica_a, &replica_b] {
        let found = find_eventually(replica, "/api/v01/customers?accountId=5", 1).await;
        assert_eq!(&found[0], winner, "both replicas hold the winner");
    }
    // Every create named the one customer the code derives, so the log holds them on one
    // partition, and the projection kept the first.
    let records = read_topic(&bootstrap, &topic);
    assert!(!records.is_empty());
    assert!(
        records
            .iter()
            .all(|record| record.key == winner["id"].as_str().unwrap()),
        "{records:?}"
    );
}

#[tokio::test]
async fn a_keyed_create_with_a_code_replays_and_another_key_is_409() {
    let (registry, _dir) = Registry::start_alone("code-key");
    let body = json!({"accountId": 3, "code": "K-1", "lastName": "Key"});
    let (status, headers, first) = put(&registry, &[("idempotency-key", "k-1")], &body).await;
    assert_eq!(status, 201, "{first}");
    assert!(!headers.contains_key("idempotent-replayed"));
    let (status, headers, again) = put(&registry, &[("idempotency-key", "k-1")], &body).await;
    assert_eq!((status, &again), (201, &first));
    assert_eq!(headers["idempotent-replayed"], "true");
    let changed = json!({"accountId": 3, "code": "K-1", "lastName": "Other"});
    let (status, _, reused) = put(&registry, &[("idempotency-key", "k-1")], &changed).await;
    assert_eq!(status, 422, "{reused}");
    let (status, _, taken) = put(&registry, &[("idempotency-key", "k-2")], &body).await;
    assert_eq!(status, 409, "{taken}");
    assert_eq!(taken["customerId"], first["id"]);
}

/// The attributes of the first element named `name` in `document`, parsed by an XML parser
/// that is not the service's.
fn attributes(document: &roxmltree::Document, name: &str) -> Vec<(String, String)> {
    let element = document
        .descendants()
        .find(|node| node.has_tag_name(name))
        .unwrap_or_else(|| panic!("no <{name}>"));
    element
        .attributes()
        .map(|attribute| (attribute.name().to_owned(), attribute.value().to_owned()))
        .collect()
}

#[tokio::test]
async fn xml_carries_id_code_and_account_as_attributes_both_ways() {
    let (registry, _dir) = Registry::start_alone("code-xml");
    let (status, body) = put_xml(
        &registry,
        "<customer code=\"GW-&amp;-1\" accountId=\"42\"><firstName>Émile</firstName></customer>",
    )
    .await;
    assert_eq!(status, 400, "& is outside the code's alphabet: {body}");

    let (status, body) = put_xml(
        &registry,
        "<?xml version=\"1.0\"?>\n<customer code=\"GW-1\" accountId=\"42\">\
         <firstName>Émile</firstName><city>Saint-Étienne</city></customer>",
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let document = roxmltree::Document::parse(&body).expect("well-formed XML");
    let root = document.root_element();
    assert_eq!(root.tag_name().name(), "customer");
    let attributes_of_root = attributes(&document, "customer");
    let names: Vec<&str> = attributes_of_root
        .iter()
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(names, ["id", "code", "accountId"]);
    let id = attributes_of_root[0].1.clone();
    assert_eq!(root.attribute("code"), Some("GW-1"));
    assert_eq!(root.attribute("accountId"), Some("42"));
    let children: Vec<(&str, &str)> = root
        .children()
        .filter(|node| node.is_element())
        .map(|node| (node.tag_name().name(), node.text().unwrap_or("")))
        .collect();
    assert_eq!(children[0], ("firstName", "Émile"));
    assert_eq!(children[1], ("city", "Saint-Étienne"));
    assert!(
        !children
            .iter()
            .any(|(name, _)| ["id", "code", "accountId"].contains(name)),
        "identity only as attributes: {body}"
    );

    // get and find answer the same form; JSON has the same values.
    let got = http()
        .get(registry.url(&format!("/api/v01/customers/{id}")))
        .header("accept", XML)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(got, body, "get answers what create did");
    let listed = http()
        .get(registry.url("/api/v01/customers?accountId=42&code=GW-1"))
        .header("accept", XML)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let list = roxmltree::Document::parse(&listed).expect("well-formed XML");
    assert_eq!(list.root_element().tag_name().name(), "customers");
    assert_eq!(attributes(&list, "customer"), attributes_of_root);
    let (_, json) = get(&registry, &format!("/api/v01/customers/{id}")).await;
    assert_eq!(
        (
            json["id"].as_str(),
            json["code"].as_str(),
            json["accountId"].as_i64()
        ),
        (Some(id.as_str()), Some("GW-1"), Some(42))
    );

    // Today's element form is still accepted, and the forms mix.
    let (status, body) = put_xml(
        &registry,
        "<customer accountId=\"42\"><code>GW-2</code><lastName>Elem</lastName></customer>",
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = put_xml(
        &registry,
        "<customer><accountId>42</accountId><code>GW-3</code></customer>",
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // One field both ways, or an attribute twice, is refused; so is the id, and a field that
    // is never an attribute.
    for (document, expected) in [
        (
            "<customer code=\"GW-4\" accountId=\"42\"><code>GW-4</code></customer>",
            "repeated_field",
        ),
        (
            "<customer accountId=\"42\"><accountId>42</accountId></customer>",
            "repeated_field",
        ),
        (
            "<customer code=\"GW-5\" code=\"GW-6\" accountId=\"42\"/>",
            "malformed",
        ),
        (
            "<customer id=\"0193a0a0-0000-7000-8000-000000000000\" accountId=\"42\"/>",
            "server_assigned",
        ),
        (
            "<customer accountId=\"42\" firstName=\"Attr\"/>",
            "malformed",
        ),
    ] {
        let (status, body) = put_xml(&registry, document).await;
        assert_eq!(status, 400, "{document}: {body}");
        assert!(body.contains(expected), "{document}: {body}");
    }
    let (status, body) = put_xml(&registry, "<customer accountId=\"42\" code=\"GW-7\"/>").await;
    assert_eq!(status, 201, "an empty root with attributes only: {body}");
}

#[tokio::test]
async fn a_create_whose_outcome_this_replica_does_not_know_yet_points_at_its_customer() {
    let dir = tempfile::tempdir().unwrap();
    // No wait at all for the projection: a create with a code cannot know whether it won. (The
    // projector is slowed too: it could otherwise apply the create before the one look a wait
    // of 0 takes.)
    let registry = Registry::start_with_env(
        &kafka_bootstrap(),
        &unique_topic("code-pending"),
        &dir.path().join("data"),
        &["--projection-wait-ms", "0"],
        &[("FAILPOINTS", "projection-apply=sleep(300)")],
    );
    let body = json!({"accountId": 4, "code": "SLOW-1"});
    let (status, headers, pending) = put(&registry, &[], &body).await;
    assert_eq!(status, 503, "{pending}");
    assert_eq!(pending["type"], "/problems/change-pending");
    assert!(
        !headers.contains_key("retry-after"),
        "creating again is not the way to learn the outcome"
    );
    let location = headers["location"].to_str().unwrap().to_owned();
    let position = headers["x-log-position"].to_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let customer: Value = loop {
        let response = http()
            .get(registry.url(&location))
            .header("x-min-log-position", &position)
            .send()
            .await
            .unwrap();
        if response.status().as_u16() == 200 {
            break response.json().await.unwrap();
        }
        assert_eq!(response.status().as_u16(), 503, "{location}");
        assert!(
            std::time::Instant::now() < deadline,
            "{location} never read"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(customer["code"], "SLOW-1");
    let (status, _, taken) = put(&registry, &[], &body).await;
    assert_eq!(status, 409, "{taken}");
    assert_eq!(
        location,
        format!(
            "/api/v01/customers/{}",
            taken["customerId"].as_str().unwrap()
        )
    );
}
