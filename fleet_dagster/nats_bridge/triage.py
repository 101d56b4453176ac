"""Turning stored request messages into runs to start or rejections to publish."""

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from fleet_dagster.core.request import DeliberationRequest, RequestError, parse_request
from fleet_dagster.nats_bridge.events import DeliberationRejected, FieldError
from fleet_dagster.nats_bridge.settings import MAX_REQUEST_BYTES


@dataclass
class Triage:
    accepted: list[tuple[int, DeliberationRequest]] = field(default_factory=list)
    rejected: list[DeliberationRejected] = field(default_factory=list)


def _reject(seq: int, deliberation_id: object, *errors: tuple[str, str]) -> DeliberationRejected:
    return DeliberationRejected(
        deliberation_id=deliberation_id if isinstance(deliberation_id, str) else None,
        stream_seq=seq,
        errors=[FieldError(field=f, message=m) for f, m in errors],
    )


def default_id(seq: int, data: bytes) -> str:
    """Deterministic, so that evaluating the same messages again gives the same ids (and run keys)."""
    return f"delib-{seq}-{hashlib.sha256(data).hexdigest()[:10]}"


def triage(messages: list[tuple[int, bytes]], used_by_other_seq: Callable[[str, int], str | None]) -> Triage:
    """`used_by_other_seq(id, seq)` says how an id is already taken by anything but this message, or None."""
    result = Triage()
    seen_in_batch: dict[str, int] = {}
    for seq, data in messages:
        if len(data) > MAX_REQUEST_BYTES:
            result.rejected.append(_reject(seq, None, ("request", f"{len(data)} bytes; at most {MAX_REQUEST_BYTES}")))
            continue
        try:
            body = json.loads(data)
        except ValueError as exc:
            result.rejected.append(_reject(seq, None, ("request", f"not valid JSON: {exc}")))
            continue
        if not isinstance(body, dict):
            result.rejected.append(_reject(seq, None, ("request", "must be a JSON object")))
            continue
        if body.get("deliberation_id") is None:
            body["deliberation_id"] = default_id(seq, data)
        try:
            request = parse_request(body)
        except RequestError as exc:
            result.rejected.append(_reject(seq, body.get("deliberation_id"), *exc.errors))
            continue
        taken = (
            f"already requested at stream sequence {seen_in_batch[request.deliberation_id]}"
            if request.deliberation_id in seen_in_batch
            else used_by_other_seq(request.deliberation_id, seq)
        )
        if taken:
            message = f"deliberation_id {request.deliberation_id!r} was already used ({taken}); nothing was started"
            result.rejected.append(_reject(seq, request.deliberation_id, ("deliberation_id", message)))
            continue
        seen_in_batch[request.deliberation_id] = seq
        result.accepted.append((seq, request))
    return result
