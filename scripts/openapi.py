#!/usr/bin/env python3
"""Builds docs/openapi.json, the OpenAPI 3.1 document of customer-registry's HTTP API.

Run `python3 scripts/openapi.py docs/openapi.json` after changing the API; the Rust test
`http::tests::the_openapi_document_describes_exactly_the_routes` holds the document's paths and
methods to the routes, and scripts/contract.sh (schemathesis, in CI) holds the responses to it.
"""
import json
import re
import sys

OUT = sys.argv[1] if len(sys.argv) > 1 else "docs/openapi.json"

# ---------------------------------------------------------------------------------------------
# Character classes (regex text, valid in ECMA-262, Python `re` and Rust `regex`).
# ---------------------------------------------------------------------------------------------
# Control characters (Unicode Cc: C0, DEL, C1): refused anywhere in a value (`control_character`).
CTRL = r"\u0000-\u001F\u007F-\u009F"
# Bidi_Control characters: refused anywhere in a value that is not blank (`control_character`).
BIDI = r"\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069"
# White_Space that is not a control character: what trimming removes from an accepted value.
NW = r" \u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000"
# Format characters (Cf, BMP): invisible; a body value of only these and NW is blank.
CF = r"\u00AD\u0600-\u0605\u061C\u06DD\u070F\u0890\u0891\u08E2\u180E\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u206F\uFEFF\uFFF9-\uFFFB"

# Format characters that are not bidirectional controls: a value of only these and NW is blank.
CF_NOT_BIDI = r"\u00AD\u0600-\u0605\u06DD\u070F\u0890\u0891\u08E2\u180E\u200B-\u200D\u2060-\u2064\u206A-\u206F\uFEFF\uFFF9-\uFFFB"

# Blank (`domain::is_blank`): only White_Space that is not a control, and format characters that
# are not bidirectional controls. A blank body value leaves its field out; a blank filter is a 400.
BODY_BLANK = f"[{NW}{CF_NOT_BIDI}]*"
QUERY_BLANK = BODY_BLANK
# Unicode's noncharacters in the BMP: refused anywhere (`noncharacter`; XML cannot hold them).
NONCHAR = r"\uFDD0-\uFDEF\uFFFE\uFFFF"
NO_CTRL = f"[^{CTRL}{BIDI}{NONCHAR}]"
VISIBLE = f"[^{CTRL}{BIDI}{NONCHAR}{NW}{CF}]"

ASSIGNED_ALPHA_2 = """AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS
BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE
EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM
HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC
LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA
NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW
SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO
TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW""".split()
assert len(ASSIGNED_ALPHA_2) == 249

# An Idempotency-Key, on creates and on changes alike: 1 to 255 visible ASCII characters.
IDEMPOTENCY_KEY_SCHEMA = {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]{1,255}$"}
COUNTRY_ANY_CASE = "(?:" + "|".join(
    f"[{c[0]}{c[0].lower()}][{c[1]}{c[1].lower()}]" for c in ASSIGNED_ALPHA_2
) + ")"

PHONE_CORE = r"\+?[-. ()]*(?:[0-9][-. ()]*){1,15}"
STATE_CORE = r"[A-Za-z0-9]{1,3}"
ZIP_CORE = r"[-A-Za-z0-9 ]*[A-Za-z0-9][-A-Za-z0-9 ]*"
ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
CODE_CORE = r"[A-Za-z0-9._:/-]{1,60}"
EMAIL_CORE = ATEXT + "{1,32}(?:\\." + ATEXT + "{1,15}){0,2}@" + LABEL + "(?:\\." + LABEL + ")+"


def anchored(*alternatives):
    return "^(?:" + "|".join(alternatives) + ")$"


def trimmed(core):
    return f"[{NW}]*{core}[{NW}]*"


def non_blank(schema):
    """A schema whose pattern is `anchored(BODY_BLANK, core)`, without the blank alternative: a
    find filter must hold something (an empty or blank one is a 400 `empty`)."""
    schema = dict(schema)
    prefix = "^(?:" + BODY_BLANK + "|"
    assert schema["pattern"].startswith(prefix), schema["pattern"]
    schema["pattern"] = "^(?:" + schema["pattern"][len(prefix):]
    return schema


def blank_or(schema):
    """Splits a schema whose pattern is `anchored(BODY_BLANK, core)` in two: a blank value is
    accepted whatever its length (it is no value), and the length bounds apply to the rest."""
    schema = dict(schema)
    pattern = schema.pop("pattern")
    prefix = "^(?:" + BODY_BLANK + "|"
    assert pattern.startswith(prefix), pattern
    core = "^(?:" + pattern[len(prefix):]
    types = schema.pop("type")
    description = schema.pop("description", None)
    alternatives = [{"type": "null"}] if isinstance(types, list) and "null" in types else []
    alternatives.append({"type": "string", "pattern": f"^{BODY_BLANK}$"})
    alternatives.append({"type": "string", "pattern": core, **schema})
    split = {"anyOf": alternatives}
    if description:
        split["description"] = description
    return split


# ---------------------------------------------------------------------------------------------
# Problem types and field-error codes.
# ---------------------------------------------------------------------------------------------
PROBLEM_TYPES = [
    ("/problems/validation-failed", 400, "The request broke validation rules (fields, query parameters or the Idempotency-Key / X-Min-Log-Position headers); `errors` names each."),
    ("/problems/malformed-request", 400, "The body is not well-formed JSON or XML (the detail gives line and column), is not a JSON object / `<customer>` document, carries a DOCTYPE or an unknown entity, or the connection broke while it streamed in. Also the HTTP layer's answer (any path; application/problem+json only, no X-Request-Id, connection closed) to a request that is not well-formed HTTP/1.1: a broken request line or header, a Content-Length that is not a number or is given twice with different values; an HTTP/1.1 request without exactly one Host header."),
    ("/problems/unauthorized", 401, "No valid API key: missing, not `Bearer <key>`, unknown or revoked."),
    ("/problems/forbidden", 403, "The API key's scope does not reach the account (or the admin endpoint, or /metrics from a non-loopback client)."),
    ("/problems/not-found", 404, "No such customer (or one of an account the key does not reach), or no resource at the path."),
    ("/problems/method-not-allowed", 405, "A known path with a method it does not route; `Allow` lists the methods. (Not produced by any documented operation.)"),
    ("/problems/not-acceptable", 406, "`Accept` allows neither JSON nor XML. Always answered as application/problem+json."),
    ("/problems/uri-too-long", 414, "The HTTP layer's answer to an over-long URI (application/problem+json only, no X-Request-Id). Not reachable in practice: a head over 16 KiB is refused first with 431."),
    ("/problems/request-head-too-large", 431, "The HTTP layer's answer (any path) to a request line and headers, query string included, larger than 16384 bytes: application/problem+json only, no X-Request-Id, connection closed."),
    ("/problems/payload-too-large", 413, "The create body is over 65536 bytes (by Content-Length, or while it streams in)."),
    ("/problems/unsupported-media-type", 415, "The create body's Content-Type is not application/json, application/xml or text/xml, or names a charset other than UTF-8."),
    ("/problems/duplicate-code", 409, "Another customer of the account has the create's `code` (a deleted customer keeps its code): `customerId` and `Location` name it, and `errors` holds one `duplicate_code` error of field `code`."),
    ("/problems/idempotency-key-reused", 422, "The Idempotency-Key already created a customer in this account with other details, or made another change to this customer."),
    ("/problems/version-mismatch", 412, "An update or delete with `If-Match` found the customer at another version (or another change took that version first); `currentVersion` and the `ETag` header give the version it is at."),
    ("/problems/contended", 503, "An update or delete without `If-Match` lost the race for the customer's next version 32 times in a row, each retry after a random pause of up to 40 ms (Retry-After: 1)."),
    ("/problems/change-pending", 503, "The update or delete is in the log, but this replica did not apply it within --projection-wait-ms, so its outcome is not known here; `X-Log-Position` includes it (Retry-After: 1). Read the customer with it as X-Min-Log-Position to learn the outcome."),
    ("/problems/query-too-broad", 422, "The find would need more than MAX_WORK (10,000,000 units); `errors` names its filters (and offset) with code `query_too_broad`."),
    ("/problems/read-model-failure", 500, "The read model (sled) failed."),
    ("/problems/internal-error", 500, "A worker task was cancelled (find, history or listing)."),
    ("/problems/event-log-unavailable", 503, "Kafka did not confirm the create (Retry-After: 5). The detail says whether the outcome is unknown; retry with the same Idempotency-Key."),
    ("/problems/not-enough-replicas", 503, "The event's partition has fewer in-sync replicas that answer than the topic's min.insync.replicas, so Kafka cannot acknowledge a write (two of three brokers down): refused at once, nothing written, or found after a send that failed, when the detail says the outcome is unknown (Retry-After: 5). Retry with the same Idempotency-Key; reads keep answering."),
    ("/problems/event-log-unreadable", 503, "A customer's records could not be read back from Kafka (Retry-After: 5)."),
    ("/problems/catching-up", 503, "The replica is still replaying the log it saw at start (Retry-After: 1)."),
    ("/problems/replica-behind", 503, "The replica did not reach X-Min-Log-Position within --projection-wait-ms, or, for a create with an Idempotency-Key or a code, the end of the customer's partition it decides on (Retry-After: 1)."),
    ("/problems/history-busy", 503, "HISTORY_READERS (4) history reads are already running, or 2 of them for customers of the same account (Retry-After: 1)."),
    ("/problems/overloaded", 503, "Load shedding: --max-in-flight requests are already being answered (Retry-After: 1). Never for /healthz, /readyz, /metrics. Carries no X-Request-Id."),
    ("/problems/too-many-requests", 429, "One API key's share of the request slots is taken: --max-in-flight-per-key (128) requests carrying its Authorization value are in flight on this replica (Retry-After: 1). Carries no X-Request-Id."),
    ("/problems/body-timeout", 408, "The request body did not arrive whole within --body-read-timeout-ms of its head (the connection is closed). Bodies are read before the request takes one of --max-in-flight slots, so a slow body holds only its own connection."),
    ("/problems/deadline-exceeded", 503, "The request was not answered within --request-deadline-ms (Retry-After: 1). Carries no X-Request-Id."),
]

FIELD_ERROR_CODES = [
    ("required", "`accountId` is missing (or null) in a create body."),
    ("invalid_type", "Wrong JSON type for a field (accountId not an integer, a text field not a string); a find/listing count (`offset`, `limit`) that is not digits only, or an `accountId` filter that is not an integer."),
    ("out_of_range", "`accountId` outside 1..=2147483647; `limit` outside 1..=1000; `offset` larger than the platform's usize."),
    ("too_long", "A value longer than its field allows (characters after trimming and NFC; phone: more than 15 digits or 30 characters); an X-Min-Log-Position over 8192 bytes."),
    ("invalid_format", "A value that breaks its field's format (email, phone, state, zipCode, countryCode); a find filter that folds to nothing; a query parameter that is not well-formed percent-encoded UTF-8; an Idempotency-Key that is not 1-255 visible ASCII characters, or is sent twice; an X-Min-Log-Position that is not `partition:offset` pairs or holds non-ASCII bytes."),
    ("empty", "A find filter (`accountId`, `code` or a text field) given with an empty or blank value: leave the parameter out not to filter by it."),
    ("noncharacter", "A value holding a Unicode noncharacter (U+FFFE, U+FFFF, U+FDD0-U+FDEF, the last two code points of every plane): no text holds them, and XML cannot."),
    ("control_character", "A value holding a control character (C0, DEL, C1, anywhere) or a bidirectional control (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069)."),
    ("unknown_field", "A create or update body member that is not a Customer field (e.g. a typo such as `lastname`); the name is quoted up to 64 characters."),
    ("repeated_field", "A create or update body member given twice."),
    ("create_only", "`accountId` or `code` sent in an update body: both are fixed when the customer is created."),
    ("duplicate_code", "In a 409 /problems/duplicate-code: the account has a customer with this code."),
    ("server_assigned", "`id`, `createdAt`, `updatedAt` or `version` sent in a body."),
    ("unknown_parameter", "A query parameter the find or listing does not take."),
    ("repeated_parameter", "A query parameter given twice."),
    ("unknown_partition", "X-Min-Log-Position names a partition the topic does not have (as known to this replica)."),
    ("beyond_log_end", "X-Min-Log-Position names an offset past its partition's end now: no write was acknowledged there, so no wait could reach it."),
    ("query_too_broad", "In a 422 /problems/query-too-broad: each parameter that shapes the refused find."),
]


def codes_table():
    return "\n".join(f"- `{code}`: {text}" for code, text in FIELD_ERROR_CODES)


def types_table():
    return "\n".join(f"- `{t}` ({s}): {text}" for t, s, text in PROBLEM_TYPES)


# ---------------------------------------------------------------------------------------------
# Media types.
# ---------------------------------------------------------------------------------------------
JSON = "application/json"
XML = "application/xml; charset=utf-8"
PJSON = "application/problem+json"
PXML = "application/problem+xml; charset=utf-8"
METRICS = "text/plain; version=0.0.4; charset=utf-8"


def ref(kind, name):
    return {"$ref": f"#/components/{kind}/{name}"}


def sref(name):
    return ref("schemas", name)


# ---------------------------------------------------------------------------------------------
# Schemas.
# ---------------------------------------------------------------------------------------------
UUID_LOWER = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
MILLIS = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$"

TEXT_FIELDS = [
    # name, max chars, description
    ("firstName", 125, "Given name."),
    ("lastName", 125, "Family name."),
    ("organizationName", 255, "Company name."),
    ("email", 100, "Email address."),
    ("phone", 30, "Phone number, kept as given."),
    ("street", 128, "Street of the mailing address."),
    ("city", 50, "City of the mailing address."),
    ("state", 3, "State code of the mailing address, stored upper-case."),
    ("zipCode", 10, "ZIP or postal code of the mailing address."),
    ("countryCode", 2, "Country code of the mailing address (ISO 3166-1 alpha-2), stored upper-case."),
]


def stored_text(name, max_chars, description):
    """A field as the service answers it (trimmed, NFC, valid)."""
    base = {"type": "string", "description": description}
    if name == "email":
        base.update(minLength=3, maxLength=100, pattern=r"^[\s\S]+@[^@]+\.[^@]+$",
                    description=description + " At most 100 characters; an address `local@domain.tld` (RFC 5322 syntax: a dot-atom or quoted local part of at most 64 bytes, Unicode allowed; a domain of at least two labels, each starting and ending with a letter or digit; no display name, no IP literal).")
    elif name == "phone":
        base.update(minLength=1, maxLength=30, pattern=r"^\+?[-. ()0-9]*[0-9][-. ()0-9]*$",
                    description=description + " 1 to 15 digits, with a leading `+`, spaces, `-`, `.`, `(` and `)` as formatting; at most 30 characters in all.")
    elif name == "state":
        base.update(pattern="^[A-Z0-9]{1,3}$", description=description + " 1 to 3 ASCII letters or digits.")
    elif name == "zipCode":
        base.update(minLength=1, maxLength=10, pattern=r"^[-A-Za-z0-9 ]*[A-Za-z0-9][-A-Za-z0-9 ]*$",
                    description=description + " At most 10 ASCII letters, digits, spaces or dashes, at least one a letter or digit.")
    elif name == "countryCode":
        base.update(enum=ASSIGNED_ALPHA_2, description=description + " One of the 249 officially assigned codes.")
    else:
        base.update(minLength=1, maxLength=max_chars, pattern=f"^{NO_CTRL}+$",
                    description=description + f" 1 to {max_chars} characters (Unicode scalar values after NFC), no control or bidirectional-control characters.")
    return base


def input_text(name, max_chars, description):
    """A field as create takes it: null or blank leaves it out; otherwise trimmed, NFC, checked."""
    common = (" An empty or blank value (only spaces and invisible format characters), or null (an empty"
              " element in XML), leaves the field out. Otherwise the value is trimmed (Unicode White_Space)"
              " and NFC-normalised, then checked; a control character anywhere (C0, DEL, C1, even at the"
              " ends) or a bidirectional control is `control_character`.")
    base = {"type": ["string", "null"]}
    if name == "email":
        base.update(maxLength=100, pattern=anchored(BODY_BLANK, trimmed(EMAIL_CORE)),
                    description=description + " At most 100 characters (`too_long`); an address `local@domain.tld` in RFC 5322 syntax (a dot-atom or quoted local part of at most 64 bytes, Unicode allowed; a domain of at least two labels, each starting and ending with a letter or digit); no display name, no IP literal (`invalid_format`). The pattern describes plain ASCII dot-atom addresses, which are always accepted; the service also takes quoted local parts and non-ASCII letters." + common)
    elif name == "phone":
        base.update(maxLength=30, pattern=anchored(BODY_BLANK, trimmed(PHONE_CORE)),
                    description=description + " Digits with a leading `+`, spaces, `-`, `.`, `(`, `)` as formatting, at least one digit (`invalid_format`); at most 15 digits and 30 characters in all (`too_long`). Kept as given (trimmed)." + common)
    elif name == "state":
        base.update(pattern=anchored(BODY_BLANK, trimmed(STATE_CORE)),
                    description=description + " 1 to 3 ASCII letters or digits (`invalid_format`; more than 3 characters is `too_long`), any case, stored upper-case." + common)
    elif name == "zipCode":
        base.update(maxLength=10, pattern=anchored(BODY_BLANK, trimmed(ZIP_CORE)),
                    description=description + " At most 10 characters (`too_long`) of ASCII letters, digits, spaces and dashes, at least one a letter or digit (`invalid_format`)." + common)
    elif name == "countryCode":
        base.update(pattern=anchored(BODY_BLANK, trimmed(COUNTRY_ANY_CASE)),
                    description=description + " An officially assigned ISO 3166-1 alpha-2 code in any case, stored upper-case; anything else (user-assigned codes such as XK, reserved ones such as UK, control characters) is `invalid_format`." + common)
    else:
        base.update(maxLength=max_chars, pattern=anchored(BODY_BLANK, f"{NO_CTRL}*"),
                    description=description + f" At most {max_chars} characters after trimming and NFC (`too_long`)." + common)
    return blank_or(base)


ATTRIBUTE = {"attribute": True}
customer_props = {
    "id": {"type": "string", "format": "uuid", "pattern": UUID_LOWER, "xml": ATTRIBUTE,
           "description": "Server-assigned: for a create with a `code` a UUIDv5 derived from `<accountId>:<code>` (namespace 23b3cf7b-500f-4ceb-9f3c-07117454bf87); otherwise a UUIDv7, or for a create with an Idempotency-Key a UUIDv5 derived from `<accountId>:<key>` (namespace 91a98d00-5cd8-4c03-9149-cfde498e7572). Lower-case hyphenated form. An attribute in XML."},
    "code": {"type": "string", "pattern": f"^{CODE_CORE}$", "xml": ATTRIBUTE,
             "description": "The merchant's own reference, unique per account and fixed at create: the create's `code`, or the customer's id when it gave none. An attribute in XML."},
    "accountId": {"$ref": "#/components/schemas/AccountId", "xml": ATTRIBUTE},
}
for n, m, d in TEXT_FIELDS:
    customer_props[n] = stored_text(n, m, d)
customer_props["createdAt"] = {
    "type": "string", "format": "date-time", "pattern": MILLIS,
    "description": "Server-assigned creation time: RFC 3339, UTC, exactly three fractional digits (e.g. 2026-11-25T16:48:31.137Z).",
}
customer_props["updatedAt"] = {
    "type": "string", "format": "date-time", "pattern": MILLIS,
    "description": "When the last change applied (equals createdAt until the first update); same form as createdAt.",
}
customer_props["version"] = {
    "type": "integer", "minimum": 1,
    "description": "1 after the create, one more per applied update or delete. Answers carry it as `ETag: \"<version>\"`.",
}

input_props = {
    "code": blank_or({
        "type": ["string", "null"], "pattern": anchored(BODY_BLANK, trimmed(CODE_CORE)),
        "description": (
            "The merchant's own reference for the customer (an id in its own system), unique per account, case-sensitive, fixed at create "
            "(`create_only` in updates). 1 to 60 characters, each an ASCII letter or digit or one of `-` `_` `.` `:` `/` (`invalid_format`, `too_long`), "
            "trimmed first. An empty or blank value, or null (an empty element in XML), leaves it out: the code is then the customer's id. "
            "A code another customer of the account has (deleted ones included) is 409 /problems/duplicate-code."
        ),
    }),
    "accountId": sref("AccountId"),
}
for n, m, d in TEXT_FIELDS:
    input_props[n] = input_text(n, m, d)

def event_schema(event_type, where, data):
    """An event as published: the envelope around `data`."""
    return {
        "type": "object",
        "description": f"A `{event_type}` v1 event as published ({where}).",
        "required": ["eventId", "eventType", "schemaVersion", "occurredAt", "data"],
        "properties": {
            "eventId": {"type": "string", "format": "uuid", "pattern": UUID_LOWER},
            "eventType": {"const": event_type},
            "schemaVersion": {"const": 1},
            "occurredAt": {"type": "string", "format": "date-time", "pattern": MILLIS},
            "requestId": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[!-~]+$"},
            "actor": {"type": "string", "minLength": 1},
            "data": data,
        },
    }


def change_data(with_changes):
    """`data` of CustomerUpdated (with `changes`) or CustomerDeleted."""
    properties = {
        "id": {"type": "string", "format": "uuid", "pattern": UUID_LOWER},
        "accountId": sref("AccountId"),
        "version": {"type": "integer", "minimum": 2},
    }
    required = ["id", "accountId", "version"]
    if with_changes:
        properties["changes"] = {"type": "object", "minProperties": 1,
                                 "description": "A JSON merge patch of the customer: each changed field's new value, or null when cleared."}
        required.append("changes")
    return {"type": "object", "required": required, "properties": properties}


schemas = {
    "AccountId": {
        "type": "integer", "minimum": 1, "maximum": 2147483647, "format": "int32",
        "description": "The merchant account the customer belongs to: a positive 32-bit integer. In XML the element's text is read as an integer.",
    },
    "Customer": {
        "type": "object",
        "description": "A registered customer. Members appear in this order: id, code, accountId, each present optional field, createdAt, updatedAt, version. Absent optional fields are omitted, never null. XML, as the gateway writes it: `<customer id=\"…\" code=\"…\" accountId=\"42\">` with one child element per other member, named as in JSON.",
        "required": ["id", "code", "accountId", "createdAt", "updatedAt", "version"],
        "properties": customer_props,
        "xml": {"name": "customer"},
        "examples": [{
            "id": "a7331464-4ce4-581b-9532-a3c975e359b3", "code": "ERP-000742", "accountId": 42, "firstName": "Émile",
            "lastName": "Hamilton", "email": "emile@example.com", "phone": "+1 (212) 555-0101",
            "city": "New York", "state": "NY", "countryCode": "US", "createdAt": "2026-11-25T16:48:31.137Z",
            "updatedAt": "2026-11-25T16:48:31.137Z", "version": 1,
        }],
    },
    "CustomerInput": {
        "type": "object",
        "description": (
            "What create takes: `accountId`, the optional `code` and the optional fields. JSON: one object; its members are read in order, "
            "and every broken rule is reported (`errors`, at most 100, the rest counted in `omittedErrors`). "
            "XML: a `<customer>` root element with one child element per field, named as in JSON, or with `code` and `accountId` as its attributes; an empty element is null; "
            "no DOCTYPE, only the five predefined entities and character references. "
            "`id`, `createdAt`, `updatedAt` or `version` is `server_assigned`, any other member `unknown_field`, a member given twice `repeated_field` (400 /problems/validation-failed)."
        ),
        "required": ["accountId"],
        "additionalProperties": False,
        "properties": input_props,
        "xml": {"name": "customer"},
        "examples": [{
            "code": "ERP-000742", "accountId": 42, "firstName": "Émile", "lastName": "Hamilton", "email": "emile@example.com",
            "phone": "+1 (212) 555-0101", "city": "New York", "state": "NY", "countryCode": "US",
        }],
    },
    "CustomerList": {
        "type": "array",
        "description": "A page of customers in answer order (createdAt, then id). XML: `<customers>` holding one `<customer>` per customer (`<customers/>` when empty).",
        "items": sref("Customer"),
        "xml": {"name": "customers", "wrapped": True},
    },
    "FieldError": {
        "type": "object",
        "description": "One broken rule. XML: an `<i>` element of `<errors>` with `<field>`, `<code>`, `<message>`.\n\nCodes:\n" + codes_table(),
        "required": ["field", "code", "message"],
        "additionalProperties": False,
        "properties": {
            "field": {"type": "string", "description": "The field, query parameter or header as the client spelled it (a name the client sent is quoted up to 64 characters, then `…`), e.g. `lastName`, `limit`, `Idempotency-Key`, `X-Min-Log-Position`."},
            "code": {"type": "string", "enum": [c for c, _ in FIELD_ERROR_CODES]},
            "message": {"type": "string", "description": "What was wrong, in words."},
        },
    },
    "Problem": {
        "type": "object",
        "description": "An RFC 9457 problem document. JSON: application/problem+json. XML: application/problem+xml; charset=utf-8, root `<problem xmlns=\"urn:ietf:rfc:7807\">`, array items as `<i>`.\n\nTypes:\n" + types_table(),
        "required": ["type", "title", "status", "detail"],
        "additionalProperties": False,
        "properties": {
            "type": {"type": "string", "format": "uri-reference", "enum": [t for t, _, _ in PROBLEM_TYPES],
                     "description": "The problem's type, relative to the API's host."},
            "title": {"type": "string", "description": "Fixed per type."},
            "status": {"type": "integer", "minimum": 400, "maximum": 599, "description": "The HTTP status."},
            "detail": {"type": "string", "description": "What went wrong, for a person."},
            "errors": {
                "type": "array", "maxItems": 100,
                "description": "Validation failures (and query_too_broad): every broken rule, in the order checked; at most the first 100.",
                "items": {"$ref": "#/components/schemas/FieldError", "xml": {"name": "i"}},
                "xml": {"wrapped": True},
            },
            "omittedErrors": {"type": "integer", "minimum": 1, "description": "How many errors past the first 100 were left out of `errors`."},
            "currentVersion": {"type": "integer", "minimum": 1, "description": "In a 412 /problems/version-mismatch: the version the customer is at."},
            "customerId": {"type": "string", "format": "uuid", "pattern": UUID_LOWER, "description": "In a 409 /problems/duplicate-code: the customer that has the code."},
        },
        "xml": {"name": "problem", "namespace": "urn:ietf:rfc:7807"},
    },
    "Liveness": {
        "type": "object",
        "required": ["status"],
        "additionalProperties": False,
        "properties": {"status": {"const": "alive"}},
        "examples": [{"status": "alive"}],
    },
    "Readiness": {
        "type": "object",
        "description": "The readiness verdict (checked in the background every second; a verdict older than 10 s counts as not ready).",
        "required": ["ready"],
        "additionalProperties": False,
        "properties": {
            "ready": {"type": "boolean"},
            "reason": {"type": "string", "description": "Why not ready, for a person (e.g. `not checked yet`, `catching up with the log after a restart`, `the event log cannot be reached: ...`, `the projection trails the log by N records (at most M)`, `the readiness check has not run for over 10 s`). Absent when ready."},
            "lag": {"type": "integer", "minimum": 0, "description": "Records of the log not yet applied, summed over partitions; absent when the log's end is not known."},
        },
        "examples": [{"ready": True, "lag": 0}],
    },
    "CustomerCreatedEvent": event_schema("CustomerCreated", "events/customer-created.v1.schema.json. Consumers ignore members they do not know", sref("CreatedCustomer")),
    "CreatedCustomer": {
        "type": "object",
        "description": "A customer as `CustomerCreated` carries it: a Customer without `updatedAt` and `version` (a created customer's are its createdAt and 1).",
        "required": ["id", "accountId", "createdAt"],
        "properties": {n: v for n, v in customer_props.items() if n not in ("updatedAt", "version")},
    },
    "CustomerUpdatedEvent": event_schema("CustomerUpdated", "events/customer-updated.v1.schema.json", change_data(True)),
    "CustomerDeletedEvent": event_schema("CustomerDeleted", "events/customer-deleted.v1.schema.json", change_data(False)),
    "HistoryRecord": {
        "type": "object",
        "description": "One record of the log that built the customer, as it sits in Kafka (JSON form).",
        "required": ["partition", "offset", "timestamp", "key", "headers", "event"],
        "additionalProperties": False,
        "properties": {
            "partition": {"type": "integer", "minimum": 0, "format": "int32"},
            "offset": {"type": "integer", "minimum": 0, "format": "int64"},
            "timestamp": {"type": ["string", "null"], "format": "date-time",
                          "pattern": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{3})?Z$",
                          "description": "When Kafka says it was written (UTC; milliseconds shown unless zero); null when the record has none."},
            "key": {"type": ["string", "null"], "description": "The record key as text (the customer id); null when the record has none."},
            "headers": {"type": "object", "additionalProperties": {"type": "string"},
                        "description": "The record's headers, name to value (event-type, schema-version, content-type, the CloudEvents ce_* attributes; idempotency-key and request-digest on a change made with an Idempotency-Key)."},
            "event": {
                "description": "The record's value as published: the event's JSON; the bytes as text when they are not JSON; null when there is no value.",
                "anyOf": [sref("CustomerCreatedEvent"), sref("CustomerUpdatedEvent"), sref("CustomerDeletedEvent"), {"type": "string"}, {"type": "null"}],
            },
        },
        "xml": {"name": "record"},
    },
    "HistoryRecordList": {
        "type": "array",
        "description": "The records that built the customer, in log order (JSON form).",
        "items": sref("HistoryRecord"),
    },
    "HistoryRecordXml": {
        "type": "object",
        "description": "One record in the XML form: `<record>` with `<partition>`, `<offset>`, `<timestamp>` (omitted when Kafka has none), `<key>` (omitted when none) and `<value>`, the value as published (JSON text).",
        "required": ["partition", "offset", "value"],
        "additionalProperties": False,
        "properties": {
            "partition": {"type": "integer", "minimum": 0},
            "offset": {"type": "integer", "minimum": 0},
            "timestamp": {"type": "string", "format": "date-time", "pattern": MILLIS,
                          "description": "RFC 3339, UTC, three fractional digits."},
            "key": {"type": "string"},
            "value": {"type": "string", "description": "The record's value as JSON text (`null` when it has none)."},
        },
        "xml": {"name": "record"},
    },
    "HistoryRecordXmlList": {
        "type": "array",
        "description": "`<records>` holding one `<record>` per record, in log order.",
        "items": sref("HistoryRecordXml"),
        "xml": {"name": "records", "wrapped": True},
    },
    "RejectedEvent": {
        "type": "object",
        "description": "A record the projector kept out of the read model.",
        "required": ["partition", "offset", "kind", "reason", "rejectedAt"],
        "additionalProperties": False,
        "properties": {
            "partition": {"type": "integer", "minimum": 0, "format": "int32"},
            "offset": {"type": "integer", "minimum": 0, "format": "int64"},
            "kind": {"type": "string", "enum": ["malformed", "unknown_type", "unsupported_version", "conflict"],
                     "description": "`malformed`: no payload, not JSON, or a payload that breaks its schema; `unknown_type`: an eventType this build does not know; `unsupported_version`: a newer schemaVersion; `conflict`: a CustomerCreated for an existing customer id from another event."},
            "reason": {"type": "string", "description": "The details, in words."},
            "rejectedAt": {"type": "string", "format": "date-time",
                           "description": "When the projector rejected it: RFC 3339 UTC (`Z`), with 0, 3, 6 or 9 fractional digits."},
        },
        "xml": {"name": "rejectedEvent"},
    },
    "RejectedEventList": {
        "type": "array",
        "description": "Rejected records in log order. XML: `<rejectedEvents>` holding `<rejectedEvent>` elements.",
        "items": sref("RejectedEvent"),
        "xml": {"name": "rejectedEvents", "wrapped": True},
    },
}

# The XML form of a create body: XML has no null, an empty element stands for it.
_xml_props = {"accountId": sref("AccountId")}
for _n, _spec in input_props.items():
    if _n == "accountId":
        continue
    _copy = dict(_spec)
    _copy["anyOf"] = [alternative for alternative in _copy["anyOf"] if alternative.get("type") != "null"]
    _copy["description"] = _copy["description"].replace("or null (an empty element in XML)", "or an empty element")
    _xml_props[_n] = _copy
schemas["CustomerInputXmlElements"] = {
    "type": "object",
    "description": (
        "The XML form of CustomerInput with every field an element: a `<customer>` root element with one child element per field, named as in JSON, in any order; "
        "an empty element (`<city/>`, `<city></city>`) leaves the field out, as null does in JSON. `<accountId>`'s text is read as an integer when it is one "
        "(otherwise `invalid_type`). No DOCTYPE (no DTD, no external entities); only the five predefined entities and character references are read; "
        "elements may not nest below a field, and text outside field elements, a second root or another root name is 400 malformed-request."
    ),
    "required": ["accountId"],
    "additionalProperties": False,
    "properties": _xml_props,
    "xml": {"name": "customer"},
}
_attribute_props = dict(_xml_props)
for _n in ("code", "accountId"):
    _attribute_props[_n] = {**_xml_props[_n], "xml": ATTRIBUTE}
schemas["CustomerInputXmlAttributes"] = {
    "type": "object",
    "description": (
        "The gateway's XML form of CustomerInput: `code` and `accountId` as attributes of `<customer>` "
        "(`<customer code=\"ERP-000742\" accountId=\"42\"><firstName>Émile</firstName></customer>`), the other fields as child elements. "
        "The forms mix: each field may be an attribute or an element, but one field given both ways, or twice, is 400 (`repeated_field`; a repeated attribute is malformed-request). "
        "`id` as an attribute is `server_assigned`, like the element; another customer field as an attribute of `<customer>` is 400 malformed-request; other attributes (`xmlns`, `xml:lang`) are ignored."
    ),
    "required": ["accountId"],
    "additionalProperties": False,
    "properties": _attribute_props,
    "xml": {"name": "customer"},
}
schemas["CustomerInputXml"] = {
    "description": "A create body in XML: either form (elements, or the gateway's attributes).",
    "oneOf": [sref("CustomerInputXmlElements"), sref("CustomerInputXmlAttributes")],
    "xml": {"name": "customer"},
}

patch_props = {n: dict(v) for n, v in input_props.items() if n not in ("accountId", "code")}
for n, v in patch_props.items():
    v["description"] = v["description"].replace("leaves the field out", "clears the field")
schemas["CustomerPatch"] = {
    "type": "object",
    "description": (
        "What an update takes: the fields that change, as a JSON merge patch (RFC 7396). A value replaces the field, null (or a blank value) clears it, "
        "a field not named is kept. Each value passes the same rules as in a create. `accountId` and `code` are `create_only`; `id`, `createdAt`, `updatedAt` and "
        "`version` are `server_assigned`; any other member `unknown_field`; a member given twice `repeated_field` (400 /problems/validation-failed)."
    ),
    "additionalProperties": False,
    "properties": patch_props,
    "xml": {"name": "customer"},
    "examples": [{"email": "emile@hamilton-fils.example", "phone": None}],
}
schemas["CustomerPatchXml"] = {
    "type": "object",
    "description": (
        "The XML form of CustomerPatch: a `<customer>` root element with one child element per field that changes; an empty element (`<phone/>`) clears the field. "
        "The same XML rules as a create body."
    ),
    "additionalProperties": False,
    "properties": {n: v for n, v in _xml_props.items() if n not in ("accountId", "code")},
    "xml": {"name": "customer"},
}

# ---------------------------------------------------------------------------------------------
# Headers.
# ---------------------------------------------------------------------------------------------
LOG_POSITION_OUT = "^(?:[0-9]+:[0-9]+(?:,[0-9]+:[0-9]+)*)?$"
headers = {
    "ETag": {
        "description": "The customer's version as a strong entity tag, e.g. `\"3\"`. Send it back as If-Match to make an update or delete conditional.",
        "schema": {"type": "string", "pattern": '^"[1-9][0-9]*"$'},
    },
    "X-Request-Id": {
        "description": "The request's id: the client's `X-Request-Id` when it is 1 to 128 visible ASCII characters, otherwise one the server assigned (a UUIDv7). Events the request causes carry it as `requestId`.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[!-~]+$"},
    },
    "X-Log-Position": {
        "description": "The log position this answer reflects, as `partition:offset` pairs (next offsets), e.g. `0:15,1:7,2:33`; empty when the projection knows no partition yet. Send it back as X-Min-Log-Position for read-your-writes on any replica.",
        "schema": {"type": "string", "pattern": LOG_POSITION_OUT},
    },
    "X-Total-Count": {
        "description": "The number of matches over all pages.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "WWW-Authenticate": {
        "description": "`Bearer realm=\"customer-registry\"`, with `error=\"invalid_request\"` for an Authorization that is not `Bearer <key>`, and `error=\"invalid_token\"` for an unknown or revoked key.",
        "schema": {"type": "string", "enum": [
            'Bearer realm="customer-registry"',
            'Bearer realm="customer-registry", error="invalid_request"',
            'Bearer realm="customer-registry", error="invalid_token"',
        ]},
    },
    "Location": {
        "description": "The customer's path.",
        "schema": {"type": "string", "pattern": "^/api/v01/customers/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"},
    },
    "X-Projection-Pending": {
        "description": "Present (`true`) when the event is durable in Kafka but this replica's read model had not applied it within --projection-wait-ms.",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "Idempotent-Replayed": {
        "description": "Present (`true`) when a retried Idempotency-Key was answered from its first request: the customer it created (same id and createdAt), or the customer as the key's change left it (or the 204 of its delete); nothing was appended.",
        "schema": {"type": "string", "enum": ["true"]},
    },
}


def retry_after(values, five_for=None, absent_for=None):
    desc = {
        (1,): "Seconds to wait before retrying: always 1 here.",
        (1, 5): f"Seconds to wait before retrying: 5 for {five_for}, 1 otherwise.",
    }[tuple(values)]
    if absent_for:
        desc += f" Absent for {absent_for}."
    return {"description": desc, "required": not absent_for, "schema": {"type": "integer", "enum": list(values)}}


# In OAS 3.1 a Reference Object can't carry `required`; declare per-response header objects instead.
def header(name, required):
    base = dict(headers[name])
    base["required"] = required
    return base


# ---------------------------------------------------------------------------------------------
# Parameters.
# ---------------------------------------------------------------------------------------------
PAIR = r"\+?[0-9]{1,9}[ \t]*:[ \t]*\+?[0-9]{1,18}"
MIN_LOG_POSITION_PATTERN = rf"^[ \t]*(?:{PAIR})?[ \t]*(?:,[ \t]*(?:{PAIR})?[ \t]*)*$"

parameters = {
    "XRequestId": {
        "name": "X-Request-Id", "in": "header", "required": False,
        "description": "Names the request; echoed in `X-Request-Id` and recorded as the events' `requestId`. Kept when it is 1 to 128 visible ASCII characters; any other value is never refused, but replaced by a server-assigned UUIDv7.",
        "schema": {"type": "string"},
    },
    "MinLogPosition": {
        "name": "X-Min-Log-Position", "in": "header", "required": False,
        "description": (
            "Read-your-writes: the `X-Log-Position` of an earlier answer. The replica waits (up to --projection-wait-ms, default 5 s) "
            "until it has applied that much of the log, or answers 503 /problems/replica-behind with Retry-After: 1. "
            "Comma-separated `partition:offset` pairs (partition a non-negative i32, offset a non-negative i64, each partition once; blanks around items ignored, an empty item such as `0:1,` refused; "
            "several header lines are joined as one list). 400 /problems/validation-failed naming `X-Min-Log-Position`: `invalid_format` for bytes outside visible ASCII or a value that is not such pairs, "
            "`too_long` over 8192 bytes, `unknown_partition` for a partition the topic does not have (checked even while the replica is catching up), "
            "`beyond_log_end` for an offset past the partition's end as Kafka reports it now (no write was acknowledged there: refused at once, not waited for). "
            "An empty value asks for nothing (it is what an empty log's answers give). (The pattern bounds partitions to 9 digits and offsets to 18: a larger partition is always `unknown_partition`.)"
        ),
        "schema": {"type": "string", "maxLength": 8192, "pattern": MIN_LOG_POSITION_PATTERN},
        "example": "0:0",
    },
    "IfMatch": {
        "name": "If-Match", "in": "header", "required": False,
        "description": (
            "Makes the change conditional: versions as ETag gives them, in double quotes (`\"3\"`), separated by commas, or `*` (any current customer, the same as no header). "
            "The change applies only if the customer is at a listed version when the log reaches it; otherwise 412 /problems/version-mismatch naming the current version. "
            "Weak tags (`W/\"3\"`) may be listed but never match (If-Match compares strongly): weak tags alone are a 412. "
            "Anything else (no quotes, not digits) is 400 /problems/validation-failed, `invalid_format`, field `If-Match`."
        ),
        "schema": {"type": "string", "pattern": '^(\\*|(W/)?"[0-9]{1,19}"([ \\t]*,[ \\t]*(W/)?"[0-9]{1,19}")*)$'},
    },
    "ChangeIdempotencyKey": {
        "name": "Idempotency-Key", "in": "header", "required": False,
        "description": (
            "1 to 255 visible ASCII characters, scoped to the customer. A retry of the same request (same method, fields, values and If-Match) answers what the first answered "
            "(the customer as that change left it, or 204, with `Idempotent-Replayed: true`) and appends nothing; the same key with another request is 422 /problems/idempotency-key-reused. "
            "A key that is empty, longer than 255, holds other characters, or is sent on two header lines is 400 (`invalid_format`, field `Idempotency-Key`)."
        ),
        "schema": IDEMPOTENCY_KEY_SCHEMA,
    },
    "IdempotencyKey": {
        "name": "Idempotency-Key", "in": "header", "required": False,
        "description": (
            "1 to 255 visible ASCII characters (`!` to `~`), scoped to the body's accountId. A retry with the same key and the same customer answers the original customer "
            "(201, same id and createdAt, `Idempotent-Replayed: true`) and appends nothing; the same key with other details is 422 /problems/idempotency-key-reused. "
            "A key that is empty, longer than 255, holds other characters, or is sent on two header lines is 400 /problems/validation-failed, `invalid_format`, field `Idempotency-Key` (never read as absent)."
        ),
        "schema": IDEMPOTENCY_KEY_SCHEMA,
    },
    "Offset": {
        "name": "offset", "in": "query", "required": False,
        "description": "Matches to skip (default 0). Digits only (`+5`, ` 5`, `-1`, an empty value are `invalid_type`); past the platform's usize `out_of_range`.",
        "schema": {"type": "integer", "minimum": 0, "maximum": 18446744073709551615, "default": 0},
    },
    "Limit": {
        "name": "limit", "in": "query", "required": False,
        "description": "Most matches to return, 1 to 1000 (default 100). Digits only (`invalid_type` otherwise); outside 1..=1000 `out_of_range`.",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
    },
    "CustomerId": {
        "name": "customerId", "in": "path", "required": True,
        "description": "The customer's id in the canonical hyphenated UUID form (36 characters). Anything else, an unknown id, or a customer of an account the API key does not reach is 404 /problems/not-found.",
        "schema": {"type": "string", "format": "uuid", "minLength": 36, "maxLength": 36,
                   "pattern": "^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"},
        "example": "019abb9c-4f2e-7a10-8c55-2f0d6e9b1c43",
    },
    "AccountIdFilter": {
        "name": "accountId", "in": "query", "required": False,
        "description": "Customers of this account only (exact match). The trimmed value must be an integer (`invalid_type`) in 1..=2147483647 (`out_of_range`); an empty or blank value is `empty` (leave the parameter out not to filter). With a scoped API key, an account outside its scope is 403; without accountId a scoped key finds in its own accounts only.",
        "schema": {"type": "integer", "minimum": 1, "maximum": 2147483647},
    },
}

FILTER_COMMON = (
    " An empty or blank value (only spaces, White_Space that is not a control character, and invisible format characters such as"
    " a zero-width space) is `empty`: leave the parameter out not to filter by it. Otherwise the value is checked by the same rules as the field in a create body: a"
    " control character anywhere (U+0085 included) or a bidirectional control is `control_character`; lengths count characters"
    " after trimming and NFC (`too_long`)."
)
TEXT_PREFIX_COMMON = (
    " Matches as a case- and accent-insensitive prefix of the folded value (NFKD, combining marks dropped, full case folding, Latin"
    " transliterated); leading spaces are trimmed, trailing spaces are part of the prefix. A value that folds to nothing (e.g. a lone"
    " combining accent) is `invalid_format`."
)

filter_params = []
for n, m, d in TEXT_FIELDS:
    if n in ("firstName", "lastName", "organizationName", "email", "street", "city"):
        schema = {"type": "string", "maxLength": m,
                  "pattern": anchored(QUERY_BLANK, f"{NO_CTRL}*{VISIBLE}{NO_CTRL}*")}
        desc = f"Filter on `{n}`: at most {m} characters." + TEXT_PREFIX_COMMON + FILTER_COMMON
        if n == "email":
            desc += " (As a prefix, an email filter need not be a whole address.)"
    elif n == "phone":
        schema = {"type": "string", "maxLength": 30, "pattern": anchored(QUERY_BLANK, trimmed(PHONE_CORE))}
        desc = ("Filter on `phone`: a prefix of the digits alone (`(212) 555` finds `212-555-0101`). Must itself be a valid phone: digits with a"
                " leading `+`, spaces, `-`, `.`, `(`, `)`, at least one digit (`invalid_format`), at most 15 digits and 30 characters (`too_long`)." + FILTER_COMMON)
    elif n == "state":
        schema = {"type": "string", "pattern": anchored(QUERY_BLANK, trimmed(STATE_CORE))}
        desc = "Filter on `state`: a whole valid state, 1 to 3 ASCII letters or digits (`invalid_format`; longer is `too_long`), matched case-insensitively." + FILTER_COMMON
    elif n == "zipCode":
        schema = {"type": "string", "maxLength": 10, "pattern": anchored(QUERY_BLANK, trimmed(ZIP_CORE))}
        desc = ("Filter on `zipCode`: must itself be a valid zip code, at most 10 ASCII letters, digits, spaces or dashes with at least one letter or digit"
                " (`invalid_format`, `too_long`); matched as a case-insensitive prefix." + FILTER_COMMON)
    else:  # countryCode
        schema = {"type": "string", "pattern": anchored(QUERY_BLANK, trimmed(COUNTRY_ANY_CASE))}
        desc = ("Filter on `countryCode`: a whole officially assigned ISO 3166-1 alpha-2 code, any case (anything else, control characters included, is"
                " `invalid_format`), matched case-insensitively." + " An empty or blank value (only spaces and invisible characters) is `empty`.")
    name = n[0].upper() + n[1:] + "Filter"
    parameters[name] = {"name": n, "in": "query", "required": False, "description": desc, "schema": non_blank(schema)}
    filter_params.append(name)

parameters["CodeFilter"] = {
    "name": "code", "in": "query", "required": False,
    "description": (
        "The cross-reference lookup: the customer whose `code` is exactly this (case-sensitive; trimmed), the merchant's own reference given at create, or "
        "the customer's id for one created without a code. A code is unique per account, so `accountId` plus `code` answers at most one customer; without "
        "`accountId` the find looks in every account the API key reaches. 1 to 60 ASCII letters, digits or `-` `_` `.` `:` `/` (`invalid_format`, `too_long`); "
        "an empty or blank value is `empty`. Combines with the other filters by AND."
    ),
    "schema": non_blank({"type": "string", "pattern": anchored(QUERY_BLANK, trimmed(CODE_CORE))}),
}

# ---------------------------------------------------------------------------------------------
# Responses.
# ---------------------------------------------------------------------------------------------
TITLES = {
    "/problems/validation-failed": "The request broke validation rules",
    "/problems/malformed-request": "The request could not be parsed",
    "/problems/unsupported-media-type": "Unsupported media type",
    "/problems/not-acceptable": "No acceptable representation",
    "/problems/payload-too-large": "The body is too large",
    "/problems/unauthorized": "A valid API key is needed",
    "/problems/forbidden": "The API key's scope does not reach this",
    "/problems/not-found": "Not found",
    "/problems/method-not-allowed": "Method not allowed",
    "/problems/event-log-unavailable": "The event log did not confirm the write",
    "/problems/not-enough-replicas": "Not enough in-sync replicas to accept the write",
    "/problems/event-log-unreadable": "The event log could not be read",
    "/problems/duplicate-code": "Another customer of the account has this code",
    "/problems/idempotency-key-reused": "The idempotency key was used with another body",
    "/problems/version-mismatch": "The customer is not at the version If-Match names",
    "/problems/contended": "The customer kept changing while this change was applied",
    "/problems/change-pending": "The change's outcome is not known on this replica yet",
    "/problems/replica-behind": "This replica has not caught up yet",
    "/problems/history-busy": "Too many history reads at once",
    "/problems/overloaded": "Too many requests at once",
    "/problems/body-timeout": "The request body took too long",
    "/problems/too-many-requests": "Too many requests for one API key",
    "/problems/deadline-exceeded": "The request took too long",
    "/problems/query-too-broad": "The find is too broad",
    "/problems/catching-up": "This replica is catching up with the log",
    "/problems/read-model-failure": "The read model failed",
    "/problems/internal-error": "Internal error",
    "/problems/uri-too-long": "The URI is too long",
    "/problems/request-head-too-large": "The request head is too large",
}
STATUS_OF = {t: s for t, s, _ in PROBLEM_TYPES}


def problem_schema(status, types):
    for t in types:
        assert STATUS_OF[t] == status, (t, status)
    name = f"Problem{status}" + "".join(
        "".join(part.capitalize() for part in t.rsplit("/", 1)[1].split("-")) for t in types)
    if name not in schemas:
        schemas[name] = _problem_schema(status, types)
    return sref(name)


def _problem_schema(status, types):
    return {
        "description": f"A {status} problem document of type " + " or ".join(f"`{t}`" for t in types) + ".",
        "allOf": [sref("Problem")],
        "properties": {
            "type": {"enum": list(types)},
            "status": {"const": status},
            "title": {"enum": sorted({TITLES[t] for t in types})},
        },
    }


def content(pairs, head):
    """Media types; HEAD answers carry the same Content-Type but no body, so no schema there."""
    out = {}
    for media, schema in pairs:
        out[media] = {} if head else {"schema": schema}
    return out


def problem_response(status, types, description, head, extra_headers=None, request_id="required", json_only=False):
    if status == 400 and request_id == "required":
        # The HTTP layer's own 400 (a request that is not well-formed HTTP) carries no X-Request-Id.
        request_id = "optional"
    schema = problem_schema(status, types)
    pairs = [(PJSON, schema)] if json_only else [(PJSON, schema), (PXML, schema)]
    hdrs = {}
    if request_id is not None:
        hdrs["X-Request-Id"] = header("X-Request-Id", request_id == "required")
    for k, v in (extra_headers or {}).items():
        hdrs[k] = v
    type_list = "; ".join(f"`{t}`" for t in types)
    return {
        "description": description + f" Problem type(s): {type_list}.",
        "headers": hdrs,
        "content": content(pairs, head),
    }


_AUTH_401 = lambda head: problem_response(
    401, ["/problems/unauthorized"],
    "No valid API key: no Authorization header, one that is not `Bearer <key>` (or longer than 1024 bytes, or not visible ASCII, or sent twice), or an unknown or revoked key.",
    head, {"WWW-Authenticate": header("WWW-Authenticate", True)})

_NOT_ACCEPTABLE = lambda head: problem_response(
    406, ["/problems/not-acceptable"],
    "`Accept` allows neither JSON (`application/json`, `application/problem+json`, `application/*`, `*/*`) nor XML (`application/xml`, `text/xml`, `application/problem+xml`, `text/*`). Always answered in JSON.",
    head, json_only=True)

_TOO_LARGE_HEAD = problem_response(
    431, ["/problems/request-head-too-large"],
    "The request head (request line and headers, query string included) is over 16384 bytes: refused by the HTTP layer before any route runs, always in JSON, without X-Request-Id; the connection is closed.",
    False, request_id=None, json_only=True)
_TOO_LARGE_HEAD_HEAD = problem_response(
    431, ["/problems/request-head-too-large"],
    "The request head (request line and headers, query string included) is over 16384 bytes: refused by the HTTP layer before any route runs, always in JSON, without X-Request-Id; the connection is closed.",
    True, request_id=None, json_only=True)


SHARED_RESPONSES = {
    "Unauthorized": _AUTH_401(False),
    "UnauthorizedHead": _AUTH_401(True),
    "NotAcceptable": _NOT_ACCEPTABLE(False),
    "NotAcceptableHead": _NOT_ACCEPTABLE(True),
    "RequestHeadTooLarge": _TOO_LARGE_HEAD,
    "RequestHeadTooLargeHead": _TOO_LARGE_HEAD_HEAD,
}
AUTH_401 = lambda head: ref("responses", "UnauthorizedHead" if head else "Unauthorized")
NOT_ACCEPTABLE = lambda head: ref("responses", "NotAcceptableHead" if head else "NotAcceptable")
TOO_LARGE_HEAD = ref("responses", "RequestHeadTooLarge")
TOO_LARGE_HEAD_HEAD = ref("responses", "RequestHeadTooLargeHead")


def body_timeout_408():
    return problem_response(408, ["/problems/body-timeout"], "The body did not arrive whole within --body-read-timeout-ms of the request head; the connection is closed. Carries no X-Request-Id.", False, request_id=None)


def shed_503_types():
    return ["/problems/overloaded", "/problems/deadline-exceeded"]


def success_headers(names):
    return {n: header(n, req) for n, req in names}


def op_tags(*t):
    return list(t)


def build_create():
    responses = {
        "201": {
            "description": "Created: Kafka confirmed the `CustomerCreated` event (idempotent producer, acks=all) and, unless `X-Projection-Pending: true`, this replica's read model has applied it. Also the answer to a retried Idempotency-Key with the same details (`Idempotent-Replayed: true`). The body is the customer in the negotiated format.",
            "headers": success_headers([("Location", True), ("X-Log-Position", True), ("X-Request-Id", True),
                                        ("X-Projection-Pending", False), ("Idempotent-Replayed", False)]),
            "content": content([(JSON, sref("Customer")), (XML, sref("Customer"))], False),
            "links": {
                "GetCreatedCustomer": {"operationId": "getCustomer", "parameters": {"customerId": "$response.body#/id"},
                                       "description": "The customer just created."},
                "GetCreatedCustomerHistory": {"operationId": "getCustomerHistory", "parameters": {"customerId": "$response.body#/id"},
                                              "description": "The records that built the customer just created."},
            },
        },
        "400": problem_response(400, ["/problems/validation-failed", "/problems/malformed-request"],
                                "The body broke the field rules (`errors` lists every one: required, invalid_type, out_of_range, too_long, invalid_format, control_character, noncharacter, unknown_field, repeated_field, server_assigned), the Idempotency-Key header is not 1-255 visible ASCII or was sent twice (invalid_format), or the body is not well-formed JSON/XML (malformed-request, with line and column; the HTTP layer's malformed-request for a request that is not well-formed HTTP/1.1 comes in JSON without X-Request-Id).",
                                False),
        "401": AUTH_401(False),
        "403": problem_response(403, ["/problems/forbidden"], "The API key's scope does not reach the body's accountId.", False),
        "406": NOT_ACCEPTABLE(False),
        "408": body_timeout_408(),
        "413": problem_response(413, ["/problems/payload-too-large"], "The body is over 65536 bytes (by Content-Length, before reading, or while it streams in).", False),
        "415": problem_response(415, ["/problems/unsupported-media-type"], "Content-Type is not application/json, application/xml or text/xml (none at all is read as JSON), or its charset is not UTF-8.", False),
        "409": problem_response(409, ["/problems/duplicate-code"], "Another customer of the account has the body's `code` (deleted customers keep theirs): `customerId` and the `Location` header name it.",
                                False, {"Location": header("Location", True)}),
        "422": problem_response(422, ["/problems/idempotency-key-reused"], "The Idempotency-Key already created a customer in this account with other details.", False),
        "431": TOO_LARGE_HEAD,
        "500": problem_response(500, ["/problems/read-model-failure"], "The read model failed while the create consulted it (idempotent creates).", False),
        "503": problem_response(503, ["/problems/event-log-unavailable", "/problems/not-enough-replicas", "/problems/change-pending", "/problems/catching-up", "/problems/replica-behind"] + shed_503_types(),
                                "Kafka did not confirm the event within about 10 s (the whole create is bounded at 25 s): the detail says whether nothing was written or the outcome is unknown; retry with the same Idempotency-Key (Retry-After: 5). "
                                "The event's partition has too few in-sync replicas that answer for Kafka to acknowledge it (not-enough-replicas, Retry-After: 5): refused at once while the cluster is short. "
                                "A create with a `code` whose event this replica did not apply within --projection-wait-ms: whether it won the code is not known here yet (change-pending, with X-Log-Position and Location naming the customer the code names, and no Retry-After: read that customer with X-Min-Log-Position rather than create again). "
                                "The replica is still replaying the log it saw at start (catching-up, Retry-After: 1), or, for a create with an Idempotency-Key or a code, did not apply the customer's partition up to its end within --projection-wait-ms (replica-behind, Retry-After: 1). "
                                "Or load shedding / the request deadline (Retry-After: 1, no X-Request-Id).",
                                False, {"Retry-After": retry_after([1, 5], "event-log-unavailable and not-enough-replicas", "change-pending"), "X-Log-Position": header("X-Log-Position", False), "Location": header("Location", False)}, request_id="optional"),
    }
    return {
        "operationId": "createCustomer",
        "tags": ["customers"],
        "summary": "Create a customer",
        "description": (
            "Validates a Customer and appends a `CustomerCreated` event to the Kafka topic; answers 201 once Kafka confirmed it and this replica's read model applied it "
            "(bounded by --projection-wait-ms, past which the 201 still goes out with `X-Projection-Pending: true`). Checks run in this order: API key (401), Accept (406), "
            "Content-Type (415), Idempotency-Key (400), body size (413), body syntax (400 malformed-request), field rules (400 validation-failed), key scope (403), then the write (422, 500, 503)."
        ),
        "parameters": [ref("parameters", "IdempotencyKey"), ref("parameters", "XRequestId")],
        "requestBody": {
            "required": True,
            "description": "A Customer without `id` and `createdAt`, at most 65536 bytes, UTF-8. JSON (also assumed when Content-Type is absent) or XML (`application/xml` or `text/xml`); a `charset` parameter other than UTF-8 is 415.",
            "content": {
                "application/json": {"schema": sref("CustomerInput")},
                "application/xml": {"schema": sref("CustomerInputXml")},
                "text/xml": {"schema": sref("CustomerInputXml")},
            },
        },
        "responses": responses,
    }


CHANGE_ORDER = (
    "Checks run in this order: API key (401), Accept (406){body}, If-Match (400), Idempotency-Key (400){size}, "
    "X-Min-Log-Position (400), catching up / waiting (503), the lookup (404), then the change (412, 422, 500, 503)."
)


def change_503():
    return problem_response(
        503, ["/problems/event-log-unavailable", "/problems/not-enough-replicas", "/problems/contended", "/problems/change-pending", "/problems/catching-up", "/problems/replica-behind"] + shed_503_types(),
        "Kafka did not confirm the event (event-log-unavailable, Retry-After: 5); its partition has too few in-sync replicas that answer (not-enough-replicas, Retry-After: 5); the customer kept changing (contended); the outcome is not known here yet "
        "(change-pending, with X-Log-Position); the replica is catching up or behind X-Min-Log-Position; or load shedding / the request deadline (no X-Request-Id).",
        False, {"Retry-After": retry_after([1, 5], "event-log-unavailable and not-enough-replicas"), "X-Log-Position": header("X-Log-Position", False)}, request_id="optional")


def build_update(patch):
    content_types = {"application/merge-patch+json": {"schema": sref("CustomerPatch")}}
    if not patch:
        content_types = {
            "application/json": {"schema": sref("CustomerPatch")},
            "application/merge-patch+json": {"schema": sref("CustomerPatch")},
            "application/xml": {"schema": sref("CustomerPatchXml")},
            "text/xml": {"schema": sref("CustomerPatchXml")},
        }
    media = "application/merge-patch+json" if patch else "application/json, application/merge-patch+json, application/xml or text/xml"
    return {
        "operationId": "patchCustomer" if patch else "updateCustomer",
        "tags": ["customers"],
        "summary": "Update a customer (merge patch)" if patch else "Update a customer",
        "description": (
            ("The same update as POST, by PATCH with a JSON merge patch (RFC 7396). " if patch else
             "Changes the fields the body names (RFC 7396 semantics: a value replaces, null clears, an absent field is kept) and appends a `CustomerUpdated` event naming the version it gives the customer. ")
            + "Answers 200 with the whole customer once this replica applied the event (or at once, appending nothing, when nothing changes). "
            "Without If-Match the change applies to whatever version is current (retried on the new state when another change takes the version first). "
            + CHANGE_ORDER.format(body=", Content-Type (415)", size=", body size (413), body syntax and field rules (400)")
        ),
        "parameters": [ref("parameters", "IfMatch"), ref("parameters", "ChangeIdempotencyKey"), ref("parameters", "MinLogPosition"), ref("parameters", "XRequestId")],
        "requestBody": {
            "required": True,
            "description": f"A CustomerPatch, at most 65536 bytes, UTF-8: {media} (no Content-Type is read as JSON).",
            "content": content_types,
        },
        "responses": {
            "200": {
                "description": "The customer as the update left it (or as it is, when the update changed nothing).",
                "headers": success_headers([("ETag", True), ("X-Log-Position", True), ("X-Request-Id", True), ("Idempotent-Replayed", False)]),
                "content": content([(JSON, sref("Customer")), (XML, sref("Customer"))], False),
            },
            "400": problem_response(400, ["/problems/validation-failed", "/problems/malformed-request"],
                                    "The body broke the field rules (create_only, server_assigned, unknown_field, repeated_field, invalid_type and each field's rules), If-Match, Idempotency-Key or X-Min-Log-Position is malformed, or the body is not well-formed JSON/XML." + HTTP_400, False),
            "401": AUTH_401(False),
            "404": problem_response(404, ["/problems/not-found"], "No customer with this id, a deleted one (or deleted by a change that came first), or one of an account the API key does not reach.", False),
            "406": NOT_ACCEPTABLE(False),
            "412": problem_response(412, ["/problems/version-mismatch"], "If-Match named a version the customer is not at.", False, {"ETag": header("ETag", True)}),
            "422": problem_response(422, ["/problems/idempotency-key-reused"], "The Idempotency-Key made another change to this customer.", False),
            "408": body_timeout_408(),
        "413": problem_response(413, ["/problems/payload-too-large"], "The body is over 65536 bytes.", False),
            "415": problem_response(415, ["/problems/unsupported-media-type"], f"Content-Type is not {media}, or its charset is not UTF-8.", False),
            "431": TOO_LARGE_HEAD,
            "500": problem_response(500, ["/problems/read-model-failure"], "The read model failed.", False),
            "503": change_503(),
        },
    }


def build_delete():
    return {
        "operationId": "deleteCustomer",
        "tags": ["customers"],
        "summary": "Delete a customer",
        "description": (
            "Appends a `CustomerDeleted` event; answers 204 once this replica applied it. A deleted customer is absent from find and get (404); its history still lists every event. "
            + CHANGE_ORDER.format(body="", size="")
        ),
        "parameters": [ref("parameters", "IfMatch"), ref("parameters", "ChangeIdempotencyKey"), ref("parameters", "MinLogPosition"), ref("parameters", "XRequestId")],
        "responses": {
            "204": {
                "description": "Deleted (or, for a retried Idempotency-Key, deleted by the first request: `Idempotent-Replayed: true`).",
                "headers": success_headers([("X-Log-Position", True), ("X-Request-Id", True), ("Idempotent-Replayed", False)]),
            },
            "400": problem_response(400, ["/problems/validation-failed", "/problems/malformed-request"],
                                    "If-Match, Idempotency-Key or X-Min-Log-Position is malformed." + HTTP_400, False),
            "401": AUTH_401(False),
            "404": problem_response(404, ["/problems/not-found"], "No customer with this id, one deleted already, or one of an account the API key does not reach.", False),
            "406": NOT_ACCEPTABLE(False),
            "412": problem_response(412, ["/problems/version-mismatch"], "If-Match named a version the customer is not at.", False, {"ETag": header("ETag", True)}),
            "422": problem_response(422, ["/problems/idempotency-key-reused"], "The Idempotency-Key made another change to this customer.", False),
            "431": TOO_LARGE_HEAD,
            "500": problem_response(500, ["/problems/read-model-failure"], "The read model failed.", False),
            "503": change_503(),
        },
    }


def read_503(head, history=False):
    types = ["/problems/catching-up", "/problems/replica-behind"]
    desc = "This replica is still replaying the log it saw at start (catching-up), or did not reach X-Min-Log-Position within --projection-wait-ms (replica-behind)"
    values = [1]
    five_for = None
    if history:
        types += ["/problems/history-busy", "/problems/event-log-unreadable"]
        desc += ", or 4 history reads are already running, or 2 for the account (history-busy), or the records could not be read back from Kafka (event-log-unreadable, Retry-After: 5)"
        values = [1, 5]
        five_for = "event-log-unreadable"
    types += shed_503_types()
    desc += ", or load shedding / the request deadline (overloaded, deadline-exceeded: no X-Request-Id). Retry after Retry-After seconds."
    return problem_response(503, types, desc, head, {"Retry-After": retry_after(values, five_for)}, request_id="optional")


HTTP_400 = " (malformed-request: the HTTP layer's answer to a request that is not well-formed HTTP/1.1, in JSON, without X-Request-Id; or to an HTTP/1.1 request without exactly one Host header.)"
MIN_POS_400 = "X-Min-Log-Position is not visible ASCII or not `partition:offset` pairs (invalid_format), is over 8192 bytes (too_long), names a partition the topic does not have (unknown_partition), or an offset past its partition's end (beyond_log_end)."


def build_find(head):
    op = {
        "operationId": "findCustomersHead" if head else "findCustomers",
        "tags": ["customers"],
        "summary": ("Find customers (headers only)" if head else "Find customers"),
        "description": (
            "The page of customers the filters select, combined with AND, ordered by createdAt then id. Every field is a filter, checked by the same rules as in a create body. "
            "Unknown or repeated parameters are a 400, and so is a parameter (name or value) that is not well-formed percent-encoded UTF-8 (`invalid_format`, naming it); "
            "`+` reads as a space. Checks run in this order: API key (401), Accept (406), query string (400), key scope (403), X-Min-Log-Position (400), catching up (503), "
            "waiting for X-Min-Log-Position (503), the find (422, 500). "
            "A find's work is metered; one needing more than 10,000,000 units is refused with 422 /problems/query-too-broad."
            + (" HEAD answers the same status and headers as GET, without a body." if head else "")
        ),
        "parameters": [ref("parameters", "Offset"), ref("parameters", "Limit"), ref("parameters", "AccountIdFilter"), ref("parameters", "CodeFilter")]
        + [ref("parameters", p) for p in filter_params]
        + [ref("parameters", "MinLogPosition"), ref("parameters", "XRequestId")],
        "responses": {
            "200": {
                "description": "The page (possibly empty).",
                "headers": success_headers([("X-Total-Count", True), ("X-Log-Position", True), ("X-Request-Id", True)]),
                "content": content([(JSON, sref("CustomerList")), (XML, sref("CustomerList"))], head),
            },
            "400": problem_response(400, ["/problems/validation-failed", "/problems/malformed-request"],
                                    "A parameter broke its rule (`errors` names every one: unknown_parameter, repeated_parameter, invalid_type, out_of_range, empty, too_long, invalid_format, control_character, noncharacter), or " + MIN_POS_400 + HTTP_400,
                                    head),
            "401": AUTH_401(head),
            "403": problem_response(403, ["/problems/forbidden"], "`accountId` names an account the scoped API key does not reach.", head),
            "406": NOT_ACCEPTABLE(head),
            "422": problem_response(422, ["/problems/query-too-broad"], "The find would need more work than any find may do; `errors` names its filters (and offset) with code `query_too_broad`. Add accountId or another filter, use a longer prefix, or page less deep.", head),
            "431": TOO_LARGE_HEAD_HEAD if head else TOO_LARGE_HEAD,
            "500": problem_response(500, ["/problems/read-model-failure", "/problems/internal-error"], "The read model failed, or the find's worker task was cancelled.", head),
            "503": read_503(head),
        },
    }
    return op


def build_get(head):
    return {
        "operationId": "getCustomerHead" if head else "getCustomer",
        "tags": ["customers"],
        "summary": "Get a customer (headers only)" if head else "Get a customer",
        "description": "One customer. Checks run in this order: API key (401), Accept (406), X-Min-Log-Position (400), catching up / waiting (503), then the lookup (404, 500). A customer of an account the key does not reach is a 404 worded as for an unknown id." + (" HEAD answers the same status and headers as GET, without a body." if head else ""),
        "parameters": [ref("parameters", "MinLogPosition"), ref("parameters", "XRequestId")],
        "responses": {
            "200": {
                "description": "The customer.",
                "headers": success_headers([("X-Log-Position", True), ("X-Request-Id", True)]),
                "content": content([(JSON, sref("Customer")), (XML, sref("Customer"))], head),
            },
            "400": problem_response(400, ["/problems/validation-failed", "/problems/malformed-request"], MIN_POS_400 + HTTP_400, head),
            "401": AUTH_401(head),
            "404": problem_response(404, ["/problems/not-found"], "No customer with this id (an id not in canonical hyphenated UUID form names none), or one of an account the API key does not reach.", head),
            "406": NOT_ACCEPTABLE(head),
            "431": TOO_LARGE_HEAD_HEAD if head else TOO_LARGE_HEAD,
            "500": problem_response(500, ["/problems/read-model-failure"], "The read model failed.", head),
            "503": read_503(head),
        },
    }


def build_history(head):
    return {
        "operationId": "getCustomerHistoryHead" if head else "getCustomerHistory",
        "tags": ["customers"],
        "summary": "A customer's records (headers only)" if head else "A customer's records",
        "description": (
            "The records of the log that built the customer, in log order, each with its partition, offset, timestamp, key and the event as published; "
            "the payloads are read back from Kafka. At most 4 such reads run at once, 2 for one account's customers; one past either is refused at once with 503 /problems/history-busy. "
            "JSON and XML differ in shape: JSON gives the event as a JSON value (`event`), XML as JSON text (`<value>`). "
            "Checks run in this order: API key (401), Accept (406), X-Min-Log-Position (400), catching up / waiting (503), the lookup (404, 500), then the read (503, 500)."
            + (" HEAD answers the same status and headers as GET, without a body (it still reads the records)." if head else "")
        ),
        "parameters": [ref("parameters", "MinLogPosition"), ref("parameters", "XRequestId")],
        "responses": {
            "200": {
                "description": "The records.",
                "headers": success_headers([("X-Log-Position", True), ("X-Request-Id", True)]),
                "content": content([(JSON, sref("HistoryRecordList")), (XML, sref("HistoryRecordXmlList"))], head),
            },
            "400": problem_response(400, ["/problems/validation-failed", "/problems/malformed-request"], MIN_POS_400 + HTTP_400, head),
            "401": AUTH_401(head),
            "404": problem_response(404, ["/problems/not-found"], "No customer with this id, or one of an account the API key does not reach.", head),
            "406": NOT_ACCEPTABLE(head),
            "431": TOO_LARGE_HEAD_HEAD if head else TOO_LARGE_HEAD,
            "500": problem_response(500, ["/problems/read-model-failure", "/problems/internal-error"], "The read model failed, or the read's worker task was cancelled.", head),
            "503": read_503(head, history=True),
        },
    }


def build_rejected(head):
    return {
        "operationId": "listRejectedEventsHead" if head else "listRejectedEvents",
        "tags": ["admin"],
        "summary": "List rejected records (headers only)" if head else "List rejected records",
        "description": (
            "Records the projector kept out of the read model (conflicts and records that are not events this build applies), in log order, paged like find. "
            "Admin keys only. Takes `offset` and `limit` only; any other parameter is `unknown_parameter`. Checks run in this order: API key (401), admin scope (403), Accept (406), query string (400), the listing (500)."
            + (" HEAD answers the same status and headers as GET, without a body." if head else "")
        ),
        "parameters": [ref("parameters", "Offset"), ref("parameters", "Limit"), ref("parameters", "XRequestId")],
        "responses": {
            "200": {
                "description": "The page.",
                "headers": success_headers([("X-Total-Count", True), ("X-Request-Id", True)]),
                "content": content([(JSON, sref("RejectedEventList")), (XML, sref("RejectedEventList"))], head),
            },
            "400": problem_response(400, ["/problems/validation-failed", "/problems/malformed-request"], "`offset` or `limit` broke its rule, or an unknown, repeated or badly percent-encoded parameter (`errors`: invalid_type, out_of_range, unknown_parameter, repeated_parameter, invalid_format)." + HTTP_400, head),
            "401": AUTH_401(head),
            "403": problem_response(403, ["/problems/forbidden"], "The API key is not an admin key.", head),
            "406": NOT_ACCEPTABLE(head),
            "431": TOO_LARGE_HEAD_HEAD if head else TOO_LARGE_HEAD,
            "500": problem_response(500, ["/problems/read-model-failure", "/problems/internal-error"], "The read model failed, or the listing's worker task was cancelled.", head),
            "503": problem_response(503, shed_503_types(), "Load shedding or the request deadline (no X-Request-Id).", head,
                                    {"Retry-After": retry_after([1])}, request_id=None),
        },
    }


def build_snapshot():
    return {
        "operationId": "readModelSnapshot",
        "tags": ["admin"],
        "summary": "A snapshot of this replica's read model",
        "description": (
            "This replica's committed read model and the log position it reaches, streamed as one file (the layout `customer-registry snapshot` writes, "
            "ending in a SHA-256 of its contents): what a new replica starts from with `serve --restore-from FILE`, catching up from the snapshot's offsets "
            "instead of replaying the log from offset 0. The replica keeps projecting and answering meanwhile; its flushes to disk wait until the snapshot is read. "
            "A body that ends early (the replica stopped) fails its checksum at restore. Admin keys only. Checks run in this order: API key (401), admin scope (403)."
        ),
        "parameters": [ref("parameters", "XRequestId")],
        "responses": {
            "200": {
                "description": "The snapshot.",
                "headers": success_headers([("X-Request-Id", True)]),
                "content": {"application/octet-stream": {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}},
            },
            "401": AUTH_401(False),
            "403": problem_response(403, ["/problems/forbidden"], "The API key is not an admin key.", False),
            "431": TOO_LARGE_HEAD,
            "503": problem_response(503, shed_503_types(), "Load shedding or the request deadline (no X-Request-Id).", False,
                                    {"Retry-After": retry_after([1])}, request_id=None),
        },
    }


def build_healthz(head):
    return {
        "operationId": "livenessHead" if head else "liveness",
        "tags": ["probes"],
        "summary": "Liveness probe" + (" (headers only)" if head else ""),
        "description": "200 while the process serves HTTP. No key; always JSON whatever Accept says; never shed.",
        "security": [],
        "responses": {
            "200": {"description": "Alive.", "content": content([(JSON, sref("Liveness"))], head)},
        },
    }


def build_readyz(head):
    ready = {"allOf": [sref("Readiness")], "properties": {"ready": {"const": True}}, "required": ["ready"]}
    not_ready = {"allOf": [sref("Readiness")], "properties": {"ready": {"const": False}}, "required": ["ready", "reason"]}
    return {
        "operationId": "readinessHead" if head else "readiness",
        "tags": ["probes"],
        "summary": "Readiness probe" + (" (headers only)" if head else ""),
        "description": "200 when the projection has applied what the log held at start, trails the log's end by at most --ready-max-lag records, and the brokers answer; 503 otherwise. No key; always JSON whatever Accept says; never shed.",
        "security": [],
        "responses": {
            "200": {"description": "Ready.", "content": content([(JSON, ready)], head)},
            "503": {"description": "Not ready; `reason` says why.", "content": content([(JSON, not_ready)], head)},
        },
    }


def build_metrics(head):
    return {
        "operationId": "metricsHead" if head else "metrics",
        "tags": ["probes"],
        "summary": "Prometheus metrics" + (" (headers only)" if head else ""),
        "description": (
            "The Prometheus text exposition format. Open to loopback clients without a key; any other client needs an admin key (401 without a valid key, 403 for a scoped key). "
            "`--metrics-listen ADDR` serves it on a second address to anyone (that address answers only GET/HEAD /metrics, 404 otherwise). Never shed. "
            "Series: registry_http_requests_total{route,method,status}, registry_http_request_duration_seconds{route}, registry_projector_records_total{outcome}, "
            "registry_projection_lag_records{partition}, registry_ready, registry_creates_in_flight, registry_producer_queue_records, registry_customers, registry_read_model_disk_bytes."
        ),
        "security": [{}, {"apiKey": []}],
        "responses": {
            "200": {"description": "The metrics (no X-Request-Id).",
                    "content": content([(METRICS, {"type": "string"})], head)},
            "401": AUTH_401(head),
            "403": problem_response(403, ["/problems/forbidden"], "Not a loopback client, and the API key is not an admin key.", head),
        },
    }


def build_openapi(head):
    body = {} if head else {"schema": {"type": "object", "required": ["openapi", "info", "paths"]}}
    return {
        "operationId": "openApiDocumentHead" if head else "openApiDocument",
        "tags": ["meta"],
        "summary": "This OpenAPI document" + (" (headers only)" if head else ""),
        "description": "Serves this document (application/json). No key.",
        "security": [],
        "responses": {
            "200": {"description": "The OpenAPI 3.1 document of the API.",
                    "content": {JSON: body}},
            "503": problem_response(503, shed_503_types(), "Load shedding or the request deadline (the path is not exempt from them).", False,
                                    {"Retry-After": retry_after([1])}, request_id=None),
        },
    }


paths = {
    "/api/v01/customers": {
        "put": build_create(),
        "get": build_find(False),
        "head": build_find(True),
    },
    "/api/v01/customers/{customerId}": {
        "parameters": [ref("parameters", "CustomerId")],
        "get": build_get(False),
        "head": build_get(True),
        "post": build_update(False),
        "patch": build_update(True),
        "delete": build_delete(),
    },
    "/api/v01/customers/{customerId}/events": {
        "parameters": [ref("parameters", "CustomerId")],
        "get": build_history(False),
        "head": build_history(True),
    },
    "/api/v01/admin/rejected-events": {
        "get": build_rejected(False),
        "head": build_rejected(True),
    },
    "/api/v01/admin/snapshot": {"get": build_snapshot()},
    "/api/v01/openapi.json": {"get": build_openapi(False), "head": build_openapi(True)},
    "/healthz": {"get": build_healthz(False), "head": build_healthz(True)},
    "/readyz": {"get": build_readyz(False), "head": build_readyz(True)},
    "/metrics": {"get": build_metrics(False), "head": build_metrics(True)},
}

# One API key's share of the request slots (--max-in-flight-per-key): every API operation may
# answer 429 at once past it.
for _path, _item in paths.items():
    if not _path.startswith(("/api/v01/customers", "/api/v01/admin")):
        continue
    for _method, _op in _item.items():
        if _method == "parameters":
            continue
        _op["responses"]["429"] = problem_response(
            429, ["/problems/too-many-requests"],
            "This API key (the Authorization value) already has --max-in-flight-per-key (default 128) requests in flight on this replica (Retry-After: 1).",
            _method == "head", {"Retry-After": retry_after([1])}, request_id=None)

doc = {
    "openapi": "3.1.0",
    "info": {
        "title": "customer-registry",
        "version": "0.1.0",
        "summary": "An event-sourced customer registry: the customers resource of a payment gateway's Management API.",
        "description": (
            "Creates append a `CustomerCreated` event to a Kafka topic (the source of truth); finds and gets answer from a read model projected from it.\n\n"
            "**Authentication.** Every API request carries `Authorization: Bearer <key>`; a key is scoped to merchant accounts or is an admin key. "
            "The probes (`/healthz`, `/readyz`) and this document need none; `/metrics` needs none from loopback clients.\n\n"
            "**Formats.** Every answer is JSON or XML by `Accept`: JSON is the default and answers `*/*` and `application/*`; `application/xml`, `text/xml`, `text/*` or a higher q-value for XML "
            "gives XML (`application/xml; charset=utf-8`); an `Accept` that allows neither is 406 (a q-value above 1 reads as 1). XML uses the JSON names.\n\n"
            "**Errors** are RFC 9457 problem documents, `application/problem+json`, or `application/problem+xml; charset=utf-8` (root `<problem xmlns=\"urn:ietf:rfc:7807\">`, list items as `<i>`) when the client prefers XML. "
            "Validation failures list every broken rule in `errors` (at most 100; the rest counted in `omittedErrors`).\n\n"
            "Problem types:\n" + types_table() + "\n\nField-error codes:\n" + codes_table() + "\n\n"
            "**Request ids.** Every answer of the API operations (customers, admin), errors included, carries `X-Request-Id`, except 503 overloaded / deadline-exceeded, 429 too-many-requests, 408 body-timeout and the HTTP layer's own answers (400 malformed-request for a request that is not well-formed HTTP/1.1, 431 request-head-too-large, 414 uri-too-long), which are application/problem+json whatever Accept says. "
            "The probes and a successful /metrics carry none.\n\n"
            "**Methods.** A known API path asked with a method it does not route answers 405 with `Allow` (`GET, HEAD, PUT` on /api/v01/customers, `GET, HEAD, POST, PATCH, DELETE` on /api/v01/customers/{customerId}, `GET, HEAD` on the others)."
        ),
    },
    "servers": [{"url": "/"}],
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
                "type": "http", "scheme": "bearer",
                "description": "An API key from the key file (`customer-registry keys add`), sent as `Authorization: Bearer <key>`. Scoped to accounts, or admin. Keys are compared in constant time; the key's name is the `actor` of the events its requests cause.",
            }
        },
        "schemas": schemas,
        "parameters": parameters,
        "headers": headers,
        "responses": SHARED_RESPONSES,
    },
}

with open(OUT, "w", encoding="utf-8") as f:
    json.dump(doc, f, indent=2, ensure_ascii=False)
    f.write("\n")
print("wrote", OUT)
