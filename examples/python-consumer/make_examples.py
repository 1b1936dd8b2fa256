#!/usr/bin/env python3
"""Writes the contract v2 examples of events/examples/: one customer's create, update and
delete, sealed under its data key, the key's record wrapped under the published example KEK,
the customer's erased marker and its CustomerErased event.

Every key and nonce here is fixed and public, so a run writes the same bytes each time and the
examples can be checked by anyone: they are examples, not secrets. The registry draws its keys
and nonces at random; nothing else differs.

    python make_examples.py              # writes into ../../events/examples
    python make_examples.py --out DIR    # writes into DIR (test_examples.py compares the two)
"""

import argparse
import base64
import hashlib
import json
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from consume import (
    NONCE_BYTES,
    PERSONAL_FIELDS,
    erased_event_id,
    erasure_request_id,
    event_context,
    wrap_context,
)

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "..", "..", "events", "examples")

# The published example KEK: its key is the bytes 0x00 to 0x1f. Never use it for real data.
EXAMPLE_KEK_ID = "kek-0123456789abcdef"
EXAMPLE_KEK = bytes(range(0x00, 0x20))
EXAMPLE_KEK_CREATED_AT = "2026-11-01T09:00:00.000Z"

# The example customer's data key (the bytes 0x20 to 0x3f) and its id.
DATA_KEY = bytes(range(0x20, 0x40))
KEY_ID = "3d5f0e2a9c417b86"

# The customer of the v1 create example (its id is the UUIDv5 of "42:ERP-000742").
CUSTOMER_ID = "a7331464-4ce4-581b-9532-a3c975e359b3"
ACCOUNT_ID = 42
CODE = "ERP-000742"
CREATED_AT = "2026-11-25T16:48:31.137Z"
FIELDS = {
    "firstName": "Émile",
    "lastName": "Hamilton",
    "organizationName": "Hamilton & Fils SARL",
    "email": "emile.hamilton@example.com",
    "phone": "+1 (212) 555-0101",
    "street": "221 Baker Street",
    "city": "New York",
    "state": "NY",
    "zipCode": "10001",
    "countryCode": "US",
}
CHANGES = {"email": "emile@hamilton-fils.example", "phone": None}
# When the example customer was erased: its marker's erasedAt, and its CustomerErased's occurredAt.
ERASED_AT = "2026-11-28T08:15:02.540Z"


def fixed_nonce(label):
    """A nonce of its own for each sealed value, derived from a label (the registry draws one)."""
    digest = hashlib.sha256(b"customer-registry example nonce: " + label.encode()).digest()
    return digest[:NONCE_BYTES]


def seal(key, plaintext, context, label):
    """base64 of nonce ‖ ciphertext ‖ tag: AES-256-GCM of `plaintext` under `key`."""
    nonce = fixed_nonce(label)
    return base64.b64encode(nonce + AESGCM(key).encrypt(nonce, plaintext, context)).decode("ascii")


def plaintext(fields):
    """A sealed value's plaintext: compact UTF-8 JSON (a reader parses it; the bytes may differ)."""
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def personal(event_id, fields, label):
    context = event_context(CUSTOMER_ID, event_id, 2)
    return {"keyId": KEY_ID, "sealed": seal(DATA_KEY, plaintext(fields), context, label)}


def examples():
    """{file name: JSON value} of every example."""
    created_id = "019abb9c-4f2e-7c31-9d0a-5be1f3a47e20"
    updated_id = "019abba1-7c3e-7d42-a1f0-3c5e7b9d2f61"
    deleted_id = "019abba7-1e5a-7c88-b3d4-5e6f7a8b9c0d"
    create_fields = {name: FIELDS[name] for name in PERSONAL_FIELDS if name in FIELDS}
    return {
        "customer-created.v2.json": {
            "eventId": created_id,
            "eventType": "CustomerCreated",
            "schemaVersion": 2,
            "occurredAt": CREATED_AT,
            "requestId": "019abb9c-4f2d-7e55-b6a1-0c2f3e4d5a6b",
            "actor": "anonymous",
            "data": {
                "id": CUSTOMER_ID,
                "code": CODE,
                "accountId": ACCOUNT_ID,
                "createdAt": CREATED_AT,
                "personal": personal(created_id, create_fields, "created"),
            },
        },
        "customer-updated.v2.json": {
            "eventId": updated_id,
            "eventType": "CustomerUpdated",
            "schemaVersion": 2,
            "occurredAt": "2026-11-26T09:12:05.412Z",
            "requestId": "019abba1-7c3d-7b10-9e22-4d6f8a0b2c3d",
            "actor": "billing-portal",
            "data": {
                "id": CUSTOMER_ID,
                "accountId": ACCOUNT_ID,
                "version": 2,
                "personal": personal(updated_id, CHANGES, "updated"),
            },
        },
        "customer-deleted.v2.json": {
            "eventId": deleted_id,
            "eventType": "CustomerDeleted",
            "schemaVersion": 2,
            "occurredAt": "2026-11-27T11:40:17.003Z",
            "requestId": "019abba7-1e59-7f01-8a2b-6c7d8e9f0a1b",
            "actor": "billing-portal",
            "data": {"id": CUSTOMER_ID, "accountId": ACCOUNT_ID, "version": 3},
        },
        # Nothing sealed: its ids derive from the customer's (events/README.md, CustomerErased v2).
        "customer-erased.v2.json": {
            "eventId": erased_event_id(CUSTOMER_ID),
            "eventType": "CustomerErased",
            "schemaVersion": 2,
            "occurredAt": ERASED_AT,
            "requestId": "019abbb2-3c41-7a9e-8d15-2e4f6a8b0c1d",
            "actor": "privacy-desk",
            "data": {
                "id": CUSTOMER_ID,
                "accountId": ACCOUNT_ID,
                "erasureRequestId": erasure_request_id(CUSTOMER_ID),
            },
        },
        "data-key-record.v1.json": {
            "type": "DataKey",
            "customerId": CUSTOMER_ID,
            "keyId": KEY_ID,
            "kekId": EXAMPLE_KEK_ID,
            "wrappedKey": seal(EXAMPLE_KEK, DATA_KEY, wrap_context(CUSTOMER_ID), "wrap"),
            "mintedAt": "2026-11-25T16:48:31.131Z",
        },
        "keys-erased-record.v1.json": {
            "type": "KeysErased",
            "customerId": CUSTOMER_ID,
            "erasedAt": ERASED_AT,
            # The erasure request's id, as the customer-erased example's erasureRequestId.
            "requestId": erasure_request_id(CUSTOMER_ID),
        },
    }


def example_kek_line():
    line = {"id": EXAMPLE_KEK_ID, "key": EXAMPLE_KEK.hex(), "createdAt": EXAMPLE_KEK_CREATED_AT}
    return json.dumps(line, separators=(",", ":")) + "\n"


def write(out):
    """Writes every example, and the example KEK file, into `out`; returns the paths written."""
    os.makedirs(out, exist_ok=True)
    written = []
    for name, value in examples().items():
        path = os.path.join(out, name)
        with open(path, "w", encoding="utf-8", newline="\n") as file:
            file.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
        written.append(path)
    path = os.path.join(out, "example-kek.jsonl")
    with open(path, "w", encoding="utf-8", newline="\n") as file:
        file.write(example_kek_line())
    written.append(path)
    return written


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=EXAMPLES,
                        help="the folder to write (default: events/examples)")
    for path in write(parser.parse_args().out):
        print(os.path.relpath(path))


if __name__ == "__main__":
    main()
