#!/usr/bin/env python3
"""An independent consumer of the customer-registry event contract (events/README.md).

It reads the wrapped data keys from `<topic>.keys`, then the events of `<topic>` from the
beginning of every partition, opens the sealed personal fields of contract v2 (and reads v1's
plain ones), folds the events into each customer's current state by the contract's rules and
prints one JSON object a line per live or erased customer, sorted by id:

    {"id": ..., "accountId": ..., "code": ..., "version": ..., "firstName": ..., ...}
    {"id": ..., "accountId": ..., "code": ..., "version": ..., "erased": true}
                                           (its personal data erased: marker or CustomerErased)
    {"id": ..., "unreadable": true}        (an event of it does not open: key missing, KEK
                                            not in the file, or altered bytes)

It is written from events/ alone, without the registry's code, to prove that the contract is
enough. The functions above `main` need no broker: test_examples.py and make_examples.py import
them. Nothing personal is ever written to stderr: only counts, ids and log positions.
"""

import argparse
import base64
import binascii
import json
import os
import re
import stat
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# The customer's personal fields, in the contract's order: sealed in v2, plain in v1.
PERSONAL_FIELDS = (
    "firstName",
    "lastName",
    "organizationName",
    "email",
    "phone",
    "street",
    "city",
    "state",
    "zipCode",
    "countryCode",
)

EVENT_TYPES = ("CustomerCreated", "CustomerUpdated", "CustomerDeleted", "CustomerErased")
# The newest schema version this consumer reads; a newer one is parked (skipped and counted).
NEWEST_SCHEMA_VERSION = 2
# The first schema version of a type added after v1: below it, the type is not the contract's.
FIRST_SCHEMA_VERSION = {"CustomerErased": 2}

# An erasure's ids derive from the customer's (UUIDv5, RFC 9562): one customer, one erasure.
ERASURE_NAMESPACE = uuid.UUID("6f1c2a9e-41d7-4b8a-a0e3-5d92c7b418f6")
ERASED_EVENT_NAMESPACE = uuid.UUID("0d5e93b1-7c44-4f02-b6a8-e1f72c395a60")

# A wrapped data key's associated data starts with this, then the customer id's 16 bytes.
WRAP_CONTEXT = b"customer-registry data key v1\x00"
NONCE_BYTES = 12
TAG_BYTES = 16
DATA_KEY_BYTES = 32

KEK_ID = re.compile(r"kek-[A-Za-z0-9]{1,64}")
KEY_ID = re.compile(r"[0-9a-f]{16}")
UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class ContractError(ValueError):
    """A record that is not what the contract says. Its message names no value from the record."""


class KeyUnavailable(Exception):
    """A customer's data key cannot be had: erased, never seen, or its KEK is not in the file."""


class KeyErased(KeyUnavailable):
    """The customer's keys were erased (its KeysErased marker, or its CustomerErased, was read):
    its events never open again, which is how erasure works, not a fault."""


class Inauthentic(Exception):
    """Sealed bytes that do not open with the key and associated data they claim."""


# --- keys -------------------------------------------------------------------------------------


def parse_kek_file(text):
    """The KEKs of a KEK file's text, `{id: key bytes}`: one JSON object a line,
    `{"id": "kek-...", "key": "<64 hex digits>", "createdAt": "..."}`; blank lines skipped.

    Raises ContractError naming the line (never the key) when a line is not a KEK."""
    keks = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            kek_id, key_hex, created_at = entry["id"], entry["key"], entry["createdAt"]
        except (ValueError, KeyError, TypeError):
            raise ContractError(f"line {number}: not a KEK (id, key, createdAt)") from None
        if not (isinstance(kek_id, str) and KEK_ID.fullmatch(kek_id)):
            raise ContractError(f"line {number}: an id is kek- then letters and digits")
        if not isinstance(created_at, str):
            raise ContractError(f"line {number}: the createdAt of {kek_id} is not a time")
        if not (isinstance(key_hex, str) and re.fullmatch(r"[0-9a-fA-F]{64}", key_hex)):
            raise ContractError(f"line {number}: the key of {kek_id} is not 32 bytes in hex")
        if kek_id in keks:
            raise ContractError(f"line {number}: the id {kek_id} is given twice")
        keks[kek_id] = bytes.fromhex(key_hex)
    if not keks:
        raise ContractError("the file holds no key-encryption key")
    return keks


def load_kek_file(path):
    """The KEKs of the file at `path` (see parse_kek_file). Warns on stderr when others than its
    owner may read it: the registry refuses such a file, this example only says so."""
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        print(f"consume.py: {path} is readable by others (mode {mode:o}); a real KEK file "
              "must be 0600", file=sys.stderr)
    with open(path, encoding="utf-8") as file:
        return parse_kek_file(file.read())


def decode_base64(text):
    """Bytes of standard base64 with padding, strictly (no other alphabet, no whitespace)."""
    if not isinstance(text, str):
        raise ContractError("a sealed value is not a string")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ContractError("a sealed value is not standard base64") from None


def open_sealed(key, sealed, context):
    """The plaintext of `sealed` (nonce ‖ ciphertext ‖ tag) under the AES-256-GCM `key`, with the
    associated data `context`. Raises Inauthentic for another key, another context or altered
    bytes."""
    if len(sealed) < NONCE_BYTES + TAG_BYTES:
        raise Inauthentic("too short to be sealed")
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], context)
    except InvalidTag:
        raise Inauthentic("does not open with this key and context") from None


def lower_case_uuid(text, what):
    """`text`, when it is a UUID in the lower-case hyphenated form the associated data uses."""
    if not (isinstance(text, str) and UUID_TEXT.fullmatch(text)):
        raise ContractError(f"{what} is not a lower-case hyphenated UUID")
    return text


def wrap_context(customer_id):
    """Associated data of a customer's wrapped data key: the purpose, a zero byte, and the
    customer id's 16 bytes."""
    return WRAP_CONTEXT + uuid.UUID(customer_id).bytes


def event_context(customer_id, event_id, schema_version):
    """Associated data of an event's sealed personal fields: `<customerId>|<eventId>|<version>`."""
    return f"{customer_id}|{event_id}|{schema_version}".encode("ascii")


def erasure_request_id(customer_id):
    """The id of a customer's erasure request (its marker's `requestId`, its CustomerErased's
    `data.erasureRequestId`): the UUIDv5 of the customer id's text."""
    return str(uuid.uuid5(ERASURE_NAMESPACE, lower_case_uuid(customer_id, "the customer id")))


def erased_event_id(customer_id):
    """The `eventId` of a customer's CustomerErased: the UUIDv5 of its erasure request id's
    text."""
    return str(uuid.uuid5(ERASED_EVENT_NAMESPACE, erasure_request_id(customer_id)))


@dataclass
class WrappedKey:
    """A data key as the keys topic holds it: the KEK that wrapped it, and the wrapped bytes."""

    kek_id: str
    wrapped: bytes


class KeyStore:
    """The wrapped data keys and erased markers read from `<topic>.keys`, and the KEKs that
    unwrap them. `catch_up`, when given, reads the keys topic on to its end: it is called once
    before a key is declared missing (a key is written before the first event it seals)."""

    def __init__(self, keks, catch_up=None):
        self.keks = keks
        self.catch_up = catch_up
        self.wrapped = {}  # (customerId, keyId) -> WrappedKey
        self.erased = set()  # customer ids with a KeysErased marker
        self.unwrapped = {}  # (customerId, keyId) -> data key bytes, a cache
        self.counts = Counter()

    def apply_record(self, record_key, value):
        """Applies one record of the keys topic: `record_key` and `value` as bytes (value None
        for a tombstone). Returns the id of a customer a KeysErased marker erased, else None."""
        key_text = record_key.decode("utf-8", "replace") if record_key is not None else ""
        if value is None:
            customer_id, _, key_id = key_text.partition("/")
            if key_id:
                self._forget((customer_id, key_id))
                self.counts["key tombstones"] += 1
            else:
                # The marker is never tombstoned, and erasure cannot be undone: ignored.
                self.counts["ignored key records"] += 1
            return None
        try:
            record = json.loads(value)
            kind = record["type"] if isinstance(record, dict) else None
        except (ValueError, KeyError):
            kind = None
        try:
            if kind == "DataKey":
                self._apply_data_key(key_text, record)
            elif kind == "KeysErased":
                return self._apply_erased(key_text, record)
            else:
                self.counts["ignored key records"] += 1
        except ContractError:
            self.counts["malformed key records"] += 1
        return None

    def _apply_data_key(self, key_text, record):
        customer_id = lower_case_uuid(record.get("customerId"), "customerId")
        key_id = record.get("keyId")
        kek_id = record.get("kekId")
        if not (isinstance(key_id, str) and KEY_ID.fullmatch(key_id)):
            raise ContractError("keyId is not 16 hex digits")
        if not (isinstance(kek_id, str) and KEK_ID.fullmatch(kek_id)):
            raise ContractError("kekId is not a KEK id")
        if key_text != f"{customer_id}/{key_id}":
            raise ContractError("the record key is not <customerId>/<keyId>")
        wrapped = decode_base64(record.get("wrappedKey"))
        if len(wrapped) != NONCE_BYTES + DATA_KEY_BYTES + TAG_BYTES:
            raise ContractError("wrappedKey is not a wrapped 32-byte key")
        if customer_id in self.erased:
            # Never re-minted for an erased customer: a key record after the marker is ignored.
            self.counts["keys of erased customers ignored"] += 1
            return
        self.wrapped[(customer_id, key_id)] = WrappedKey(kek_id, wrapped)
        self.counts["data keys"] += 1

    def _apply_erased(self, key_text, record):
        customer_id = lower_case_uuid(record.get("customerId"), "customerId")
        if key_text != customer_id:
            raise ContractError("the record key of a KeysErased is not the customer id")
        self.erase(customer_id)
        self.counts["erased markers"] += 1
        return customer_id

    def erase(self, customer_id):
        """Forgets every key of `customer_id`, wrapped or not, and takes none of it again: on its
        KeysErased marker, or on its CustomerErased when the event is read first."""
        self.erased.add(customer_id)
        for held in [held for held in set(self.wrapped) | set(self.unwrapped)
                     if held[0] == customer_id]:
            self._forget(held)

    def is_erased(self, customer_id):
        """Whether the customer's keys were erased (marker or event read)."""
        return customer_id in self.erased

    def _forget(self, held):
        self.wrapped.pop(held, None)
        self.unwrapped.pop(held, None)

    def data_key(self, customer_id, key_id):
        """The data key `key_id` of `customer_id`, unwrapped. Raises KeyUnavailable when the
        customer was erased (KeyErased), the key is not (or no longer) in the topic, its KEK is
        not in the KEK file, or the wrapped key does not open for this customer."""
        held = (customer_id, key_id)
        if customer_id in self.erased:
            raise KeyErased("erased")
        if held in self.unwrapped:
            return self.unwrapped[held]
        if held not in self.wrapped and self.catch_up is not None:
            self.catch_up()
        if customer_id in self.erased:
            raise KeyErased("erased")
        wrapped = self.wrapped.get(held)
        if wrapped is None:
            raise KeyUnavailable("no such key in the keys topic")
        kek = self.keks.get(wrapped.kek_id)
        if kek is None:
            raise KeyUnavailable(f"its KEK {wrapped.kek_id} is not in the KEK file")
        try:
            key = open_sealed(kek, wrapped.wrapped, wrap_context(customer_id))
        except Inauthentic:
            raise KeyUnavailable("the wrapped key does not open for this customer") from None
        if len(key) != DATA_KEY_BYTES:
            raise KeyUnavailable("the wrapped key is not 32 bytes")
        self.unwrapped[held] = key
        return key


# --- events -----------------------------------------------------------------------------------


@dataclass
class Event:
    """The readable part of an event: what folding needs. Personal content stays as it came
    (`personal` sealed in v2, `plain` in v1) until the fold decides the event applies."""

    event_id: str
    event_type: str
    schema_version: int
    customer_id: str
    account_id: int
    version: int  # the version the customer has once it applies (1 for a create, None for an
    # erasure, which gives none)
    code: str = None
    personal: dict = None  # v2: {"keyId", "sealed"}
    plain: dict = None  # v1: a create's present personal fields, or an update's `changes`
    erasure_request_id: str = None  # a CustomerErased's


def decode_event(value):
    """The Event a record's value holds, or None for an event type or schema version this
    consumer does not read (the contract asks to skip those). Raises ContractError when the
    value is not an event of the contract."""
    try:
        envelope = json.loads(value)
    except (ValueError, TypeError):
        raise ContractError("the value is not JSON") from None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("data"), dict):
        raise ContractError("the value is not an envelope with data")
    event_type = envelope.get("eventType")
    version = envelope.get("schemaVersion")
    if event_type not in EVENT_TYPES:
        return None
    if type(version) is not int or version < 1:
        raise ContractError("schemaVersion is not a positive integer")
    if version > NEWEST_SCHEMA_VERSION or version < FIRST_SCHEMA_VERSION.get(event_type, 1):
        return None
    data = envelope["data"]
    if event_type == "CustomerErased":
        event = Event(
            event_id=lower_case_uuid(envelope.get("eventId"), "eventId"),
            event_type=event_type,
            schema_version=version,
            customer_id=lower_case_uuid(data.get("id"), "data.id"),
            account_id=data.get("accountId"),
            version=None,
            erasure_request_id=lower_case_uuid(data.get("erasureRequestId"),
                                               "data.erasureRequestId"),
        )
        if type(event.account_id) is not int:
            raise ContractError("data.accountId is not an integer")
        return event
    event = Event(
        event_id=lower_case_uuid(envelope.get("eventId"), "eventId"),
        event_type=event_type,
        schema_version=version,
        customer_id=lower_case_uuid(data.get("id"), "data.id"),
        account_id=data.get("accountId"),
        version=1 if event_type == "CustomerCreated" else data.get("version"),
    )
    if type(event.account_id) is not int or type(event.version) is not int:
        raise ContractError("data.accountId or data.version is not an integer")
    if event_type != "CustomerCreated" and event.version < 2:
        raise ContractError("data.version of a change is not 2 or more")
    if event_type == "CustomerCreated":
        code = data.get("code", event.customer_id)
        if not isinstance(code, str):
            raise ContractError("data.code is not a string")
        event.code = code
    if event_type == "CustomerDeleted":
        return event
    if version == 1:
        if event_type == "CustomerCreated":
            event.plain = {name: data[name] for name in PERSONAL_FIELDS if name in data}
        elif isinstance(data.get("changes"), dict):
            event.plain = data["changes"]
        else:
            raise ContractError("a v1 CustomerUpdated has no data.changes object")
        return event
    personal = data.get("personal")
    if not (isinstance(personal, dict) and isinstance(personal.get("keyId"), str)
            and KEY_ID.fullmatch(personal["keyId"]) and isinstance(personal.get("sealed"), str)):
        raise ContractError("data.personal is not {keyId, sealed}")
    event.personal = personal
    return event


def open_personal(event, keys):
    """The personal content of an event that applies: a create's present fields, or an
    update's merge patch (null for a cleared field). Only the contract's personal fields are
    kept; unknown members are ignored, as the contract asks. Raises KeyUnavailable or
    Inauthentic when a v2 event's seal does not open, ContractError when what it holds is not
    the contract's."""
    if event.plain is not None:
        content = event.plain
    else:
        key = keys.data_key(event.customer_id, event.personal["keyId"])
        sealed = decode_base64(event.personal["sealed"])
        context = event_context(event.customer_id, event.event_id, event.schema_version)
        try:
            content = json.loads(open_sealed(key, sealed, context).decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ContractError("the plaintext is not UTF-8 JSON") from None
        if not isinstance(content, dict):
            raise ContractError("the plaintext is not a JSON object")
    # A create names present fields only; an update's null clears a field.
    may_clear = event.event_type == "CustomerUpdated"
    opened = {}
    for name in PERSONAL_FIELDS:
        if name in content:
            value = content[name]
            if not (isinstance(value, str) or (value is None and may_clear)):
                raise ContractError(f"{name} is neither text nor a cleared field")
            opened[name] = value
    return opened


# --- folding ----------------------------------------------------------------------------------


@dataclass
class Customer:
    """A customer as the fold holds it. `fields` is None once one of its applied events did not
    open, or once its personal data was erased: its readable state (id, account, code, version)
    is still known, its personal fields are not.

    `erased` is the fold's state: a CustomerErased applied, and nothing changes the customer
    again. `personal_erased` says its personal data is gone for good: its keys were erased (its
    marker or its CustomerErased read, whichever came first); no personal value is held since."""

    id: str
    account_id: int
    code: str
    version: int
    fields: dict
    deleted: bool = False
    erased: bool = False
    personal_erased: bool = False
    event_ids: set = field(default_factory=set)

    def line(self):
        """The output object: readable fields then personal fields, the erased form (readable
        fields and `"erased": true`), or the unreadable form."""
        shown = {"id": self.id, "accountId": self.account_id, "code": self.code,
                 "version": self.version}
        if self.personal_erased:
            shown["erased"] = True
            return shown
        if self.fields is None:
            return {"id": self.id, "unreadable": True}
        shown.update((name, self.fields[name]) for name in PERSONAL_FIELDS if name in self.fields)
        return shown

    def listed(self):
        """Whether the customer is printed: live, or erased (an erasure is news for every copy
        downstream, whatever the customer's state was)."""
        return not self.deleted or self.personal_erased

    def change_line(self):
        """What following prints when the customer changed: its line, or `{"id", "deleted":
        true}` for a delete of a customer not erased."""
        if self.deleted and not self.personal_erased:
            return {"id": self.id, "deleted": True}
        return self.line()

    def drop_personal(self):
        """Its personal data erased: every personal value it held is dropped, for good."""
        self.fields = None
        self.personal_erased = True


class Registry:
    """Current customer state, folded from events in log order by events/README.md's rules:
    a create applies when its customer is absent; an update or delete applies only to a live
    customer of the same account at exactly its version - 1; an erasure applies once to a
    customer of the same account in any state, and nothing applies to it after; anything else
    is skipped, and counted under the name the registry's rejected-events listing gives it."""

    def __init__(self, keys):
        self.keys = keys
        self.customers = {}
        self.counts = Counter()

    def apply(self, event):
        """Folds one event in; returns the customer it changed, or None when it was skipped."""
        current = self.customers.get(event.customer_id)
        if current is not None and event.event_id in current.event_ids:
            self.counts["duplicate"] += 1  # rule 1
            return None
        if event.event_type == "CustomerCreated":
            if current is not None:
                self.counts["conflict"] += 1  # rule 2: the first create of an id wins
                return None
            customer = Customer(event.customer_id, event.account_id, event.code, 1, None)
            customer.fields = self._open(event, customer)
            customer.event_ids.add(event.event_id)
            self.customers[customer.id] = customer
            self.counts["applied"] += 1
            return customer
        if event.event_type == "CustomerErased":
            return self._erasure(event, current)
        if current is None or current.deleted or current.erased:
            self.counts["customer_absent"] += 1
            return None
        if event.account_id != current.account_id:
            self.counts["conflict"] += 1
            return None
        if event.version != current.version + 1:
            self.counts["version_conflict"] += 1
            return None
        current.version = event.version
        current.event_ids.add(event.event_id)
        if event.event_type == "CustomerDeleted":
            current.deleted = True
        elif current.personal_erased:
            self.counts["events of erased customers folded unopened"] += 1
        elif current.fields is not None:
            patch = self._open(event, current)
            if patch is None:
                current.fields = None
            else:
                for name, value in patch.items():
                    if value is None:
                        current.fields.pop(name, None)
                    else:
                        current.fields[name] = value
        self.counts["applied"] += 1
        return current

    def _erasure(self, event, current):
        """A CustomerErased: applies once, to a customer of its account whatever its state and
        version, and gives it no new version."""
        if current is None:
            self.counts["customer_absent"] += 1
            return None
        if current.erased:
            self.counts["duplicate"] += 1  # one erasure per customer: a second is the same one
            return None
        if event.account_id != current.account_id:
            self.counts["conflict"] += 1
            return None
        current.erased = True
        current.event_ids.add(event.event_id)
        self.keys.erase(current.id)  # the marker may not have been read yet
        current.drop_personal()
        self.counts["applied"] += 1
        return current

    def _open(self, event, customer):
        """The personal content of an event that applies to `customer`, or None when it does
        not open (the customer's personal data is then unknown, or erased)."""
        if customer.personal_erased or self.keys.is_erased(customer.id):
            # Never opened again, v1's plain fields included: fold by the readable fields.
            customer.drop_personal()
            self.counts["events of erased customers folded unopened"] += 1
            return None
        try:
            return open_personal(event, self.keys)
        except KeyErased:
            customer.drop_personal()
            self.counts["events of erased customers folded unopened"] += 1
        except KeyUnavailable:
            self.counts["events whose key is unavailable"] += 1
        except (Inauthentic, ContractError):
            self.counts["events whose seal does not open"] += 1
        return None

    def erase(self, customer_id):
        """What a consumer does with its own copy when a customer's keys are erased (its
        KeysErased marker): drop every personal value it holds of it. The id, account, code and
        version stay, so that no late event can bring the customer back; the fold itself goes
        on by the events (their CustomerErased ends the customer)."""
        customer = self.customers.get(customer_id)
        if customer is not None:
            customer.drop_personal()
        return customer

    def live_lines(self):
        """One output object per live or erased customer, sorted by id."""
        return [self.customers[id].line() for id in sorted(self.customers)
                if self.customers[id].listed()]


# --- Kafka ------------------------------------------------------------------------------------


class TopicReader:
    """One topic, every partition, read from the beginning in offset order, without a consumer
    group (nothing is committed)."""

    def __init__(self, bootstrap, topic, deadline):
        from kafka import KafkaConsumer, TopicPartition

        self.topic = topic
        self.deadline = deadline
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            allow_auto_create_topics=False,
            auto_offset_reset="earliest",
            client_id="customer-registry-python-consumer",
        )
        partitions = self.consumer.partitions_for_topic(topic)
        self.partitions = [TopicPartition(topic, p) for p in sorted(partitions)]
        if self.partitions:
            self.consumer.assign(self.partitions)
            self.consumer.seek_to_beginning(*self.partitions)

    def end_offsets(self):
        """The next offset of every partition now: every record acknowledged so far is below."""
        if not self.partitions:
            return {}
        return self.consumer.end_offsets(self.partitions)

    def read_until(self, ends, handle):
        """Hands every record below `ends` (and not handled before) to `handle`, in order per
        partition. Raises TimeoutError past the deadline."""
        behind = {tp for tp in self.partitions if self.consumer.position(tp) < ends.get(tp, 0)}
        while behind:
            if time.monotonic() > self.deadline:
                raise TimeoutError(f"{self.topic} was not read to its end in time")
            for tp, records in self.consumer.poll(timeout_ms=500).items():
                for record in records:
                    if record.offset < ends.get(tp, 0):
                        handle(record)
                if records and records[-1].offset >= ends.get(tp, 0):
                    self.consumer.seek(tp, ends[tp])
            behind = {tp for tp in behind if self.consumer.position(tp) < ends[tp]}

    def follow(self, handle, wait_ms):
        """Hands what arrived within `wait_ms` to `handle`."""
        for records in self.consumer.poll(timeout_ms=wait_ms).values():
            for record in records:
                handle(record)

    def close(self):
        self.consumer.close()


def emit(line):
    print(json.dumps(line, ensure_ascii=False), flush=True)


def run(args, keks):
    """Reads the keys, then the events, prints the customers; follows unless `--until-end`."""
    deadline = time.monotonic() + args.timeout
    events = TopicReader(args.bootstrap, args.topic, deadline)
    if not events.partitions:
        print(f"consume.py: the topic {args.topic} does not exist", file=sys.stderr)
        return 2
    # The events' ends first, then the keys': every event below its end was appended after its
    # key was acknowledged, so that key lies below the keys' end read after it.
    event_ends = events.end_offsets()
    keys_reader = TopicReader(args.bootstrap, f"{args.topic}.keys", deadline)
    erasures = []

    def apply_key_record(record):
        erased = keys.apply_record(record.key, record.value)
        if erased is not None:
            erasures.append(erased)

    def catch_up_keys():
        keys_reader.read_until(keys_reader.end_offsets(), apply_key_record)

    keys = KeyStore(keks, catch_up=catch_up_keys)
    catch_up_keys()
    registry = Registry(keys)
    malformed = Counter()

    def apply_event(record):
        try:
            event = decode_event(record.value)
        except ContractError:
            malformed["malformed"] += 1
            print(f"consume.py: malformed event at {record.topic}/{record.partition}:"
                  f"{record.offset}", file=sys.stderr)
            return None
        if event is None:
            malformed["skipped (unknown type or newer version)"] += 1
            return None
        return registry.apply(event)

    events.read_until(event_ends, apply_event)
    lines = registry.live_lines()
    for line in lines:
        emit(line)
    if not keys_reader.partitions:
        print(f"consume.py: no topic {args.topic}.keys: only v1 events can be read",
              file=sys.stderr)
    summary = registry.counts + malformed + keys.counts
    print("consume.py: " + ", ".join(f"{name} {count}" for name, count in sorted(summary.items()))
          + f"; {len(lines)} customers listed", file=sys.stderr)
    if args.until_end:
        return 0
    # Following: a line per customer as it changes from here on. Keys are read first, and read
    # on whenever an event names a key not yet read.
    events.deadline = keys_reader.deadline = float("inf")
    erasures.clear()
    while True:
        keys_reader.follow(apply_key_record, 0)
        changed = []
        events.follow(lambda record: changed.append(apply_event(record)), 1000)
        changed.extend(registry.erase(customer_id) for customer_id in erasures)
        erasures.clear()
        for customer in changed:
            if customer is not None:
                emit(customer.change_line())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True, help="a broker, HOST:PORT")
    parser.add_argument("--topic", required=True, help="the event topic (its keys: TOPIC.keys)")
    parser.add_argument("--kek-file", required=True, help="the registry's KEK file")
    parser.add_argument("--until-end", action="store_true",
                        help="stop at the ends the topics had at start (else follow)")
    parser.add_argument("--timeout", type=float, default=120,
                        help="seconds to reach those ends before giving up (default 120)")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(encoding="utf-8")
    from kafka.errors import KafkaError

    try:
        keks = load_kek_file(args.kek_file)
    except (OSError, ContractError) as error:
        print(f"consume.py: {args.kek_file}: {error}", file=sys.stderr)
        return 2
    try:
        return run(args, keks)
    except (KafkaError, TimeoutError) as error:
        print(f"consume.py: {error!r}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
