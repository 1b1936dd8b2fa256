//! The customer's schemas: as answers carry it, and as create and update bodies send it, in
//! JSON and in XML.

use super::fields::{self, optional_text, Body};
use super::schema;
use super::text::{self, trimmed, MILLIS, UUID_LOWER};
use super::ERRORS_LISTED;
use crate::domain::{
    AccountId, CustomerCode, TextField, CODE_NAMESPACE, CUSTOMER_ID_NAMESPACE, SERVER_ASSIGNED,
};
use serde_json::{json, Map, Value};

/// The customer's schemas, by component name.
pub fn components() -> Map<String, Value> {
    let mut schemas = Map::new();
    schemas.insert("AccountId".into(), account_id());
    schemas.insert("Customer".into(), customer());
    schemas.insert("CustomerInput".into(), create_body());
    schemas.insert(
        "CustomerList".into(),
        json!({
            "type": "array",
            "description": "A page of customers in answer order (createdAt, then id). XML: \
                `<customers>` holding one `<customer>` per customer (`<customers/>` when empty).",
            "items": schema("Customer"),
            "xml": {"name": "customers", "wrapped": true},
        }),
    );
    schemas
}

/// The XML forms of the bodies and the update bodies, by component name.
pub fn body_components() -> Map<String, Value> {
    let mut schemas = Map::new();
    schemas.insert("CustomerInputXmlElements".into(), create_xml(false));
    schemas.insert("CustomerInputXmlAttributes".into(), create_xml(true));
    schemas.insert(
        "CustomerInputXml".into(),
        json!({
            "description": "A create body in XML: either form (elements, or the gateway's \
                attributes).",
            "oneOf": [schema("CustomerInputXmlElements"), schema("CustomerInputXmlAttributes")],
            "xml": {"name": "customer"},
        }),
    );
    schemas.insert("CustomerUpdate".into(), update_body());
    schemas.insert("CustomerUpdateXml".into(), update_xml());
    schemas.insert("CustomerMergePatch".into(), merge_patch());
    schemas
}

fn account_id() -> Value {
    json!({
        "type": "integer",
        "minimum": 1,
        "maximum": AccountId::MAX,
        "format": "int32",
        "description": "The merchant account the customer belongs to: a positive 32-bit \
            integer. In XML the element's text is read as an integer.",
    })
}

/// The members of a customer as answers carry them, in the order answers write them.
pub fn customer_properties() -> Map<String, Value> {
    let mut properties = Map::new();
    properties.insert(
        "id".into(),
        json!({
            "type": "string",
            "format": "uuid",
            "pattern": UUID_LOWER,
            "xml": {"attribute": true},
            "description": format!(
                "Server-assigned: for a create with a `code` a UUIDv5 derived from \
                 `<accountId>:<code>` (namespace {CODE_NAMESPACE}); otherwise a UUIDv7, or for a \
                 create with an Idempotency-Key a UUIDv5 derived from `<accountId>:<key>` \
                 (namespace {CUSTOMER_ID_NAMESPACE}). Lower-case hyphenated form. An attribute \
                 in XML."
            ),
        }),
    );
    properties.insert(
        "code".into(),
        json!({
            "type": "string",
            "pattern": format!("^{}$", text::code()),
            "xml": {"attribute": true},
            "description": "The merchant's own reference, unique per account and fixed at \
                create: the create's `code`, or the customer's id when it gave none. An \
                attribute in XML.",
        }),
    );
    properties.insert(
        "accountId".into(),
        json!({"$ref": "#/components/schemas/AccountId", "xml": {"attribute": true}}),
    );
    for field in TextField::ALL {
        properties.insert(field.name().into(), fields::stored(field));
    }
    properties.insert(
        "createdAt".into(),
        json!({
            "type": "string",
            "format": "date-time",
            "pattern": MILLIS,
            "description": "Server-assigned creation time: RFC 3339, UTC, exactly three \
                fractional digits (e.g. 2026-11-25T16:48:31.137Z).",
        }),
    );
    properties.insert(
        "updatedAt".into(),
        json!({
            "type": "string",
            "format": "date-time",
            "pattern": MILLIS,
            "description": "When the last change applied (equals createdAt until the first \
                update); same form as createdAt.",
        }),
    );
    properties.insert(
        "version".into(),
        json!({
            "type": "integer",
            "minimum": 1,
            "description": "1 after the create, one more per applied update or delete. Answers \
                carry it as `ETag: \"<version>\"`.",
        }),
    );
    properties
}

/// The customer the README's create makes, as answers show it.
fn example() -> Value {
    json!({
        "id": "a7331464-4ce4-581b-9532-a3c975e359b3",
        "code": "ERP-000742",
        "accountId": 42,
        "firstName": "Émile",
        "lastName": "Hamilton",
        "email": "emile@example.com",
        "phone": "+1 (212) 555-0101",
        "city": "New York",
        "state": "NY",
        "countryCode": "US",
        "createdAt": "2026-11-25T16:48:31.137Z",
        "updatedAt": "2026-11-25T16:48:31.137Z",
        "version": 1,
    })
}

fn customer() -> Value {
    json!({
        "type": "object",
        "description": "A registered customer. Members appear in this order: id, code, \
            accountId, each present optional field, createdAt, updatedAt, version. Absent \
            optional fields are omitted, never null. XML, as the gateway writes it: \
            `<customer id=\"…\" code=\"…\" accountId=\"42\">` with one child element per other \
            member, named as in JSON.",
        "required": ["id", "code", "accountId", "createdAt", "updatedAt", "version"],
        "properties": customer_properties(),
        "xml": {"name": "customer"},
        "examples": [example()],
    })
}

/// A create's `code`.
fn sent_code(body: Body) -> Value {
    let absent = match body {
        Body::CreateXml => "or an empty element",
        _ => "or null (an empty element in XML)",
    };
    optional_text(
        &trimmed(&text::code()),
        None,
        format!(
            "The merchant's own reference for the customer (an id in its own system), unique \
             per account, case-sensitive, fixed at create (`create_only` in updates). 1 to {} \
             characters, each an ASCII letter or digit or one of `-` `_` `.` `:` `/` \
             (`invalid_format`, `too_long`), trimmed first. An empty or blank value, {absent}, \
             leaves it out: the code is then the customer's id. A code another customer of the \
             account has (deleted ones included) is 409 /problems/duplicate-code.",
            CustomerCode::MAX_CHARS
        ),
        body,
    )
}

/// A create body's members, `code` and `accountId` first.
fn create_properties(body: Body) -> Map<String, Value> {
    let mut properties = Map::new();
    properties.insert("code".into(), sent_code(body));
    properties.insert("accountId".into(), schema("AccountId"));
    for field in TextField::ALL {
        properties.insert(field.name().into(), fields::sent(field, body));
    }
    properties
}

fn create_body() -> Value {
    let mut sent_example = example();
    let sent = sent_example
        .as_object_mut()
        .expect("the example is an object");
    sent.retain(|name, _| !SERVER_ASSIGNED.contains(&name.as_str()));
    json!({
        "type": "object",
        "description": format!(
            "What create takes: `accountId`, the optional `code` and the optional fields. JSON: \
             one object; its members are read in order, and every broken rule is reported \
             (`errors`, at most {ERRORS_LISTED}, the rest counted in `omittedErrors`). An empty \
             or blank value leaves a field out; so does null, which this schema leaves out so \
             that a generated client sends only the members it sets. XML: a \
             `<customer>` root element with one child element per field, named as in JSON, or \
             with `code` and `accountId` as its attributes; an empty element is null; no \
             DOCTYPE, only the five predefined entities and character references. `id`, \
             `createdAt`, `updatedAt` or `version` is `server_assigned`, any other member \
             `unknown_field`, a member given twice `repeated_field` (400 \
             /problems/validation-failed)."
        ),
        "required": ["accountId"],
        "additionalProperties": false,
        "properties": create_properties(Body::Create),
        "xml": {"name": "customer"},
        "examples": [sent_example],
    })
}

/// A create body in XML: every field an element, or (`attributes`) the gateway's form with
/// `code` and `accountId` as attributes of `<customer>`.
fn create_xml(attributes: bool) -> Value {
    let mut properties = create_properties(Body::CreateXml);
    let description = if attributes {
        for name in ["code", "accountId"] {
            properties[name]["xml"] = json!({"attribute": true});
        }
        "The gateway's XML form of CustomerInput: `code` and `accountId` as attributes of \
         `<customer>` (`<customer code=\"ERP-000742\" accountId=\"42\"><firstName>Émile\
         </firstName></customer>`), the other fields as child elements. The forms mix: each \
         field may be an attribute or an element, but one field given both ways, or twice, is \
         400 (`repeated_field`; a repeated attribute is malformed-request). `id` as an \
         attribute is `server_assigned`, like the element; another customer field as an \
         attribute of `<customer>` is 400 malformed-request; other attributes (`xmlns`, \
         `xml:lang`) are ignored."
    } else {
        "The XML form of CustomerInput with every field an element: a `<customer>` root element \
         with one child element per field, named as in JSON, in any order; an empty element \
         (`<city/>`, `<city></city>`) leaves the field out, as null does in JSON. \
         `<accountId>`'s text is read as an integer when it is one (otherwise `invalid_type`). \
         No DOCTYPE (no DTD, no external entities); only the five predefined entities and \
         character references are read; elements may not nest below a field, and text outside \
         field elements, a second root or another root name is 400 malformed-request."
    };
    json!({
        "type": "object",
        "description": description,
        "required": ["accountId"],
        "additionalProperties": false,
        "properties": properties,
        "xml": {"name": "customer"},
    })
}

/// An update body's members: the text fields.
fn update_properties(body: Body) -> Map<String, Value> {
    TextField::ALL
        .into_iter()
        .map(|field| (field.name().to_owned(), fields::sent(field, body)))
        .collect()
}

fn update_body() -> Value {
    json!({
        "type": "object",
        "description": "What an update by POST takes: the fields that change. A value replaces \
            the field, an empty or blank value clears it, a field not named is kept (the server \
            reads null as a blank value, as a merge patch does, but this schema leaves null out: \
            a client that sends every member it holds then never clears a field by not setting \
            it; PATCH takes a merge patch with null). Each value passes the same rules as in a \
            create. `accountId` and `code` are `create_only`; `id`, `createdAt`, `updatedAt` \
            and `version` are `server_assigned`; any other member `unknown_field`; a member \
            given twice `repeated_field` (400 /problems/validation-failed).",
        "additionalProperties": false,
        "properties": update_properties(Body::Update),
        "xml": {"name": "customer"},
        "examples": [{"email": "emile@hamilton-fils.example", "phone": ""}],
    })
}

fn update_xml() -> Value {
    json!({
        "type": "object",
        "description": "The XML form of CustomerUpdate: a `<customer>` root element with one \
            child element per field that changes; an empty element (`<phone/>`) clears the \
            field. The same XML rules as a create body.",
        "additionalProperties": false,
        "properties": update_properties(Body::UpdateXml),
        "xml": {"name": "customer"},
    })
}

fn merge_patch() -> Value {
    json!({
        "type": "object",
        "description": "What an update by PATCH takes: a JSON merge patch (RFC 7396) of the \
            fields that change. A value replaces the field, null (or a blank value) clears it, a \
            field not named is kept. Each value passes the same rules as in a create. \
            `accountId` and `code` are `create_only`; `id`, `createdAt`, `updatedAt` and \
            `version` are `server_assigned`; any other member `unknown_field`; a member given \
            twice `repeated_field` (400 /problems/validation-failed).",
        "additionalProperties": false,
        "properties": update_properties(Body::MergePatch),
        "examples": [{"email": "emile@hamilton-fils.example", "phone": null}],
    })
}
