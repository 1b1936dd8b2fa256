//! The API's OpenAPI 3.1 document, built from the code that serves the API: one path item per
//! route of [`ROUTES`], one operation per method and [`Operation`] (`HEAD` where the table has
//! it), the text fields and their limits from the domain, the problem types with their statuses
//! and titles from [`ProblemType`], and every limit from its constant. What only prose can say
//! (what an operation does, why a check refuses) is written here, beside the schemas it explains.
//!
//! `docs/openapi.json` is a copy for tools that read a file (client generators); a test holds it
//! to [`document`].

mod answers;
mod erasures;
mod fields;
mod headers;
mod parameters;
mod problems;
mod reads;
mod records;
mod schemas;
mod service;
mod text;
mod writes;

use super::headers::{MAX_POSITION_HEADER, MAX_REQUEST_ID};
use super::negotiation::{Consumes, Format};
use super::problem::{challenge, ProblemType, ERRORS_LISTED};
use super::routes::{Operation, ROUTES};
use super::server::{DEFAULT_LISTEN, MAX_HEAD_BYTES};
use super::MAX_BODY_BYTES;
use answers::ProblemSchemas;
use serde_json::{json, Map, Value};
use std::sync::LazyLock;
use warp::http::Method;

/// The document as served: built once, pretty-printed, ending in a newline.
pub static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    let mut text = serde_json::to_string_pretty(&document()).expect("a document always serialises");
    text.push('\n');
    text
});

/// The OpenAPI 3.1 document of the API.
pub fn document() -> Value {
    let mut narrowed = ProblemSchemas::default();
    let responses = answers::shared_responses(&mut narrowed);
    let paths: Map<String, Value> = ROUTES
        .iter()
        .map(|route| {
            let mut item = Map::new();
            if route.path.contains("{customerId}") {
                item.insert(
                    "parameters".into(),
                    json!([reference("parameters", "CustomerId")]),
                );
            }
            if route.path.contains("{requestId}") {
                item.insert(
                    "parameters".into(),
                    json!([erasures::request_id_parameter()]),
                );
            }
            for (method, operation) in route.methods {
                let head = method == Method::HEAD;
                let described = describe(*operation, head, &mut narrowed);
                item.insert(method.as_str().to_ascii_lowercase(), described);
            }
            (route.path.to_owned(), Value::Object(item))
        })
        .collect();
    let mut schemas = schemas::components();
    schemas.extend(problems::components());
    schemas.extend(service::components());
    schemas.extend(records::components());
    schemas.extend(erasures::components());
    schemas.extend(schemas::body_components());
    schemas.extend(narrowed.into_schemas());
    json!({
        "openapi": "3.1.0",
        "info": info(),
        "servers": [{
            "url": format!("http://{DEFAULT_LISTEN}"),
            "description": "A registry serving on its default address (`serve` without \
                `--listen`, as scripts/run.sh starts it). Every replica answers the whole API; \
                point a client at the one it should use.",
        }],
        "security": [{"apiKey": []}],
        "tags": [
            {"name": "customers", "description": "The customers resource."},
            {"name": "admin", "description": "Operator endpoints (admin keys only)."},
            {"name": "probes", "description": "Liveness, readiness and metrics."},
            {"name": "meta", "description": "This document."},
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key from the key file (`customer-registry keys add`), \
                        sent as `Authorization: Bearer <key>`. Scoped to accounts, or admin. Keys \
                        are compared in constant time; the key's name is the `actor` of the events \
                        its requests cause.",
                }
            },
            "schemas": schemas,
            "parameters": parameters::components(),
            "headers": headers::components(),
            "responses": responses,
        },
    })
}

/// The operation `operation` as `HEAD` (`head`) or as its own method. Every operation that
/// needs an API key may be answered 429 at once: its key's share of the request slots is taken.
fn describe(operation: Operation, head: bool, problems: &mut ProblemSchemas) -> Value {
    let mut described = match operation {
        Operation::FindCustomers => reads::find(head, problems),
        Operation::CreateCustomer => writes::create(problems),
        Operation::GetCustomer => reads::get(head, problems),
        Operation::UpdateCustomer => writes::update(Consumes::Update, problems),
        Operation::PatchCustomer => writes::update(Consumes::MergePatch, problems),
        Operation::DeleteCustomer => writes::delete(problems),
        Operation::CustomerHistory => reads::history(head, problems),
        Operation::EraseCustomer => erasures::erase(problems),
        Operation::ErasureStatus => erasures::status(head, problems),
        Operation::ListRejectedEvents => service::rejected_events(head, problems),
        Operation::TakeSnapshot => service::snapshot(problems),
        Operation::OpenApiDocument => service::openapi(head, problems),
        Operation::Liveness => service::liveness(head),
        Operation::Readiness => service::readiness(head),
        Operation::Metrics => service::metrics(head, problems),
    };
    if described.get("security").is_none() {
        let too_many = problems
            .reply(
                &[ProblemType::TooManyRequests],
                "This API key (the Authorization value) already has --max-in-flight-per-key \
                 (default 128) requests in flight on this replica (Retry-After: 1).",
                head,
            )
            .header("Retry-After", headers::retry_after(None, None))
            .without_request_id()
            .build();
        described["responses"]["429"] = too_many;
    }
    described
}

fn info() -> Value {
    json!({
        "title": "customer-registry",
        "version": env!("CARGO_PKG_VERSION"),
        "summary": "An event-sourced customer registry: the customers resource of a payment \
            gateway's Management API.",
        "description": format!(
            "Creates append a `CustomerCreated` event to a Kafka topic (the source of truth); \
             finds and gets answer from a read model projected from it.\n\n\
             **Authentication.** Every API request carries `Authorization: Bearer <key>`; a key \
             is scoped to merchant accounts or is an admin key. The probes (`/healthz`, \
             `/readyz`) and this document need none; `/metrics` needs none from loopback \
             clients.\n\n\
             **Formats.** Every answer is JSON or XML by `Accept`: JSON is the default and \
             answers `*/*` and `application/*`; `application/xml`, `text/xml`, `text/*` or a \
             higher q-value for XML gives XML (`{xml}`); an `Accept` that allows neither is 406 \
             (a q-value above 1 reads as 1). XML uses the JSON names.\n\n\
             **Errors** are RFC 9457 problem documents, `{problem_json}`, or `{problem_xml}` \
             (root `<problem xmlns=\"urn:ietf:rfc:7807\">`, list items as `<i>`) when the client \
             prefers XML. Validation failures list every broken rule in `errors` (at most \
             {ERRORS_LISTED}; the rest counted in `omittedErrors`).\n\n\
             Problem types:\n{types}\n\nField-error codes:\n{codes}\n\n\
             **Request ids.** Every answer of the API operations (customers, admin), errors \
             included, carries `X-Request-Id`, except 503 overloaded / deadline-exceeded, 429 \
             too-many-requests, 408 body-timeout and the HTTP layer's own answers (400 \
             malformed-request for a request that is not well-formed HTTP/1.1, 431 \
             request-head-too-large, 414 uri-too-long), which are {problem_json} whatever \
             Accept says. The probes and a successful /metrics carry none.\n\n\
             **Methods.** A known API path asked with a method it does not route answers 405 \
             with `Allow` ({allow}).",
            xml = Format::Xml.content_type(),
            problem_json = Format::Json.problem_content_type(),
            problem_xml = Format::Xml.problem_content_type(),
            types = problems::types_table(),
            codes = problems::codes_table(),
            allow = allow_lists(),
        ),
    })
}

/// What a 405 lists in `Allow`, route by route: `GET, HEAD, PUT` on /api/v01/customers, ...
fn allow_lists() -> String {
    let api: Vec<_> = ROUTES
        .iter()
        .filter(|route| route.path.starts_with("/api/") && route.allow() != "GET, HEAD")
        .map(|route| format!("`{}` on {}", route.allow(), route.path))
        .collect();
    format!("{}, `GET, HEAD` on the others", api.join(", "))
}

/// A reference to the component `name` of `kind` (`schemas`, `parameters`, `responses`).
fn reference(kind: &str, name: &str) -> Value {
    json!({"$ref": format!("#/components/{kind}/{name}")})
}

/// A reference to the schema `name`.
fn schema(name: &str) -> Value {
    reference("schemas", name)
}

/// The content of an answer in each media type with its schema; a `HEAD` answer carries the
/// same `Content-Type` but no body, so no schema.
fn content(media: &[(&str, Value)], head: bool) -> Value {
    let content: Map<String, Value> = media
        .iter()
        .map(|(media_type, schema)| {
            let body = if head {
                json!({})
            } else {
                json!({"schema": schema})
            };
            ((*media_type).to_owned(), body)
        })
        .collect();
    Value::Object(content)
}

/// The customer, or another answer, in JSON and in XML.
fn either_format(schema_name: &str, head: bool) -> Value {
    content(
        &[
            (Format::Json.content_type(), schema(schema_name)),
            (Format::Xml.content_type(), schema(schema_name)),
        ],
        head,
    )
}

/// `n` with a comma between each group of three digits (10,000,000).
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut grouped = String::new();
    for (at, digit) in digits.chars().enumerate() {
        if at > 0 && (digits.len() - at) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CountryCode, CustomerDetails, FieldValue, TextField};

    /// Where the copy for tools lives.
    fn committed() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json")
    }

    #[test]
    fn the_committed_document_is_the_one_the_code_builds() {
        if std::env::var_os("OPENAPI_WRITE").is_some_and(|write| write == "1") {
            std::fs::write(committed(), &*DOCUMENT).expect("docs/openapi.json is writable");
        }
        let on_disk = std::fs::read_to_string(committed()).unwrap_or_default();
        assert!(
            on_disk == *DOCUMENT,
            "docs/openapi.json is not the document the code builds (served at \
             /api/v01/openapi.json); refresh it with \
             `OPENAPI_WRITE=1 cargo test --lib http::openapi` and commit it"
        );
    }

    #[test]
    fn every_reference_names_a_component() {
        fn references<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
            match value {
                Value::Object(members) => {
                    if let Some(Value::String(target)) = members.get("$ref") {
                        found.push(target);
                    }
                    members
                        .values()
                        .for_each(|member| references(member, found));
                }
                Value::Array(items) => items.iter().for_each(|item| references(item, found)),
                _ => {}
            }
        }
        let document = document();
        let mut found = Vec::new();
        references(&document, &mut found);
        assert!(found.len() > 100, "{}", found.len());
        for target in found {
            let pointer = target
                .strip_prefix('#')
                .expect("a reference within the document");
            assert!(
                document.pointer(pointer).is_some(),
                "{target} names nothing"
            );
        }
    }

    /// Every operation of the document, as (path, method, operation).
    fn operations(document: &Value) -> Vec<(String, String, Value)> {
        let mut found = Vec::new();
        for (path, item) in document["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("a path item") {
                if method != "parameters" {
                    found.push((path.clone(), method.clone(), operation.clone()));
                }
            }
        }
        found
    }

    #[test]
    fn every_answer_with_a_customer_gives_its_version_as_etag() {
        let document = document();
        let mut customers = 0;
        for (path, method, operation) in operations(&document) {
            for (status, response) in operation["responses"].as_object().expect("responses") {
                let json = &response["content"]["application/json"]["schema"]["$ref"];
                if json != "#/components/schemas/Customer" {
                    continue;
                }
                customers += 1;
                let etag = &response["headers"]["ETag"];
                assert_eq!(etag["required"], true, "{method} {path} {status}");
                assert_eq!(etag["schema"]["type"], "string");
            }
            if method == "head" {
                let get = &document["paths"][&path]["get"]["responses"]["200"]["headers"];
                assert_eq!(
                    operation["responses"]["200"]["headers"], *get,
                    "HEAD {path}"
                );
            }
        }
        assert_eq!(customers, 4, "create, get, update by POST and by PATCH");
    }

    #[test]
    fn post_and_patch_each_document_the_body_they_take() {
        let document = document();
        let item = &document["paths"]["/api/v01/customers/{customerId}"];
        let media = |method: &str| {
            let content = item[method]["requestBody"]["content"].as_object().unwrap();
            content
                .iter()
                .map(|(media, body)| (media.clone(), body["schema"]["$ref"].clone()))
                .collect::<Vec<_>>()
        };
        let schema = |name: &str| json!(format!("#/components/schemas/{name}"));
        assert_eq!(
            media("post"),
            [
                ("application/json".to_owned(), schema("CustomerUpdate")),
                ("application/xml".to_owned(), schema("CustomerUpdateXml")),
                ("text/xml".to_owned(), schema("CustomerUpdateXml")),
            ]
        );
        assert_eq!(
            media("patch"),
            [(
                "application/merge-patch+json".to_owned(),
                schema("CustomerMergePatch")
            )]
        );
    }

    /// A validator of the component schema `name`, its references resolved in the document.
    fn validator(name: &str) -> jsonschema::Validator {
        let mut root = document();
        root["$ref"] = json!(format!("#/components/schemas/{name}"));
        jsonschema::validator_for(&root).expect("the document's schemas are valid")
    }

    #[test]
    fn each_optional_text_member_is_one_string_null_only_in_a_merge_patch() {
        let document = document();
        for body in [
            "CustomerInput",
            "CustomerInputXmlElements",
            "CustomerInputXmlAttributes",
            "CustomerUpdate",
            "CustomerUpdateXml",
            "CustomerMergePatch",
            "Customer",
        ] {
            let properties = &document["components"]["schemas"][body]["properties"];
            let names = TextField::ALL.map(TextField::name);
            let creates = body.starts_with("CustomerInput");
            for name in names.iter().chain(creates.then_some(&"code")) {
                let member = &properties[*name];
                assert!(member.get("anyOf").is_none(), "{body}.{name}: {member}");
                let expected = if body == "CustomerMergePatch" {
                    json!(["string", "null"])
                } else {
                    json!("string")
                };
                assert_eq!(member["type"], expected, "{body}.{name}");
            }
        }
        let update = validator("CustomerUpdate");
        let merge_patch = validator("CustomerMergePatch");
        let cleared = json!({"phone": null});
        assert!(!update.is_valid(&cleared) && merge_patch.is_valid(&cleared));
        let blank = json!({"phone": ""});
        assert!(update.is_valid(&blank) && merge_patch.is_valid(&blank));
    }

    #[test]
    fn a_create_body_member_is_valid_as_the_server_takes_it() {
        let create = validator("CustomerInput");
        let long = "é".repeat(126);
        for (name, value, taken) in [
            ("firstName", " ", true),
            ("firstName", "\u{200B}\u{FEFF}", true),
            ("firstName", "Émile", true),
            ("firstName", "Bob\u{85}", false),
            ("lastName", long.as_str(), false),
            ("city", "", true),
            ("city", "x\u{2066}y", false),
            ("street", "\u{202E}", false),
            ("email", "emile@example.com", true),
            ("email", "plain", false),
            ("phone", "+1 (212) 555-0101", true),
            ("phone", "12+34", false),
            ("phone", "1234567890123456", false),
            ("state", " ny ", true),
            ("state", "N-Y", false),
            ("zipCode", "SW1A 1AA", true),
            ("zipCode", "--", false),
            ("countryCode", "us", true),
            ("countryCode", "UK", false),
            ("code", "ERP-000742", true),
            ("code", "ERP 742", false),
        ] {
            let fields = [
                ("accountId".to_owned(), FieldValue::Integer(42)),
                (name.to_owned(), FieldValue::Text(value.to_owned())),
            ];
            let server = CustomerDetails::parse(fields).is_ok();
            assert_eq!(server, taken, "the server on {name} {value:?}");
            let body = json!({"accountId": 42, name: value});
            assert_eq!(
                create.is_valid(&body),
                taken,
                "the schema on {name} {value:?}"
            );
        }
    }

    #[test]
    fn every_const_and_enum_says_its_type() {
        fn untyped(value: &Value, at: &str, found: &mut Vec<String>) {
            match value {
                Value::Object(members) => {
                    let fixed = members.contains_key("const") || members.contains_key("enum");
                    if fixed && !members.contains_key("type") {
                        found.push(at.to_owned());
                    }
                    for (name, member) in members {
                        if name != "examples" {
                            untyped(member, &format!("{at}/{name}"), found);
                        }
                    }
                }
                Value::Array(items) => {
                    for (index, item) in items.iter().enumerate() {
                        untyped(item, &format!("{at}/{index}"), found);
                    }
                }
                _ => {}
            }
        }
        let mut found = Vec::new();
        untyped(&document(), "", &mut found);
        assert!(found.is_empty(), "generators type these Any: {found:#?}");
    }

    #[test]
    fn a_country_code_filter_is_valid_as_the_server_takes_it() {
        let mut root = document();
        root["$ref"] = json!("#/components/parameters/CountryCodeFilter/schema");
        let filter = jsonschema::validator_for(&root).expect("a valid schema");
        let letters = ('A'..='Z').chain('a'..='z');
        for code in letters
            .clone()
            .flat_map(|a| letters.clone().map(move |b| format!("{a}{b}")))
        {
            let server = CountryCode::parse(&code).is_ok();
            assert_eq!(filter.is_valid(&json!(code)), server, "{code}");
        }
    }

    #[test]
    fn large_numbers_are_grouped_by_thousands() {
        assert_eq!(thousands(10_000_000), "10,000,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
    }
}
