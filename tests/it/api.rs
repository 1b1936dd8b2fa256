//! The JSON path end to end: create → Kafka → projector → sled → get and find, against a real
//! broker and the real binary.

use crate::common;
use crate::common::{
    create, create_all, find_eventually, get, http, kafka_bootstrap, read_topic, unique_topic,
    Registry,
};
use serde_json::{json, Value};

fn start(test: &str) -> (Registry, String, String, tempfile::TempDir) {
    let bootstrap = kafka_bootstrap();
    let topic = unique_topic(test);
    let dir = tempfile::tempdir().expect("a temp dir");
    let registry = Registry::start(&bootstrap, &topic, &dir.path().join("data"));
    (registry, bootstrap, topic, dir)
}

fn ids(customers: &[Value]) -> Vec<&str> {
    customers
        .iter()
        .map(|c| c["id"].as_str().expect("an id"))
        .collect()
}

#[tokio::test]
async fn create_answers_201_with_location_and_get_returns_the_same_customer() {
    let (registry, _, _, _dir) = start("create-get");
    let response = http()
        .put(registry.url("/api/v01/customers"))
        .json(
            &json!({"accountId": 42, "firstName": "Émile", "lastName": "Hamilton",
                      "countryCode": "fr", "phone": "+33 1 23 45 67 89"}),
        )
        .send()
        .await
        .expect("PUT");
    assert_eq!(response.status().as_u16(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = response.json().await.unwrap();
    let id = created["id"].as_str().unwrap();
    assert_eq!(location, format!("/api/v01/customers/{id}"));
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);
    assert_eq!(created["accountId"], 42);
    assert_eq!(created["firstName"], "Émile");
    assert_eq!(created["countryCode"], "FR");
    let created_at = created["createdAt"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(created_at).is_ok());
    assert!(created_at.ends_with('Z'), "createdAt is UTC: {created_at}");

    let (status, fetched) = get(&registry, &location).await;
    assert_eq!(status, 200);
    assert_eq!(fetched, created);
}

#[tokio::test]
async fn get_of_an_unknown_or_malformed_id_is_404() {
    let (registry, _, _, _dir) = start("get-404");
    let unknown = uuid::Uuid::now_v7();
    let (status, problem) = get(&registry, &format!("/api/v01/customers/{unknown}")).await;
    assert_eq!(status, 404);
    assert_eq!(problem["status"], 404);
    let (status, _) = get(&registry, "/api/v01/customers/not-a-uuid").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn find_applies_every_filter_of_the_seed() {
    let (registry, _, _, _dir) = start("find-filters");
    let people = [
        json!({"accountId": 1, "firstName": "Alexander", "lastName": "Hamilton",
               "organizationName": "Treasury Dept", "email": "alex@treasury.example",
               "phone": "212-555-0101", "street": "57 Wall Street", "city": "New York",
               "state": "NY", "zipCode": "10005", "countryCode": "US"}),
        json!({"accountId": 1, "firstName": "Eliza", "lastName": "Schuyler",
               "organizationName": "Orphan Asylum Society", "email": "eliza@asylum.example",
               "phone": "(518) 555-0199", "street": "32 Clinton Square", "city": "Albany",
               "state": "NY", "zipCode": "12207", "countryCode": "US"}),
        json!({"accountId": 2, "firstName": "Marie", "lastName": "Hamel",
               "organizationName": "Hamel Boulangerie", "email": "marie@hamel.example",
               "phone": "+33 1 23 45 67 89", "street": "3 Rue Cler", "city": "Paris",
               "state": "75", "zipCode": "75007", "countryCode": "FR"}),
    ];
    let created: Vec<String> = create_all(&registry, &people)
        .await
        .iter()
        .map(|customer| customer["id"].as_str().unwrap().to_owned())
        .collect();
    find_eventually(&registry, "/api/v01/customers", people.len()).await;
    let cases: &[(&str, &[usize])] = &[
        ("accountId=1", &[0, 1]),
        ("accountId=2", &[2]),
        ("firstName=ALEX", &[0]),
        ("lastName=hamil", &[0]),
        ("lastName=ham", &[0, 2]),
        ("organizationName=orphan", &[1]),
        ("email=MARIE@", &[2]),
        ("phone=212555", &[0]),
        ("phone=(518)%20555", &[1]),
        ("street=57%20wall", &[0]),
        ("city=new%20y", &[0]),
        ("state=ny", &[0, 1]),
        ("state=N", &[]),
        ("zipCode=1", &[0, 1]),
        ("countryCode=fr", &[2]),
        ("accountId=1&lastName=ham", &[0]),
        ("accountId=2&city=new", &[]),
        ("", &[0, 1, 2]),
    ];
    for (query, expected) in cases {
        let (status, body) = get(&registry, &format!("/api/v01/customers?{query}")).await;
        assert_eq!(status, 200, "{query}: {body}");
        let found = ids(body.as_array().unwrap());
        let wanted: Vec<&str> = expected.iter().map(|&n| created[n].as_str()).collect();
        assert_eq!(found, wanted, "filter {query}");
    }
    for invalid in ["countryCode=F", "countryCode=ZZ", "state=NYCX", "phone=abc"] {
        let (status, problem) = get(&registry, &format!("/api/v01/customers?{invalid}")).await;
        assert_eq!(status, 400, "{invalid}: {problem}");
    }
}

#[tokio::test]
async fn pages_follow_creation_order_with_offset_and_limit() {
    let (registry, _, _, _dir) = start("pagination");
    let mut created = Vec::new();
    for n in 0..7 {
        let (status, body) = create(
            &registry,
            &json!({"accountId": 5, "lastName": format!("P{n}")}),
        )
        .await;
        assert_eq!(status, 201);
        created.push(body["id"].as_str().unwrap().to_owned());
    }
    let all = find_eventually(&registry, "/api/v01/customers", 7).await;
    assert_eq!(
        ids(&all),
        created.iter().map(String::as_str).collect::<Vec<_>>()
    );
    let mut paged = Vec::new();
    for offset in (0..7).step_by(3) {
        let (status, body) = get(
            &registry,
            &format!("/api/v01/customers?offset={offset}&limit=3"),
        )
        .await;
        assert_eq!(status, 200);
        paged.extend(body.as_array().unwrap().iter().cloned());
    }
    assert_eq!(paged, all);
    let filtered_pages = [
        ("lastName=p&offset=2&limit=2", &all[2..4]),
        ("accountId=5&lastName=p&offset=6&limit=5", &all[6..7]),
        ("accountId=5&lastName=p1&offset=0&limit=5", &all[1..2]),
        ("accountId=5&lastName=p1&offset=1", &all[0..0]),
    ];
    for (query, expected) in filtered_pages {
        let (_, page) = get(&registry, &format!("/api/v01/customers?{query}")).await;
        assert_eq!(page.as_array().unwrap().as_slice(), expected, "{query}");
    }
    let (_, beyond) = get(&registry, "/api/v01/customers?offset=7").await;
    assert_eq!(beyond, json!([]));
    let (status, problem) = get(&registry, "/api/v01/customers?limit=0").await;
    assert_eq!(status, 400);
    assert_eq!(problem["errors"][0]["field"], "limit");
}

#[tokio::test]
async fn a_rejected_body_writes_no_event() {
    let (registry, bootstrap, topic, _dir) = start("rejected-body");
    let bad_bodies = [
        json!({"firstName": "No Account"}),
        json!({"accountId": 0}),
        json!({"accountId": 3, "lastname": "typo"}),
        json!({"accountId": 3, "id": "0190a000-0000-7000-8000-000000000000"}),
        json!({"accountId": 3, "city": "x".repeat(51)}),
        json!([1, 2, 3]),
    ];
    for body in &bad_bodies {
        let (status, problem) = create(&registry, body).await;
        assert_eq!(status, 400, "{body} → {problem}");
        assert_eq!(problem["status"], 400);
    }
    let response = http()
        .put(registry.url("/api/v01/customers"))
        .header("content-type", "application/json")
        .body("{\"accountId\": 3,")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );

    let (status, good) = create(&registry, &json!({"accountId": 3})).await;
    assert_eq!(status, 201);
    let records = read_topic(&bootstrap, &topic);
    assert_eq!(
        records.len(),
        1,
        "only the valid create is on the topic: {records:?}"
    );
    assert_eq!(records[0].value["data"], common::as_created(&good));
}

#[tokio::test]
async fn validation_names_every_broken_field() {
    let (registry, _, _, _dir) = start("validation");
    let (status, problem) = create(
        &registry,
        &json!({"lastname": "typo", "email": "nope", "createdAt": "2020-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(status, 400);
    let fields: Vec<(&str, &str)> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["field"].as_str().unwrap(), e["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        fields,
        vec![
            ("accountId", "required"),
            ("lastname", "unknown_field"),
            ("email", "invalid_format"),
            ("createdAt", "server_assigned"),
        ]
    );
}

#[tokio::test]
async fn a_body_of_thousands_of_unknown_members_lists_a_hundred_errors_and_counts_the_rest() {
    let (registry, _, _, _dir) = start("many-errors");
    let mut body = serde_json::Map::new();
    body.insert("accountId".into(), json!(1));
    for n in 0..2_000 {
        body.insert(format!("unknown{n}"), json!("x"));
    }
    let (status, problem) = create(&registry, &Value::Object(body)).await;
    assert_eq!(status, 400);
    let errors = problem["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 100);
    assert_eq!(errors[0]["code"], "unknown_field");
    assert_eq!(problem["omittedErrors"], 1_900);
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.ends_with("and 1990 more"), "{detail}");

    // The same in XML, and a huge member name quoted in part.
    let mut body = serde_json::Map::new();
    body.insert("accountId".into(), json!(1));
    body.insert("a".repeat(20_000), json!("x"));
    for n in 0..150 {
        body.insert(format!("unknown{n}"), json!("x"));
    }
    let response = http()
        .put(registry.url("/api/v01/customers"))
        .header("accept", "application/xml")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let xml = response.text().await.unwrap();
    assert!(xml.contains("<omittedErrors>51</omittedErrors>"), "{xml}");
    assert!(xml.len() < 20_000, "the long name is not echoed whole");
    assert!(
        xml.contains(&format!("<field>{}…</field>", "a".repeat(64))),
        "{xml}"
    );

    let repeated = "accountId=1&city=a&city=b&city=c";
    let (status, problem) = get(&registry, &format!("/api/v01/customers?{repeated}")).await;
    assert_eq!(status, 400);
    assert_eq!(problem["errors"].as_array().unwrap().len(), 2, "{problem}");
    assert!(problem.get("omittedErrors").is_none(), "{problem}");
}

#[tokio::test]
async fn wrong_methods_and_paths_answer_problem_documents() {
    let (registry, _, _, _dir) = start("methods");
    let response = http()
        .delete(registry.url("/api/v01/customers"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(response.headers()["allow"], "GET, HEAD, PUT");
    let response = http()
        .put(registry.url(&format!("/api/v01/customers/{}", uuid::Uuid::now_v7())))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(
        response.headers()["allow"],
        "GET, HEAD, POST, PATCH, DELETE"
    );
    let (status, problem) = get(&registry, "/api/v02/customers").await;
    assert_eq!(status, 404);
    assert_eq!(problem["type"], "/problems/not-found");
    let response = http()
        .put(registry.url("/api/v01/customers"))
        .header("content-type", "application/json")
        .body(format!(
            "{{\"accountId\": 1, \"street\": \"{}\"}}",
            "x".repeat(70_000)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 413);
}

#[tokio::test]
async fn find_folds_case_and_accents_and_counts_the_total() {
    let (registry, _, _, _dir) = start("accents");
    for (first, last) in [
        ("José", "Müller"),
        ("Jose", "Muller"),
        ("Joséphine", "Mullins"),
        ("Ann", "Ødegård"),
    ] {
        let (status, body) = create(
            &registry,
            &json!({"accountId": 8, "firstName": first, "lastName": last}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    find_eventually(&registry, "/api/v01/customers", 4).await;
    let names = |customers: &Value| -> Vec<String> {
        customers
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["firstName"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, jose) = get(&registry, "/api/v01/customers?firstName=jose").await;
    assert_eq!(names(&jose), ["José", "Jose", "Joséphine"]);
    let (_, muller) = get(&registry, "/api/v01/customers?lastName=MULLER").await;
    assert_eq!(names(&muller), ["José", "Jose"]);
    let (_, umlaut) = get(
        &registry,
        "/api/v01/customers?accountId=8&lastName=m%C3%BCl",
    )
    .await;
    assert_eq!(names(&umlaut), ["José", "Jose", "Joséphine"]);

    let response = http()
        .get(registry.url("/api/v01/customers?accountId=8&firstName=jos&limit=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-total-count"], "3");
    let page: Value = response.json().await.unwrap();
    assert_eq!(names(&page), ["José"]);

    let head = http()
        .head(registry.url("/api/v01/customers"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status().as_u16(), 200);
    assert_eq!(head.headers()["x-total-count"], "4");
}
