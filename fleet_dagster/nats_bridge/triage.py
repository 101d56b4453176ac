"""Turning stored request messages into runs to start, duplicates to answer, or rejections to publish.

Any failure tied to one message becomes that message's rejection: a poison message never stops intake.
"""

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from fleet_dagster.core.request import DeliberationRequest, RequestError, parse_request, printable
from fleet_dagster.core.trace import derived_traceparent, traceparent_problem
from fleet_dagster.nats_bridge.events import DeliberationDuplicate, DeliberationRejected, FieldError
from fleet_dagster.nats_bridge.settings import MAX_REQUEST_BYTES

# A rejection must stay far below the 1 MiB message limit whatever the request held (20,000 bad
# requirements once made a 1.47 MB rejection that could not be published, which stalled the bridge).
MAX_REJECTION_ERRORS = 20
MAX_ERROR_CHARS = 300


@dataclass(frozen=True)
class PriorUse:
    """How an id is already taken: by a run (from a NATS request or not) or earlier in the same batch."""

    description: str
    stream_seq: int | None
    request_digest: str | None
    run_id: str | None = None


@dataclass
class Triage:
    accepted: list[tuple[int, DeliberationRequest]] = field(default_factory=list)
    duplicates: list[DeliberationDuplicate] = field(default_factory=list)
    rejected: list[DeliberationRejected] = field(default_factory=list)
    handled_through: int | None = None  # the last stream sequence triaged; those after it wait


def accepted_use(seq: int, request: DeliberationRequest) -> PriorUse:
    """How a request accepted at `seq` takes its id for the requests read after it, before its run exists."""
    return PriorUse(f"requested at stream sequence {seq}", seq, request_digest(request))


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def _reject(
    seq: int, deliberation_id: object, *errors: tuple[str, str], traceparent: str | None = None
) -> DeliberationRejected:
    """Whatever the request held, the rejection can be published: bounded, and only text UTF-8 can encode."""
    shown = [
        FieldError(field=_cut(printable(f), 100), message=_cut(printable(m), MAX_ERROR_CHARS))
        for f, m in errors[:MAX_REJECTION_ERRORS]
    ]
    if len(errors) > MAX_REJECTION_ERRORS:
        shown.append(FieldError(field="request", message=f"and {len(errors) - MAX_REJECTION_ERRORS} more errors"))
    shown_id = printable(deliberation_id) if isinstance(deliberation_id, str) and len(deliberation_id) <= 64 else None
    return DeliberationRejected(
        deliberation_id=shown_id,
        stream_seq=seq,
        errors=shown,
        traceparent=traceparent,
    )


def default_id(seq: int, data: bytes) -> str:
    """What a rejection of a request without an id calls it: deterministic, so a re-evaluated tick says the same."""
    return f"delib-{seq}-{hashlib.sha256(data).hexdigest()[:10]}"


def _content_digest(request: DeliberationRequest, exclude: set[str]) -> str:
    """Of the validated request (defaults filled, roles normalised) as canonical JSON: keys sorted, so metadata
    keys in another order are the same request; a retry's own trace context (a new span) is never part of it."""
    fields = request.model_dump(mode="json", exclude={"traceparent", *exclude})
    return hashlib.sha256(json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def request_digest(request: DeliberationRequest) -> str:
    """Equal for the same request published twice (a producer's retry), whatever its JSON layout."""
    return _content_digest(request, set())


def content_id(request: DeliberationRequest) -> str:
    """The id of a request published without one: its content, so that a producer's retry is a duplicate."""
    return f"delib-{_content_digest(request, {'deliberation_id'})[:24]}"


def _traceparent_of(body: object) -> str | None:
    """The rejected request's trace context, when it had a valid one (the rejection continues its trace)."""
    value = body.get("traceparent") if isinstance(body, dict) else None
    return value if isinstance(value, str) and traceparent_problem(value) is None else None


def _parse(seq: int, data: bytes) -> DeliberationRequest | DeliberationRejected:
    if len(data) > MAX_REQUEST_BYTES:
        return _reject(seq, None, ("request", f"{len(data)} bytes; at most {MAX_REQUEST_BYTES}"))
    try:
        body = json.loads(data)
    except RecursionError:
        return _reject(seq, None, ("request", "JSON nested too deeply"))
    except ValueError as exc:
        return _reject(seq, None, ("request", f"not valid JSON: {exc}"))
    if not isinstance(body, dict):
        return _reject(seq, None, ("request", "must be a JSON object"))
    has_id = body.get("deliberation_id") is not None
    if not has_id:
        body["deliberation_id"] = default_id(seq, data)
    if body.get("traceparent") is None:  # a new trace; the same for the same message, however often it is read
        body["traceparent"] = derived_traceparent("nats", str(seq), hashlib.sha256(data).hexdigest())
    try:
        request = parse_request(body)
    except RequestError as exc:
        return _reject(seq, body.get("deliberation_id"), *exc.errors, traceparent=_traceparent_of(body))
    return request if has_id else request.model_copy(update={"deliberation_id": content_id(request)})


def _parsed(seq: int, data: bytes) -> DeliberationRequest | DeliberationRejected:
    try:
        return _parse(seq, data)
    except Exception as exc:  # noqa: BLE001 - whatever one message does, it is that message's rejection
        return _reject(seq, None, ("request", f"could not be read: {type(exc).__name__}: {exc}"))


def triage(
    messages: list[tuple[int, bytes]],
    prior_uses: Callable[[dict[str, int]], dict[str, PriorUse]],
    unservable: Callable[[DeliberationRequest], list[tuple[str, str]]] = lambda request: [],
    has_time: Callable[[], bool] = lambda: True,
) -> Triage:
    """`prior_uses({id: seq})`, asked once for the batch with each id's first stream sequence, says how the ids
    are already taken by anything but that message (free ids are left out); `unservable(request)` what the model
    server cannot serve of a request that would start a run; `has_time()`, asked before each message but the
    first, whether it may be read now (if not, it and the messages after it are left for later)."""
    result = Triage()
    readable: list[tuple[int, DeliberationRequest]] = []
    for seq, data in messages:
        if result.handled_through is not None and not has_time():
            break
        result.handled_through = seq
        parsed = _parsed(seq, data)
        if isinstance(parsed, DeliberationRejected):
            result.rejected.append(parsed)
        else:
            readable.append((seq, parsed))
    first_seqs: dict[str, int] = {}
    for seq, request in readable:
        first_seqs.setdefault(request.deliberation_id, seq)
    taken = prior_uses(first_seqs) if first_seqs else {}
    in_batch: dict[str, PriorUse] = {}
    for seq, request in readable:
        _decide(
            result,
            seq,
            request,
            in_batch.get(request.deliberation_id) or taken.get(request.deliberation_id),
            unservable,
            in_batch,
        )
    result.rejected.sort(key=lambda rejected: rejected.stream_seq)
    return result


def _decide(
    result: Triage,
    seq: int,
    request: DeliberationRequest,
    prior: PriorUse | None,
    unservable: Callable[[DeliberationRequest], list[tuple[str, str]]],
    in_batch: dict[str, PriorUse],
) -> None:
    """Accepts the request, or answers it as a duplicate, or rejects it."""
    digest = request_digest(request)
    if prior is None:
        try:
            problems = unservable(request)
        except Exception as exc:  # noqa: BLE001 - as above: a check that fails on one request rejects it
            problems = [("request", f"could not be checked: {type(exc).__name__}: {exc}")]
        if problems:
            result.rejected.append(_reject(seq, request.deliberation_id, *problems, traceparent=request.traceparent))
            return
        in_batch[request.deliberation_id] = accepted_use(seq, request)
        result.accepted.append((seq, request))
    elif prior.stream_seq is not None and prior.request_digest == digest:
        result.duplicates.append(
            DeliberationDuplicate(
                deliberation_id=request.deliberation_id,
                stream_seq=seq,
                original_stream_seq=prior.stream_seq,
                run_id=prior.run_id,
                traceparent=request.traceparent,
            )
        )
    else:
        message = (
            f"deliberation_id {request.deliberation_id!r} was already used with another request "
            f"({prior.description}); nothing was started"
        )
        result.rejected.append(
            _reject(seq, request.deliberation_id, ("deliberation_id", message), traceparent=request.traceparent)
        )
