//! The customers resource speaks JSON and XML, chosen by `Content-Type` and `Accept`, and every
//! status it answers comes as a problem document in the client's format.

use crate::common::{find_eventually, http, send, Answer, Registry};
use reqwest::Method;

/// Sends `method` `path` to `registry` with `headers` and `body`.
async fn send_to(
    registry: &Registry,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> Answer {
    let mut request = http().request(method, registry.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    send(request).await
}

/// The text of the first `<name>` element of an XML document.
fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{name}>"))? + name.len() + 2;
    let end = start + xml[start..].find(&format!("</{name}>"))?;
    Some(&xml[start..end])
}

/// The attribute `name` of a document's root element, read by an independent XML parser.
fn root_attribute(xml: &str, name: &str) -> String {
    let document = roxmltree::Document::parse(xml).expect("well-formed XML");
    let value = document.root_element().attribute(name);
    value
        .unwrap_or_else(|| panic!("no {name} in {xml}"))
        .to_owned()
}

const XML: &str = "application/xml";
const JSON: &str = "application/json";

#[tokio::test]
async fn xml_in_xml_out_and_unicode_survives_both_ways() {
    let (registry, _dir) = Registry::start_alone("xml-create");
    let body =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<customer>\n  <accountId>77</accountId>\n  \
                <firstName>Émile</firstName>\n  <lastName>Zoë &amp; Müller</lastName>\n  \
                <countryCode>fr</countryCode>\n</customer>";
    let created = send_to(
        &registry,
        Method::PUT,
        "/api/v01/customers",
        &[("content-type", XML), ("accept", XML)],
        Some(body.into()),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert!(
        created.header("content-type").starts_with(XML),
        "{}",
        created.header("content-type")
    );
    assert_eq!(element(&created.text, "firstName"), Some("Émile"));
    assert_eq!(element(&created.text, "lastName"), Some("Zoë &amp; Müller"));
    assert_eq!(element(&created.text, "countryCode"), Some("FR"));
    let id = root_attribute(&created.text, "id");
    assert!(
        created.headers.contains_key("x-request-id"),
        "every answer names its request"
    );
    assert_eq!(
        created.headers["location"],
        format!("/api/v01/customers/{id}").as_str()
    );

    let as_json = send_to(
        &registry,
        Method::GET,
        &format!("/api/v01/customers/{id}"),
        &[],
        None,
    )
    .await;
    assert_eq!(as_json.status, 200);
    assert_eq!(as_json.header("content-type"), JSON);
    let customer = &as_json.body;
    assert_eq!(customer["lastName"], "Zoë & Müller");

    let listed = send_to(
        &registry,
        Method::GET,
        "/api/v01/customers?firstName=emile",
        &[("accept", XML)],
        None,
    )
    .await;
    assert_eq!(listed.status, 200);
    assert!(
        listed.text.contains("<customers><customer id="),
        "{}",
        listed.text
    );
    let list = roxmltree::Document::parse(&listed.text).unwrap();
    let first = list.root_element().first_element_child().unwrap();
    assert_eq!(first.attribute("id"), Some(id.as_str()));
    assert_eq!(listed.headers["x-total-count"], "1");

    let text_xml = send_to(
        &registry,
        Method::PUT,
        "/api/v01/customers",
        &[("content-type", "text/xml; charset=utf-8")],
        Some("<customer><accountId>77</accountId></customer>".into()),
    )
    .await;
    assert_eq!(text_xml.status, 201, "{}", text_xml.text);
    assert_eq!(
        text_xml.header("content-type"),
        JSON,
        "JSON answers when Accept is absent"
    );
}

#[tokio::test]
async fn every_error_status_answers_a_problem_in_the_clients_format() {
    let (registry, _dir) = Registry::start_alone("problem-formats");
    let big = format!(
        "{{\"accountId\": 1, \"street\": \"{}\"}}",
        "x".repeat(70_000)
    );
    type Case<'a> = (
        u16,
        Method,
        &'a str,
        Vec<(&'a str, &'a str)>,
        Option<String>,
    );
    let cases: Vec<Case> = vec![
        (
            400,
            Method::PUT,
            "/api/v01/customers",
            vec![("content-type", JSON)],
            Some("{\"lastname\": 1}".into()),
        ),
        (
            400,
            Method::PUT,
            "/api/v01/customers",
            vec![("content-type", JSON)],
            Some("{\"accountId\": ".into()),
        ),
        (
            400,
            Method::PUT,
            "/api/v01/customers",
            vec![("content-type", XML)],
            Some("<customer><city>x</customer>".into()),
        ),
        (
            400,
            Method::GET,
            "/api/v01/customers?limit=5000",
            vec![],
            None,
        ),
        (
            404,
            Method::GET,
            "/api/v01/customers/0199a000-0000-7000-8000-000000000000",
            vec![],
            None,
        ),
        (404, Method::GET, "/api/v01/nothing-here", vec![], None),
        (405, Method::DELETE, "/api/v01/customers", vec![], None),
        (
            405,
            Method::PUT,
            "/api/v01/customers/0199a000-0000-7000-8000-000000000000",
            vec![],
            None,
        ),
        (
            413,
            Method::PUT,
            "/api/v01/customers",
            vec![("content-type", JSON)],
            Some(big),
        ),
        (
            415,
            Method::PUT,
            "/api/v01/customers",
            vec![("content-type", "text/plain")],
            Some("accountId=1".into()),
        ),
    ];
    for (status, method, path, headers, body) in cases {
        for accept in [JSON, XML] {
            let mut all_headers = headers.clone();
            all_headers.push(("accept", accept));
            let answer = send_to(&registry, method.clone(), path, &all_headers, body.clone()).await;
            let context = format!(
                "{method} {path} (Accept {accept}) → {} {}",
                answer.status, answer.text
            );
            assert_eq!(answer.status, status, "{context}");
            if accept == JSON {
                assert_eq!(
                    answer.header("content-type"),
                    "application/problem+json",
                    "{context}"
                );
                let problem = &answer.body;
                assert_eq!(problem["status"], status, "{context}");
                for member in ["type", "title", "detail"] {
                    assert!(problem[member].is_string(), "{member}: {context}");
                }
            } else {
                assert!(
                    answer
                        .header("content-type")
                        .starts_with("application/problem+xml"),
                    "{context}"
                );
                assert!(
                    answer
                        .text
                        .contains("<problem xmlns=\"urn:ietf:rfc:7807\">"),
                    "{context}"
                );
                assert_eq!(
                    element(&answer.text, "status"),
                    Some(status.to_string().as_str()),
                    "{context}"
                );
                assert!(element(&answer.text, "title").is_some(), "{context}");
            }
            if status == 405 {
                assert!(answer.headers.contains_key("allow"), "{context}");
            }
        }
    }
}

#[tokio::test]
async fn accept_that_allows_neither_format_is_406_in_json() {
    let (registry, _dir) = Registry::start_alone("not-acceptable");
    for (method, path) in [
        (Method::GET, "/api/v01/customers"),
        (Method::PUT, "/api/v01/customers"),
    ] {
        let answer = send_to(
            &registry,
            method,
            path,
            &[("accept", "text/html"), ("content-type", JSON)],
            Some("{\"accountId\": 1}".into()),
        )
        .await;
        assert_eq!(answer.status, 406, "{}", answer.text);
        assert_eq!(answer.header("content-type"), "application/problem+json");
    }
    let total = send_to(&registry, Method::GET, "/api/v01/customers", &[], None).await;
    assert_eq!(
        total.headers["x-total-count"], "0",
        "the refused create wrote nothing"
    );
}

#[tokio::test]
async fn other_charsets_broken_escapes_and_generous_q_values_are_read_as_promised() {
    let (registry, _dir) = Registry::start_alone("strict-input");
    let body = Some("{\"accountId\": 1}".to_owned());
    for (charset, status) in [("utf-16", 415), ("ISO-8859-1", 415), ("UTF-8", 201)] {
        let content_type = format!("application/json; charset={charset}");
        let answer = send_to(
            &registry,
            Method::PUT,
            "/api/v01/customers",
            &[("content-type", &content_type)],
            body.clone(),
        )
        .await;
        assert_eq!(answer.status, status, "{charset}: {}", answer.text);
    }

    let generous = send_to(
        &registry,
        Method::GET,
        "/api/v01/customers?accountId=1",
        &[("accept", "application/xml;q=2")],
        None,
    )
    .await;
    assert_eq!(generous.status, 200, "{}", generous.text);
    assert!(
        generous.header("content-type").starts_with(XML),
        "{}",
        generous.header("content-type")
    );

    for (content_type, body, status) in [
        (
            XML,
            "<customer><accountId>1</accountId><firstName>Unclosed",
            400,
        ),
        (
            XML,
            "<customer><accountId>1</accountId></customer><customer/>",
            400,
        ),
        (
            XML,
            "<customer a=\"1\" a=\"2\"><accountId>1</accountId></customer>",
            400,
        ),
        (
            JSON,
            "{\"accountId\": 1, \"firstName\": \"Bob\\u0085\"}",
            400,
        ),
        (
            JSON,
            "{\"accountId\": 1, \"lastName\": \"\\u202Egnp.exe\"}",
            400,
        ),
        (JSON, "{\"accountId\": 1, \"lastName\": \"\\u200B\"}", 201),
    ] {
        let answer = send_to(
            &registry,
            Method::PUT,
            "/api/v01/customers",
            &[("content-type", content_type)],
            Some(body.to_owned()),
        )
        .await;
        assert_eq!(answer.status, status, "{body}: {}", answer.text);
        if status == 201 {
            let customer = &answer.body;
            assert!(customer.get("lastName").is_none(), "blank: {customer}");
        }
    }

    for (query, field) in [
        ("firstName=%C3", "firstName"),
        ("lastName=%FF%FE", "lastName"),
        ("city=%", "city"),
        ("limit=%2B5", "limit"),
        ("limit=+5", "limit"),
    ] {
        let path = format!("/api/v01/customers?{query}");
        let answer = send_to(&registry, Method::GET, &path, &[], None).await;
        assert_eq!(answer.status, 400, "{query}: {}", answer.text);
        let problem = &answer.body;
        assert_eq!(problem["errors"][0]["field"], field, "{query}: {problem}");
    }
}

#[tokio::test]
async fn hostile_xml_is_refused_without_expanding_anything() {
    let (registry, _dir) = Registry::start_alone("hostile-xml");
    let billion_laughs = "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n <!ENTITY lol \"lol\">\n \
        <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n \
        <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n]>\n\
        <customer><accountId>1</accountId><city>&lol3;</city></customer>";
    let xxe = "<?xml version=\"1.0\"?>\n<!DOCTYPE customer [<!ENTITY secret SYSTEM \"file:///etc/passwd\">]>\n\
        <customer><accountId>1</accountId><city>&secret;</city></customer>";
    let undeclared = "<customer><accountId>1</accountId><city>&secret;</city></customer>";
    for body in [billion_laughs, xxe, undeclared] {
        let answer = send_to(
            &registry,
            Method::PUT,
            "/api/v01/customers",
            &[("content-type", XML), ("accept", XML)],
            Some(body.into()),
        )
        .await;
        assert_eq!(answer.status, 400, "{}", answer.text);
        assert!(
            !answer.text.contains("root:"),
            "nothing from the file system leaks"
        );
        let detail = element(&answer.text, "detail").unwrap();
        assert!(detail.contains("line "), "the problem says where: {detail}");
    }
    find_eventually(&registry, "/api/v01/customers", 0).await;
}

#[tokio::test]
async fn xml_validation_names_every_broken_field() {
    let (registry, _dir) = Registry::start_alone("xml-validation");
    let answer = send_to(
        &registry,
        Method::PUT,
        "/api/v01/customers",
        &[("content-type", XML), ("accept", XML)],
        Some(
            "<customer><accountId>abc</accountId><lastname>typo</lastname><email>nope</email>\
             <state>NYCX</state><city>Paris</city><city>Lyon</city></customer>"
                .into(),
        ),
    )
    .await;
    assert_eq!(answer.status, 400, "{}", answer.text);
    let fields: Vec<&str> = answer
        .text
        .split("<field>")
        .skip(1)
        .map(|rest| &rest[..rest.find("</field>").unwrap()])
        .collect();
    assert_eq!(
        fields,
        vec!["accountId", "lastname", "email", "state", "city"]
    );
}
