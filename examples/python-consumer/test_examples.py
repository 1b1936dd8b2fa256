#!/usr/bin/env python3
"""The self-test: the committed examples of events/ validate against their schemas, open with
the published example KEK through consume.py's own functions, fold as the contract says, and are
exactly what make_examples.py writes. No broker needed.

    python -m unittest -v test_examples      (or: python test_examples.py)
"""

import json
import os
import tempfile
import unittest
import uuid

import jsonschema

import make_examples
from consume import (
    ContractError,
    Inauthentic,
    KeyErased,
    KeyStore,
    KeyUnavailable,
    PERSONAL_FIELDS,
    Registry,
    decode_event,
    erased_event_id,
    erasure_request_id,
    open_personal,
    parse_kek_file,
)

EVENTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "events")
EXAMPLES = os.path.join(EVENTS, "examples")
CUSTOMER = "a7331464-4ce4-581b-9532-a3c975e359b3"
# What the fold shows of the example customer once erased: its readable fields, nothing personal.
ERASED_LINE = {"id": CUSTOMER, "accountId": 42, "code": "ERP-000742", "version": 2,
               "erased": True}

# Each example and the schema it is an instance of.
SCHEMA_OF = {
    "customer-created.v1.json": "customer-created.v1.schema.json",
    "customer-updated.v1.json": "customer-updated.v1.schema.json",
    "customer-deleted.v1.json": "customer-deleted.v1.schema.json",
    "customer-created.v2.json": "customer-created.v2.schema.json",
    "customer-updated.v2.json": "customer-updated.v2.schema.json",
    "customer-deleted.v2.json": "customer-deleted.v2.schema.json",
    "customer-erased.v2.json": "customer-erased.v2.schema.json",
    "data-key-record.v1.json": "data-key-record.v1.schema.json",
    "keys-erased-record.v1.json": "keys-erased-record.v1.schema.json",
}


def load(folder, name):
    with open(os.path.join(folder, name), encoding="utf-8") as file:
        return json.load(file)


def as_bytes(value):
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def example(name):
    return load(EXAMPLES, name)


def event(name):
    return decode_event(as_bytes(example(name)))


def keystore():
    """The example KEK, and the example customer's key record as the keys topic delivers it."""
    with open(os.path.join(EXAMPLES, "example-kek.jsonl"), encoding="utf-8") as file:
        keys = KeyStore(parse_kek_file(file.read()))
    record = example("data-key-record.v1.json")
    keys.apply_record(f"{record['customerId']}/{record['keyId']}".encode(), as_bytes(record))
    return keys


def validator(schema_name):
    schema = load(EVENTS, schema_name)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


class Schemas(unittest.TestCase):
    def test_every_example_validates_against_its_schema(self):
        for example_name, schema_name in SCHEMA_OF.items():
            with self.subTest(example_name):
                validator(schema_name).validate(example(example_name))

    def test_every_example_and_schema_is_covered(self):
        on_disk = {name for name in os.listdir(EXAMPLES) if name.endswith(".json")}
        self.assertEqual(on_disk, set(SCHEMA_OF))
        schemas = {name for name in os.listdir(EVENTS) if name.endswith(".schema.json")}
        self.assertEqual(schemas, set(SCHEMA_OF.values()))

    def test_v2_data_takes_unknown_members_but_no_plain_personal_field(self):
        for name in ("customer-created.v2.json", "customer-updated.v2.json",
                     "customer-deleted.v2.json", "customer-erased.v2.json"):
            with self.subTest(name):
                check = validator(SCHEMA_OF[name])
                later = example(name)
                later["data"]["addedInV2_1"] = "ignored by this reader"
                later["addedToTheEnvelope"] = 1
                check.validate(later)
                leaked = example(name)
                leaked["data"]["email"] = "emile.hamilton@example.com"
                self.assertFalse(check.is_valid(leaked), "a plain personal field")
        changes = example("customer-updated.v2.json")
        changes["data"]["changes"] = {"email": "x@example.com"}
        self.assertFalse(validator("customer-updated.v2.schema.json").is_valid(changes))

    def test_the_erasure_schema_refuses_what_the_contract_forbids(self):
        check = validator("customer-erased.v2.schema.json")
        sealed = example("customer-erased.v2.json")
        sealed["data"]["personal"] = example("customer-created.v2.json")["data"]["personal"]
        version_1 = example("customer-erased.v2.json")
        version_1["schemaVersion"] = 1
        random_id = example("customer-erased.v2.json")
        random_id["eventId"] = "019abbb2-3c41-7a9e-8d15-2e4f6a8b0c1e"
        no_request = example("customer-erased.v2.json")
        del no_request["data"]["erasureRequestId"]
        deleted = example("customer-deleted.v2.json")
        for broken in (sealed, version_1, random_id, no_request, deleted):
            self.assertFalse(check.is_valid(broken), broken)

    def test_a_v2_event_without_personal_or_with_bad_base64_is_invalid(self):
        for name in ("customer-created.v2.json", "customer-updated.v2.json"):
            check = validator(SCHEMA_OF[name])
            missing = example(name)
            del missing["data"]["personal"]
            self.assertFalse(check.is_valid(missing))
            urlsafe = example(name)
            urlsafe["data"]["personal"]["sealed"] = "-_" + urlsafe["data"]["personal"]["sealed"][2:]
            self.assertFalse(check.is_valid(urlsafe))


class Decrypt(unittest.TestCase):
    def test_the_create_opens_to_the_v1_create_s_personal_fields(self):
        v1 = example("customer-created.v1.json")["data"]
        expected = {name: v1[name] for name in PERSONAL_FIELDS if name in v1}
        opened = open_personal(event("customer-created.v2.json"), keystore())
        self.assertEqual(opened, expected)
        self.assertEqual(list(opened), list(expected), "in the contract's order")
        self.assertEqual(opened["firstName"], "Émile")

    def test_the_update_opens_to_the_v1_update_s_changes(self):
        opened = open_personal(event("customer-updated.v2.json"), keystore())
        self.assertEqual(opened, example("customer-updated.v1.json")["data"]["changes"])
        self.assertIsNone(opened["phone"], "a cleared field is null")

    def test_the_wrapped_key_opens_for_its_customer_only(self):
        keys = keystore()
        self.assertEqual(len(keys.data_key(CUSTOMER, make_examples.KEY_ID)), 32)
        moved = example("data-key-record.v1.json")
        other = "019abb9c-4f2e-7a10-8c55-2f0d6e9b1c43"
        moved["customerId"] = other
        keys.apply_record(f"{other}/{moved['keyId']}".encode(), as_bytes(moved))
        with self.assertRaises(KeyUnavailable):
            keys.data_key(other, moved["keyId"])

    def test_a_seal_moved_to_another_event_or_version_does_not_open(self):
        keys = keystore()
        moved = example("customer-updated.v2.json")
        moved["eventId"] = "019abba1-7c3e-7d42-a1f0-3c5e7b9d2f62"
        with self.assertRaises(Inauthentic):
            open_personal(decode_event(as_bytes(moved)), keys)
        created = example("customer-created.v2.json")
        moved = example("customer-updated.v2.json")
        moved["data"]["personal"] = created["data"]["personal"]
        with self.assertRaises(Inauthentic):
            open_personal(decode_event(as_bytes(moved)), keys)

    def test_after_the_erased_marker_no_key_opens_and_none_is_minted_again(self):
        keys = keystore()
        marker = example("keys-erased-record.v1.json")
        erased = keys.apply_record(CUSTOMER.encode(), as_bytes(marker))
        self.assertEqual(erased, CUSTOMER)
        record = example("data-key-record.v1.json")
        keys.apply_record(f"{CUSTOMER}/{record['keyId']}".encode(), as_bytes(record))
        with self.assertRaises(KeyUnavailable):
            open_personal(event("customer-created.v2.json"), keys)

    def test_the_erasure_example_decodes_with_ids_derived_from_its_customer(self):
        erased = event("customer-erased.v2.json")
        self.assertEqual((erased.event_type, erased.schema_version, erased.customer_id,
                          erased.account_id, erased.version),
                         ("CustomerErased", 2, CUSTOMER, 42, None))
        # Derived here as events/README.md says, apart from consume.py's own functions.
        request = uuid.uuid5(uuid.UUID("6f1c2a9e-41d7-4b8a-a0e3-5d92c7b418f6"), CUSTOMER)
        event_id = uuid.uuid5(uuid.UUID("0d5e93b1-7c44-4f02-b6a8-e1f72c395a60"), str(request))
        self.assertEqual(erased.erasure_request_id, str(request))
        self.assertEqual(erased.event_id, str(event_id))
        self.assertEqual((erasure_request_id(CUSTOMER), erased_event_id(CUSTOMER)),
                         (str(request), str(event_id)))
        # Requested when the marker was written: the event's time is the marker's.
        self.assertEqual(example("customer-erased.v2.json")["occurredAt"],
                         example("keys-erased-record.v1.json")["erasedAt"])
        self.assertIsNone(erased.personal)
        self.assertIsNone(erased.plain)

    def test_a_tombstone_destroys_the_key(self):
        keys = keystore()
        keys.apply_record(f"{CUSTOMER}/{make_examples.KEY_ID}".encode(), None)
        with self.assertRaises(KeyUnavailable):
            keys.data_key(CUSTOMER, make_examples.KEY_ID)

    def test_a_kek_file_error_names_the_line_and_never_the_key(self):
        secret = "ab" * 31
        for bad, says in [
            (f'{{"id":"kek-1","key":"{secret}","createdAt":"2026-12-06T00:00:00Z"}}', "32 bytes"),
            (f'{{"id":"k1","key":"{secret}ab","createdAt":"2026-12-06T00:00:00Z"}}', "an id is"),
            (f'{{"id":"kek-3","key":"{secret}ab"}}', "not a KEK"),
        ]:
            with self.assertRaises(ContractError) as raised:
                parse_kek_file(f"\n{bad}\n")
            self.assertIn("line 2", str(raised.exception))
            self.assertIn(says, str(raised.exception))
            self.assertNotIn(secret, str(raised.exception))


class Fold(unittest.TestCase):
    def fold(self, names, keys=None):
        registry = Registry(keys or keystore())
        for name in names:
            registry.apply(event(name))
        return registry

    def test_create_and_update_fold_to_the_customer_at_version_2(self):
        registry = self.fold(["customer-created.v2.json", "customer-updated.v2.json"])
        v1 = example("customer-created.v1.json")["data"]
        expected = {"id": CUSTOMER, "accountId": 42, "code": "ERP-000742", "version": 2}
        expected.update((name, v1[name]) for name in PERSONAL_FIELDS if name in v1)
        expected["email"] = "emile@hamilton-fils.example"
        del expected["phone"]
        self.assertEqual(registry.live_lines(), [expected])

    def test_a_deleted_customer_is_not_listed(self):
        names = ["customer-created.v2.json", "customer-updated.v2.json", "customer-deleted.v2.json"]
        registry = self.fold(names)
        self.assertEqual(registry.live_lines(), [])
        self.assertEqual(registry.counts["applied"], 3)

    def test_duplicates_and_races_are_skipped_by_name(self):
        names = ["customer-created.v2.json", "customer-created.v2.json",
                 "customer-updated.v2.json", "customer-updated.v2.json"]
        registry = self.fold(names)
        self.assertEqual(registry.counts["duplicate"], 2)
        self.assertEqual(registry.live_lines()[0]["version"], 2)
        losing_create = example("customer-created.v2.json")
        losing_create["eventId"] = "019abb9c-4f2e-7c31-9d0a-5be1f3a47e21"
        self.assertIsNone(registry.apply(decode_event(as_bytes(losing_create))))
        self.assertEqual(registry.counts["conflict"], 1)
        stale_delete = example("customer-deleted.v2.json")
        stale_delete["data"]["version"] = 2
        self.assertIsNone(registry.apply(decode_event(as_bytes(stale_delete))))
        self.assertEqual(registry.counts["version_conflict"], 1)
        other_account = example("customer-deleted.v2.json")
        other_account["data"]["accountId"] = 43
        self.assertIsNone(registry.apply(decode_event(as_bytes(other_account))))
        self.assertEqual(registry.counts["conflict"], 2)

    def test_an_erased_customers_events_fold_by_their_readable_fields_without_error(self):
        keys = keystore()
        keys.apply_record(CUSTOMER.encode(), as_bytes(example("keys-erased-record.v1.json")))
        registry = self.fold(["customer-created.v2.json", "customer-updated.v2.json"], keys)
        self.assertEqual(registry.live_lines(), [ERASED_LINE])
        self.assertEqual(registry.customers[CUSTOMER].version, 2, "versions stay readable")
        self.assertEqual(registry.counts["applied"], 2)
        self.assertEqual(registry.counts["events of erased customers folded unopened"], 2)
        self.assertEqual(registry.counts["events whose key is unavailable"], 0)
        self.assertEqual(registry.counts["events whose seal does not open"], 0)

    def test_erasing_a_held_customer_drops_its_personal_fields(self):
        registry = self.fold(["customer-created.v2.json"])
        registry.erase(CUSTOMER)
        self.assertEqual(registry.live_lines(), [dict(ERASED_LINE, version=1)])

    def test_create_update_and_erasure_fold_to_an_erased_customer_with_no_personal_field(self):
        keys = keystore()
        registry = self.fold(["customer-created.v2.json", "customer-updated.v2.json",
                              "customer-erased.v2.json"], keys)
        self.assertEqual(registry.live_lines(), [ERASED_LINE])
        customer = registry.customers[CUSTOMER]
        self.assertTrue(customer.erased)
        self.assertIsNone(customer.fields)
        self.assertEqual(registry.counts["applied"], 3)
        # The event, read before the marker, already forgets the keys and takes none again.
        with self.assertRaises(KeyErased):
            keys.data_key(CUSTOMER, make_examples.KEY_ID)
        record = example("data-key-record.v1.json")
        keys.apply_record(f"{CUSTOMER}/{record['keyId']}".encode(), as_bytes(record))
        with self.assertRaises(KeyErased):
            keys.data_key(CUSTOMER, make_examples.KEY_ID)

    def test_a_second_erasure_changes_nothing(self):
        names = ["customer-created.v2.json", "customer-updated.v2.json",
                 "customer-erased.v2.json"]
        registry = self.fold(names)
        self.assertIsNone(registry.apply(event("customer-erased.v2.json")))
        other_id = example("customer-erased.v2.json")
        other_id["eventId"] = "019abbb2-3c41-7a9e-8d15-2e4f6a8b0c1e"
        self.assertIsNone(registry.apply(decode_event(as_bytes(other_id))))
        self.assertEqual(registry.counts["duplicate"], 2)
        self.assertEqual(registry.counts["applied"], 3)
        self.assertEqual(registry.live_lines(), [ERASED_LINE])

    def test_nothing_applies_to_an_erased_customer(self):
        registry = self.fold(["customer-created.v2.json", "customer-erased.v2.json"])
        self.assertIsNone(registry.apply(event("customer-updated.v2.json")))
        late_delete = example("customer-deleted.v2.json")
        late_delete["data"]["version"] = 2
        self.assertIsNone(registry.apply(decode_event(as_bytes(late_delete))))
        self.assertEqual(registry.counts["customer_absent"], 2)
        recreate = example("customer-created.v2.json")
        recreate["eventId"] = "019abb9c-4f2e-7c31-9d0a-5be1f3a47e21"
        self.assertIsNone(registry.apply(decode_event(as_bytes(recreate))))
        self.assertEqual(registry.counts["conflict"], 1)
        self.assertEqual(registry.live_lines(), [dict(ERASED_LINE, version=1)])

    def test_the_marker_read_before_the_event_already_hides_the_personal_fields(self):
        keys = keystore()
        registry = self.fold(["customer-created.v2.json", "customer-updated.v2.json"], keys)
        self.assertIn("email", registry.live_lines()[0])
        erased = keys.apply_record(CUSTOMER.encode(),
                                   as_bytes(example("keys-erased-record.v1.json")))
        registry.erase(erased)
        self.assertEqual(registry.live_lines(), [ERASED_LINE])
        self.assertFalse(registry.customers[CUSTOMER].erased, "the event has not applied yet")
        registry.apply(event("customer-erased.v2.json"))
        self.assertTrue(registry.customers[CUSTOMER].erased)
        self.assertEqual(registry.live_lines(), [ERASED_LINE])
        self.assertEqual(registry.counts["applied"], 3)

    def test_a_deleted_customer_is_listed_again_once_erased(self):
        names = ["customer-created.v2.json", "customer-updated.v2.json",
                 "customer-deleted.v2.json", "customer-erased.v2.json"]
        registry = self.fold(names)
        self.assertEqual(registry.live_lines(), [dict(ERASED_LINE, version=3)])
        self.assertEqual(registry.customers[CUSTOMER].change_line(),
                         dict(ERASED_LINE, version=3))

    def test_an_erasure_of_another_account_or_of_no_customer_is_skipped(self):
        other_account = example("customer-erased.v2.json")
        other_account["data"]["accountId"] = 43
        registry = Registry(keystore())
        self.assertIsNone(registry.apply(decode_event(as_bytes(other_account))))
        self.assertEqual(registry.counts["customer_absent"], 1)
        registry.apply(event("customer-created.v2.json"))
        self.assertIsNone(registry.apply(decode_event(as_bytes(other_account))))
        self.assertEqual(registry.counts["conflict"], 1)
        self.assertNotIn("erased", registry.live_lines()[0])

    def test_plain_v1_fields_of_an_erased_customer_are_not_taken_either(self):
        keys = keystore()
        keys.apply_record(CUSTOMER.encode(), as_bytes(example("keys-erased-record.v1.json")))
        registry = self.fold(["customer-created.v1.json"], keys)
        self.assertEqual(registry.live_lines(), [dict(ERASED_LINE, version=1)])

    def test_v1_events_fold_alike(self):
        registry = self.fold(["customer-created.v1.json", "customer-updated.v1.json"])
        line = registry.live_lines()[0]
        self.assertEqual((line["id"], line["version"], line["email"]),
                         (CUSTOMER, 1, "emile.hamilton@example.com"))
        # The v1 update example is about another customer, which no event here created.
        self.assertEqual(registry.counts["customer_absent"], 1)

    def test_unknown_types_and_newer_versions_are_skipped_and_unknown_members_ignored(self):
        # CustomerErased is new in v2: at version 1 it is no type of the contract.
        erased = {"eventId": "019abbb0-0000-7000-8000-000000000000", "eventType": "CustomerErased",
                  "schemaVersion": 1, "occurredAt": "2026-11-28T08:15:02.541Z",
                  "data": {"id": CUSTOMER}}
        self.assertIsNone(decode_event(as_bytes(erased)))
        newer = example("customer-created.v2.json")
        newer["schemaVersion"] = 3
        self.assertIsNone(decode_event(as_bytes(newer)))
        later = example("customer-created.v2.json")
        later["data"]["addedInV2_1"] = {"anything": True}
        self.assertEqual(decode_event(as_bytes(later)), event("customer-created.v2.json"))
        newer_erasure = example("customer-erased.v2.json")
        newer_erasure["schemaVersion"] = 3
        self.assertIsNone(decode_event(as_bytes(newer_erasure)))
        later_erasure = example("customer-erased.v2.json")
        later_erasure["data"]["addedInV2_1"] = 1
        self.assertEqual(decode_event(as_bytes(later_erasure)), event("customer-erased.v2.json"))


class Regenerate(unittest.TestCase):
    def test_make_examples_writes_exactly_the_committed_files(self):
        with tempfile.TemporaryDirectory() as out:
            for path in make_examples.write(out):
                name = os.path.basename(path)
                with open(path, "rb") as fresh, open(os.path.join(EXAMPLES, name), "rb") as kept:
                    self.assertEqual(fresh.read(), kept.read(), name)

    def test_each_sealed_value_has_a_nonce_of_its_own(self):
        nonces = {make_examples.fixed_nonce(label) for label in ("created", "updated", "wrap")}
        self.assertEqual(len(nonces), 3)


if __name__ == "__main__":
    unittest.main()
