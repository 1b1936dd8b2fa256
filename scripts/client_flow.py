#!/usr/bin/env python3
"""The README's flow through a Python client generated from docs/openapi.json.

    client_flow.py {opc|openapi-generator} --base-url URL --api-key-file FILE
                   --document docs/openapi.json [--generated DIR] [--account N]

scripts/clients.sh generates the clients, installs them and runs this once per client against a
registry of its own. The flow is the README's, top to bottom: create (PUT), find with filters, get
by id with its ETag, update (POST, JSON, If-Match from the GET's ETag), an update built from the
whole model a GET returned with one field changed, a merge patch (PATCH), a stale If-Match (412),
a duplicate code (409), a filter that folds to nothing (400), the history, a delete and the 404
after it. Every request goes through the generated client's typed API; nothing here sends raw
HTTP. Each adapter records what its client put on the wire (headers and body) so that a failure
can say what was sent.

A step that a generated client cannot do because of the document fails with a message naming the
defect (the document path or schema, and what the generator made of it); the other checks of the
step still run, and so do the later steps, so one run lists every defect. Exit status 0 only when
no step failed.

POST takes the update model (components.schemas.CustomerUpdate, whose members are plain strings:
a blank value clears a field), PATCH the merge patch (CustomerMergePatch, where null clears). A
body built from a whole model or read from JSON (from_dict) must clear nothing the caller did not
name, whichever generator made the client.
"""

import argparse
import datetime
import html
import json
import random
import re
import sys
import traceback
import typing
import uuid

CUSTOMER = "/api/v01/customers/{customerId}"
CUSTOMERS = "/api/v01/customers"
SERVER_FIELDS = ("updatedAt", "version")


class Failed(Exception):
    """A check that later checks of the same step cannot do without."""


# ------------------------------------------------------------------------------------------------
# Answers and adapters: one small class per generator, the same operations for the flow.


class Answer:
    """One answer as the generated client gave it: status, headers, the typed value."""

    def __init__(self, status, headers, value):
        self.status = int(status)
        self.headers = headers
        self.value = value

    def header(self, name):
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


class Sent:
    """What the client put on the wire for the last request."""

    def __init__(self, method, url, headers, body):
        self.method = method
        self.url = url
        self.headers = {str(k).lower(): str(v) for k, v in (headers or {}).items()}
        self.body = body

    def content_type(self):
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def describe(self):
        body = json.dumps(self.body, ensure_ascii=False) if self.body is not None else "no body"
        content_type = self.content_type() or "none"
        return f"{self.method} {self.url}, Content-Type {content_type}, body {body}"


def snake(name):
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


class OpenApiPythonClient:
    """openapi-python-client (attrs models, httpx); sync_detailed gives status, headers, parsed."""

    name = "openapi-python-client"

    def __init__(self, base_url, key, document, generated):
        import registry_opc
        from registry_opc.api.customers import (
            create_customer, delete_customer, find_customers, get_customer, get_customer_head,
            get_customer_history, patch_customer, update_customer)
        from registry_opc import models

        self.ops = dict(create=create_customer, delete=delete_customer, find=find_customers,
                        get=get_customer, head=get_customer_head, history=get_customer_history,
                        patch=patch_customer, update=update_customer)
        self.models = models
        self.document = document
        self.sent = None
        self.client = registry_opc.AuthenticatedClient(
            base_url=base_url, token=key, raise_on_unexpected_status=True,
            httpx_args={"event_hooks": {"request": [self._record]}})

    def _record(self, request):
        body = None
        if request.content:
            body = json.loads(request.content)
        self.sent = Sent(request.method, str(request.url), dict(request.headers), body)

    @staticmethod
    def _answer(response):
        return Answer(response.status_code, response.headers, response.parsed)

    def default_base_url(self):
        # The generated Client has no default: base_url is a required argument, so the document's
        # servers never reach it.
        return None

    def documented_headers(self, path, method, status):
        # The generated code keeps no response-header declarations (Response.headers is whatever
        # httpx received), so what the client can learn is the document it was generated from.
        return document_headers(self.document, path, method, status)

    def create(self, body):
        model = self.models.CustomerInput.from_dict(body)
        return self._answer(self.ops["create"].sync_detailed(client=self.client, body=model))

    def find(self, **filters):
        return self._answer(self.ops["find"].sync_detailed(client=self.client, **filters))

    def _by_id(self, operation, customer_id, **arguments):
        return self._answer(self.ops[operation].sync_detailed(
            uuid.UUID(customer_id), client=self.client, **arguments))

    def get(self, customer_id):
        return self._by_id("get", customer_id)

    def head(self, customer_id):
        return self._by_id("head", customer_id)

    def history(self, customer_id):
        return self._by_id("history", customer_id)

    def update(self, customer_id, body, if_match):
        return self._by_id("update", customer_id, body=body, if_match=if_match)

    def patch(self, customer_id, body, if_match):
        return self._by_id("patch", customer_id, body=body, if_match=if_match)

    def delete(self, customer_id, if_match):
        return self._by_id("delete", customer_id, if_match=if_match)

    def update_from_json(self, body):
        return self.models.CustomerUpdate.from_dict(body)

    def update_naming(self, **fields):
        return self.models.CustomerUpdate(**{snake(k): v for k, v in fields.items()})

    def merge_patch_naming(self, **fields):
        return self.models.CustomerMergePatch(**{snake(k): v for k, v in fields.items()})

    def set_field(self, customer, field, value):
        setattr(customer, snake(field), value)

    def update_from_model(self, customer):
        return self.models.CustomerUpdate.from_dict(customer.to_dict())

    def as_json(self, model):
        return json.loads(json.dumps(model.to_dict(), default=str))

    def declared_type(self, model, field):
        # attrs models written with `from __future__ import annotations`: the type as written.
        import attrs

        declared = attrs.fields_dict(type(model))[field].type
        return declared in (int, "int"), declared

    def event_type(self, record):
        event = record.event
        return getattr(event, "event_type", None) if not isinstance(event, str) else None


class OpenApiGenerator:
    """OpenAPI Generator's python client (pydantic models, urllib3); *_with_http_info gives status,
    headers and data, and a non-2xx answer is an ApiException carrying the same."""

    name = "openapi-generator"
    def __init__(self, base_url, key, document, generated):
        import registry_ogen

        self.pkg = registry_ogen
        self.document = document
        self.generated = generated
        self.sent = None
        configuration = registry_ogen.Configuration(host=base_url, access_token=key)
        api_client = registry_ogen.ApiClient(configuration)
        call_api = api_client.call_api

        def recording_call_api(method, url, header_params=None, body=None, *args, **kwargs):
            self.sent = Sent(method, url, header_params, body)
            return call_api(method, url, header_params, body, *args, **kwargs)

        api_client.call_api = recording_call_api
        self.api = registry_ogen.CustomersApi(api_client)

    def _call(self, operation, *args, **kwargs):
        try:
            response = getattr(self.api, operation + "_with_http_info")(*args, **kwargs)
        except self.pkg.ApiException as error:
            if error.status is None:
                raise
            return Answer(error.status, error.headers or {}, error.data)
        return Answer(response.status_code, response.headers, response.data)

    def default_base_url(self):
        return self.pkg.Configuration().host

    def documented_headers(self, path, method, status):
        # The generator writes each operation's response headers into docs/<Tag>Api.md.
        operation = snake(document_operation(self.document, path, method)["operationId"])
        with open(f"{self.generated}/docs/CustomersApi.md", encoding="utf-8") as text:
            doc = text.read()
        section = doc.split(f"# **{operation}**", 1)[1].split("\n# **", 1)[0]
        row = re.search(rf"^\*\*{status}\*\* \|.*$", section, re.M)
        if not row:
            return set()
        return {html.unescape(h) for h in re.findall(r"\* ([A-Za-z0-9-]+) - ", row.group(0))}

    def create(self, body):
        return self._call("create_customer", self.pkg.CustomerInput.from_dict(body))

    def find(self, **filters):
        return self._call("find_customers", **filters)

    def get(self, customer_id):
        return self._call("get_customer", customer_id)

    def head(self, customer_id):
        return self._call("get_customer_head", customer_id)

    def history(self, customer_id):
        return self._call("get_customer_history", customer_id)

    def update(self, customer_id, body, if_match):
        return self._call("update_customer", customer_id, body, if_match=if_match)

    def patch(self, customer_id, body, if_match):
        return self._call("patch_customer", customer_id, body, if_match=if_match)

    def delete(self, customer_id, if_match):
        return self._call("delete_customer", customer_id, if_match=if_match)

    def update_from_json(self, body):
        return self.pkg.CustomerUpdate.from_dict(body)

    def update_naming(self, **fields):
        return self.pkg.CustomerUpdate(**{snake(k): v for k, v in fields.items()})

    def merge_patch_naming(self, **fields):
        return self.pkg.CustomerMergePatch(**{snake(k): v for k, v in fields.items()})

    def set_field(self, customer, field, value):
        setattr(customer, snake(field), value)

    def update_from_model(self, customer):
        return self.pkg.CustomerUpdate.from_dict(customer.to_dict())

    def as_json(self, model):
        return json.loads(model.to_json())

    def declared_type(self, model, field):
        declared = typing.get_type_hints(type(model)).get(field)
        return declared in (int, typing.Optional[int]), declared

    def event_type(self, record):
        event = record.event
        inner = getattr(event, "actual_instance", event)
        return getattr(inner, "event_type", None)


ADAPTERS = {"opc": OpenApiPythonClient, "openapi-generator": OpenApiGenerator}


def document_operation(document, path, method):
    return document["paths"][path][method]


def document_headers(document, path, method, status):
    response = document_operation(document, path, method)["responses"][str(status)]
    if "$ref" in response:
        response = document["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    return set(response.get("headers", {}))


# ------------------------------------------------------------------------------------------------
# The flow.


class Step:
    def __init__(self, name):
        self.name = name
        self.failures = []
        self.notes = []

    def check(self, condition, message):
        if not condition:
            self.failures.append(message)
        return condition

    def require(self, condition, message):
        if not condition:
            raise Failed(message)


class Flow:
    def __init__(self, client, account):
        self.c = client
        self.account = account
        self.code = f"ERP-{account:09d}"
        self.steps = []
        self.state = {}

    # helpers ---------------------------------------------------------------------------------

    def expect(self, step, answer, status, what):
        if answer.status != status:
            detail = ""
            if answer.value is not None and hasattr(answer.value, "to_dict"):
                detail = f": {json.dumps(self.c.as_json(answer.value), ensure_ascii=False)}"
            sent = f" (sent: {self.c.sent.describe()})" if self.c.sent else ""
            raise Failed(f"{what} answered {answer.status}, expected {status}{detail}{sent}")

    def customer_json(self, step, answer, what):
        step.require(answer.value is not None and hasattr(answer.value, "to_dict"),
                     f"{what}: the client gave no customer model (got {answer.value!r})")
        return self.c.as_json(answer.value)

    def etag(self, step, answer, path, method, status, operation):
        """The ETag of an answer, as the client shows it, and whether the document names it."""
        documented = self.c.documented_headers(path, method, status)
        step.check(
            "ETag" in documented,
            f"ETag is not documented for {operation} {status} (paths.{path}.{method}.responses."
            f"{status}.headers names {sorted(documented) or 'nothing'}), so a client generated "
            f"from the document cannot know that this answer carries the version to send back as "
            f"If-Match")
        value = answer.header("ETag")
        step.check(value is not None, f"{operation} {status}: no ETag among the response headers "
                                      f"the client exposes ({sorted(answer.headers.keys())})")
        return value

    def unchanged(self, step, before, after, changed, what):
        """Every field of `before` but the named ones (and the server's) is in `after` as it was."""
        for field in sorted(set(before) | set(after)):
            if field in changed or field in SERVER_FIELDS:
                continue
            if field not in after:
                step.check(False, f"{what}: {field} was cleared (was {before[field]!r}), though "
                                  f"the caller changed only {sorted(changed)}")
            elif before.get(field) != after[field]:
                step.check(False, f"{what}: {field} changed from {before.get(field)!r} to "
                                  f"{after[field]!r}, though the caller changed only "
                                  f"{sorted(changed)}")

    def sent_nulls(self, before, changed):
        """Fields the customer holds that the last request body set to null (null clears a
        field) though the caller did not name them."""
        body = self.c.sent.body if self.c.sent and isinstance(self.c.sent.body, dict) else {}
        return sorted(k for k, v in body.items() if v is None and k in before and k not in changed)

    def problem(self, step, answer, status, problem_type, what):
        """A problem answer decoded as the documented problem type."""
        value = answer.value
        step.require(value is not None and hasattr(value, "to_dict"),
                     f"{what}: the client did not decode the {status} problem (got {value!r})")
        decoded = self.c.as_json(value)
        step.check(decoded.get("type") == problem_type,
                   f"{what}: type {decoded.get('type')!r}, expected {problem_type!r}")
        step.check(type(decoded.get("status")) is int and decoded.get("status") == status,
                   f"{what}: status {decoded.get('status')!r}, expected the integer {status}")
        integer, declared = self.c.declared_type(value, "status")
        step.check(integer,
                   f"{what}: the client's model {type(value).__name__} declares status as "
                   f"{declared!r}, not an integer: components.schemas.{type(value).__name__} "
                   f"gives status only `const: {status}`, without `type: integer`")
        return decoded

    # steps -----------------------------------------------------------------------------------

    def run(self):
        for name, step in [
            ("base-url", self.step_base_url),
            ("create", self.step_create),
            ("create-etag", self.step_create_etag),
            ("find", self.step_find),
            ("get", self.step_get),
            ("head", self.step_head),
            ("update", self.step_update),
            ("update-from-json", self.step_update_from_json),
            ("update-whole-model", self.step_update_whole_model),
            ("patch", self.step_patch),
            ("stale-if-match-412", self.step_stale),
            ("duplicate-code-409", self.step_duplicate),
            ("invalid-filter-400", self.step_invalid_filter),
            ("history", self.step_history),
            ("delete", self.step_delete),
            ("gone-404", self.step_gone),
        ]:
            s = Step(name)
            self.c.sent = None
            try:
                step(s)
            except Failed as failure:
                s.failures.append(str(failure))
            except Exception as error:  # the generated client broke: say where
                frame = traceback.extract_tb(error.__traceback__)[-1]
                s.failures.append(f"the client raised {type(error).__name__}: "
                                  f"{str(error)[:600]} (at {frame.filename}:{frame.lineno})")
            self.steps.append(s)
            status = "FAIL" if s.failures else "PASS"
            print(f"[{self.c.name}] {status} {name}", flush=True)
            for failure in s.failures:
                print(f"[{self.c.name}]      - {failure}", flush=True)
            for note in s.notes:
                print(f"[{self.c.name}]      note: {note}", flush=True)
        return all(not s.failures for s in self.steps)

    def need(self, step, key):
        step.require(key in self.state, f"skipped: an earlier step did not give {key}")
        return self.state[key]

    def step_base_url(self, step):
        url = self.c.default_base_url()
        if url is None:
            step.notes.append("the generated client takes its base URL as a required argument; "
                              "the document's servers do not reach it")
            return
        step.check(re.match(r"^https?://[^/]", url or "") is not None,
                   f"the client's default base URL is {url!r}, which no request can be sent to: "
                   f"the document's servers ({json.dumps(self.c.document.get('servers'))}) give "
                   f"no absolute URL")

    def readme_customer(self):
        """The README's create body, in this run's account and with this run's code."""
        return {"accountId": self.account, "code": self.code, "firstName": "Émile",
                "lastName": "Hamilton", "email": "emile@example.com", "phone": "+1 (212) 555-0101",
                "city": "New York", "state": "NY", "countryCode": "US"}

    def step_create(self, step):
        body = self.readme_customer()
        answer = self.c.create(body)
        sent = self.c.sent.body if self.c.sent and isinstance(self.c.sent.body, dict) else {}
        unnamed = sorted(k for k, v in sent.items() if v is None and k not in body)
        if unnamed:
            step.notes.append(f"the client sent null for {unnamed}, which the caller did not name "
                              f"(harmless in a create: null leaves a field out)")
        self.expect(step, answer, 201, "PUT /api/v01/customers")
        created = self.customer_json(step, answer, "create")
        self.state["id"] = created["id"]
        self.state["created"] = created
        self.state["create-answer"] = answer
        for field, value in body.items():
            step.check(created.get(field) == value,
                       f"create: {field} is {created.get(field)!r}, sent {value!r}")
        step.check(created.get("version") == 1, f"create: version {created.get('version')!r}")
        location = answer.header("Location")
        step.check(location == f"{CUSTOMERS}/{created['id']}", f"create: Location {location!r}")

    def step_create_etag(self, step):
        answer = self.need(step, "create-answer")
        value = self.etag(step, answer, CUSTOMERS, "put", 201, "createCustomer")
        step.check(value in (None, '"1"'), f"create: ETag {value!r}, expected '\"1\"'")

    def step_find(self, step):
        customer_id = self.need(step, "id")
        answer = self.c.find(account_id=self.account, last_name="hamil", limit=10)
        self.expect(step, answer, 200, "find accountId&lastName=hamil&limit=10")
        found = [self.c.as_json(c) for c in answer.value]
        step.check([c["id"] for c in found] == [customer_id],
                   f"find by lastName prefix: {[c['id'] for c in found]}, expected [{customer_id}]")
        step.check(answer.header("X-Total-Count") == "1",
                   f"find: X-Total-Count {answer.header('X-Total-Count')!r}")
        answer = self.c.find(account_id=self.account, code=self.code)
        self.expect(step, answer, 200, "find accountId&code")
        found = [self.c.as_json(c) for c in answer.value]
        step.check([c["id"] for c in found] == [customer_id],
                   f"find by code: {[c['id'] for c in found]}, expected [{customer_id}]")

    def step_get(self, step):
        customer_id = self.need(step, "id")
        answer = self.c.get(customer_id)
        self.expect(step, answer, 200, "GET the customer")
        got = self.customer_json(step, answer, "get")
        step.check(got == self.state["created"],
                   f"get: {got} differs from what the create answered {self.state['created']}")
        self.state["etag"] = self.etag(step, answer, CUSTOMER, "get", 200, "getCustomer")

    def step_head(self, step):
        customer_id = self.need(step, "id")
        answer = self.c.head(customer_id)
        self.expect(step, answer, 200, "HEAD the customer")
        self.etag(step, answer, CUSTOMER, "head", 200, "getCustomerHead")

    def current(self, step, what):
        """GET the customer: its JSON, its model and the ETag the client shows."""
        answer = self.c.get(self.state["id"])
        self.expect(step, answer, 200, f"GET ({what})")
        return self.customer_json(step, answer, what), answer.value, answer.header("ETag")

    def send_update(self, step, method, before, body, if_match, changed, content_type, what,
                    customer_id=None):
        customer_id = customer_id or self.state["id"]
        if method == "POST":
            answer = self.c.update(customer_id, body, if_match)
        else:
            answer = self.c.patch(customer_id, body, if_match)
        sent = self.c.sent
        step.check(sent.content_type() == content_type,
                   f"{what}: the client sent Content-Type {sent.content_type()!r}, not "
                   f"{content_type!r}: paths.{CUSTOMER}.{method.lower()}.requestBody.content "
                   f"lists {sorted(document_operation(self.c.document, CUSTOMER, method.lower())['requestBody']['content'])}")
        step.check(sent.headers.get("if-match") == if_match,
                   f"{what}: the client sent If-Match {sent.headers.get('if-match')!r}, not the "
                   f"GET's ETag {if_match!r}")
        body = sent.body if isinstance(sent.body, dict) else {}
        absent = sorted(k for k, v in body.items() if v is None and k not in set(before) | changed)
        if absent:
            step.notes.append(f"{what}: the client also sent null for {absent}, fields the "
                              f"customer does not hold (harmless: nothing to clear)")
        nulls = self.sent_nulls(before, changed)
        step.check(not nulls,
                   f"{what}: the client sent null for {nulls}, fields the customer holds and the "
                   f"caller did not name, so the update cleared them: every property of the "
                   f"body's schema that admits null is written as null by the generated model "
                   f"(sent: {sent.describe()})")
        self.expect(step, answer, 200, f"{method} {what}")
        return answer

    def step_update(self, step):
        # README, "Updates and deletes": POST the fields that change, JSON, with If-Match from the
        # GET's ETag: the README's change, built with the client's update model naming them.
        etag = self.need(step, "etag")
        before, _, _ = self.current(step, "before the update")
        # The update model's members are plain strings: a blank value clears (null, the README's
        # curl example, is what a merge patch uses).
        change = {"email": "emile@hamilton-fils.example", "phone": ""}
        self.readme_update(step, before, self.c.update_naming(**change), etag, change,
                           "update (README's change, model naming its fields)")

    def step_update_from_json(self, step):
        # The same kind of change with the body written as JSON, as the README shows it, read
        # into the client's update model (from_dict): what a caller porting the curl example does.
        # A generated model's from_dict hands it every property; none may go out as null.
        self.need(step, "id")
        before, _, etag = self.current(step, "before the update from JSON")
        change = {"email": "emile@hamilton.example", "phone": ""}
        self.readme_update(step, before, self.c.update_from_json(change), etag, change,
                           "update (README's body as JSON, read with from_dict)")

    def readme_update(self, step, before, body, etag, change, what):
        answer = self.send_update(step, "POST", before, body, etag, set(change),
                                  "application/json", what)
        step.check(answer.header("ETag") == f'"{before["version"] + 1}"',
                   f"{what}: ETag {answer.header('ETag')!r}")
        after, _, _ = self.current(step, "after the update")
        step.check(after.get("email") == change["email"],
                   f"{what}: email is {after.get('email')!r}")
        step.check("phone" not in after, f"{what}: phone {after.get('phone')!r} was not cleared")
        self.unchanged(step, before, after, set(change), what)

    def step_update_whole_model(self, step):
        # GET a customer, change ONE field on the whole model the client returned, send that model
        # as the update body (POST, JSON, If-Match from the GET's ETag), GET again: every other
        # field is as it was. A customer of its own, so that what earlier steps did to the first
        # one does not matter here.
        answer = self.c.create(dict(self.readme_customer(), code=self.code + "-W"))
        self.expect(step, answer, 201, "PUT /api/v01/customers (a second customer)")
        customer_id = self.customer_json(step, answer, "create")["id"]
        got = self.c.get(customer_id)
        self.expect(step, got, 200, "GET the second customer")
        before, model, etag = self.customer_json(step, got, "get"), got.value, got.header("ETag")
        step.require(etag is not None, "no ETag on the GET to send as If-Match")
        self.c.set_field(model, "city", "Boston")
        body = self.c.update_from_model(model)
        self.send_update(step, "POST", before, body, etag, {"city"}, "application/json",
                         "update from the whole model", customer_id)
        again = self.c.get(customer_id)
        self.expect(step, again, 200, "GET after the whole-model update")
        after = self.customer_json(step, again, "get")
        step.check(after.get("city") == "Boston", f"whole-model update: city {after.get('city')!r}")
        self.unchanged(step, before, after, {"city"}, "update from the whole model")

    def step_patch(self, step):
        # README: PATCH with application/merge-patch+json, a patch naming one field.
        self.need(step, "id")
        before, _, etag = self.current(step, "before the patch")
        body = self.c.merge_patch_naming(state="MA")
        self.send_update(step, "PATCH", before, body, etag, {"state"},
                         "application/merge-patch+json", "merge patch")
        after, _, _ = self.current(step, "after the patch")
        step.check(after.get("state") == "MA", f"patch: state {after.get('state')!r}")
        self.unchanged(step, before, after, {"state"}, "merge patch")
        self.state["version"] = after["version"]

    def step_stale(self, step):
        # README: If-Match naming a version the customer is no longer at is a 412 naming it.
        customer_id = self.need(step, "id")
        version = self.need(step, "version")
        answer = self.c.update(customer_id, self.c.update_naming(city="Paris"), '"1"')
        self.expect(step, answer, 412, "POST with a stale If-Match")
        problem = self.problem(step, answer, 412, "/problems/version-mismatch", "412")
        step.check(problem.get("currentVersion") == version,
                   f"412: currentVersion {problem.get('currentVersion')!r}, expected {version}")
        step.check(answer.header("ETag") == f'"{version}"', f"412: ETag {answer.header('ETag')!r}")

    def step_duplicate(self, step):
        customer_id = self.need(step, "id")
        answer = self.c.create({"accountId": self.account, "code": self.code, "firstName": "Bob"})
        self.expect(step, answer, 409, "a second create of the code")
        problem = self.problem(step, answer, 409, "/problems/duplicate-code", "409")
        step.check(problem.get("customerId") == customer_id,
                   f"409: customerId {problem.get('customerId')!r}, expected {customer_id}")
        step.check(answer.header("Location") == f"{CUSTOMERS}/{customer_id}",
                   f"409: Location {answer.header('Location')!r}")

    def step_invalid_filter(self, step):
        # README, Find: a filter that folds to nothing (a lone combining accent) is a 400.
        answer = self.c.find(account_id=self.account, last_name="\u0301")
        self.expect(step, answer, 400, "find with lastName=U+0301")
        problem = self.problem(step, answer, 400, "/problems/validation-failed", "400")
        errors = [(e.get("field"), e.get("code")) for e in problem.get("errors", [])]
        step.check(errors == [("lastName", "invalid_format")], f"400: errors {errors}")

    def step_history(self, step):
        customer_id = self.need(step, "id")
        answer = self.c.history(customer_id)
        self.expect(step, answer, 200, "GET the customer's events")
        types = [self.c.event_type(record) for record in answer.value]
        step.check(types and types[0] == "CustomerCreated"
                   and all(t == "CustomerUpdated" for t in types[1:]),
                   f"history: event types {types}")

    def step_delete(self, step):
        customer_id = self.need(step, "id")
        _, _, etag = self.current(step, "before the delete")
        answer = self.c.delete(customer_id, etag)
        self.expect(step, answer, 204, "DELETE with If-Match")
        self.state["deleted"] = True

    def step_gone(self, step):
        customer_id = self.need(step, "id")
        self.need(step, "deleted")
        answer = self.c.get(customer_id)
        self.expect(step, answer, 404, "GET after the delete")
        self.problem(step, answer, 404, "/problems/not-found", "404")
        answer = self.c.find(account_id=self.account, code=self.code)
        self.expect(step, answer, 200, "find by code after the delete")
        step.check(not answer.value, f"find after the delete: {len(answer.value)} customers")
        answer = self.c.history(customer_id)
        self.expect(step, answer, 200, "history after the delete")
        types = [self.c.event_type(record) for record in answer.value]
        step.check(types[-1:] == ["CustomerDeleted"], f"history after the delete: {types}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("client", choices=sorted(ADAPTERS))
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key-file", required=True)
    parser.add_argument("--document", required=True)
    parser.add_argument("--generated", help="the generator's output directory")
    parser.add_argument("--account", type=int, default=random.randint(1_000_000, 2_000_000_000))
    args = parser.parse_args()
    with open(args.document, encoding="utf-8") as text:
        document = json.load(text)
    with open(args.api_key_file, encoding="utf-8") as key:
        api_key = key.read().strip()
    client = ADAPTERS[args.client](args.base_url, api_key, document, args.generated)
    flow = Flow(client, args.account)
    started = datetime.datetime.now()
    ok = flow.run()
    failed = [s.name for s in flow.steps if s.failures]
    seconds = (datetime.datetime.now() - started).total_seconds()
    print(f"[{client.name}] {len(flow.steps) - len(failed)} of {len(flow.steps)} steps passed "
          f"in {seconds:.1f} s" + (f"; failed: {', '.join(failed)}" if failed else "")
)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
