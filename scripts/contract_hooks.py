"""Schemathesis hooks for scripts/contract.sh: what the generated requests leave out, and why."""

import re
import uuid

import schemathesis

VALID_IDEMPOTENCY_KEY = re.compile(r"[!-~]{1,255}")


@schemathesis.hook
def before_call(context, case, **kwargs):
    """Adjusts a case's headers before its request is sent (in every phase).

    - X-Min-Log-Position is left out: a well-formed position ahead of the log is rightly answered
      503 replica-behind after a wait; the header's parser has fuzz targets of its own.
    - A valid Idempotency-Key is made unique: generated cases reuse keys such as "0" with other
      bodies, which is rightly a 422 (tests/it/idempotency.rs covers replays).
    - A value the HTTP client cannot send (leading or trailing whitespace, line breaks) is left
      out, since it never reaches the server.
    """
    headers = case.headers
    if not headers:
        return
    headers.pop("X-Min-Log-Position", None)
    key = headers.get("Idempotency-Key")
    if key is not None and VALID_IDEMPOTENCY_KEY.fullmatch(key):
        headers["Idempotency-Key"] = uuid.uuid4().hex
    for name in list(headers):
        value = headers[name]
        if isinstance(value, str) and (value != value.strip() or "\r" in value or "\n" in value):
            del headers[name]
