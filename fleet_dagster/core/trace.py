"""W3C trace context (https://www.w3.org/TR/trace-context/): one trace id follows a deliberation from its
request through NATS events, the Dagster run and every model call, each call a span of its own.

A `traceparent` is `00-<32 hex trace id>-<16 hex parent span id>-<2 hex flags>`. Only version 00 is
produced; a future version is read by its first four fields, as the spec asks.
"""

import hashlib
import re
import secrets

# What follows a later version's four fields is visible ASCII: the value goes into an HTTP header.
TRACEPARENT_PATTERN = r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-[\x21-\x7e]*)?"
MAX_TRACEPARENT_CHARS = 128  # version 00 is 55; a later version may append fields, within reason
_TRACEPARENT = re.compile(TRACEPARENT_PATTERN)
SAMPLED = "01"


def traceparent_problem(value: str) -> str | None:
    """Why `value` is not a traceparent this fleet can carry on, or None."""
    if len(value) > MAX_TRACEPARENT_CHARS:
        return f"{len(value)} characters; at most {MAX_TRACEPARENT_CHARS}"
    if not _TRACEPARENT.fullmatch(value):
        return "not a W3C traceparent (00-<32 hex trace id>-<16 hex span id>-<2 hex flags>, lower case)"
    version, trace_id, span_id, _flags = value.split("-")[:4]
    if version == "ff":
        return "version ff is invalid"
    if version == "00" and len(value) != 55:
        return "version 00 has exactly four fields"
    if set(trace_id) == {"0"} or set(span_id) == {"0"}:
        return "an all-zero trace id or span id is invalid"
    return None


def trace_id(traceparent: str) -> str:
    return traceparent.split("-")[1]


def new_traceparent() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-{SAMPLED}"


def derived_traceparent(*seed: str) -> str:
    """A traceparent that the same seed always gives: a request that came without one gets the same trace
    however often the sensor reads it, and a run launched without one gets its run id's."""
    digest = hashlib.sha256("/".join(seed).encode()).hexdigest()
    return f"00-{digest[:32]}-{digest[32:48]}-{SAMPLED}"


def child_traceparent(parent: str) -> str:
    """A new span in the parent's trace, with its flags: what an outgoing call (a model request) carries."""
    _version, trace, _span, flags = parent.split("-")[:4]
    return f"00-{trace}-{secrets.token_hex(8)}-{flags}"
