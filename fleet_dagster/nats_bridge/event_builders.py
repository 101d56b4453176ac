"""Events from what a run produced."""

from datetime import UTC, datetime

from pydantic import BaseModel

from fleet_dagster.core.outcome import DeliberationOutcome, tests_fields
from fleet_dagster.core.records import AgentCall
from fleet_dagster.core.request import DeliberationRequest
from fleet_dagster.core.status import DeliberationStatus
from fleet_dagster.nats_bridge.events import (
    EVENT_SUBJECTS,
    AgentResponse,
    DeliberationAccepted,
    DeliberationCanceled,
    DeliberationCompleted,
    DeliberationFailed,
)
from fleet_dagster.nats_bridge.subjects import Subject

FINAL_EVENT_METADATA_KEY = "final_event"


def stored_event(event: tuple[str, BaseModel, str]) -> dict:
    """An event as materialization metadata keeps it, to be published again later."""
    name, body, msg_id = event
    return {"subject": name, "event": body.model_dump(mode="json"), "msg_id": msg_id}


def event_from_stored(stored: dict) -> tuple[str, BaseModel, str]:
    return stored["subject"], EVENT_SUBJECTS[stored["subject"]].model_validate(stored["event"]), stored["msg_id"]


def final_msg_id(deliberation_id: str, run_id: str) -> str:
    """Shared by every final event of a run (collect step, outbox sensor): one is stored, whichever is first."""
    return f"final-{deliberation_id}-{run_id}"


def accepted_event(request: DeliberationRequest, run_id: str, stream_seq: int | None) -> tuple[str, BaseModel, str]:
    deliberation_id = request.deliberation_id
    accepted = DeliberationAccepted(
        deliberation_id=deliberation_id, run_id=run_id, stream_seq=stream_seq, traceparent=request.traceparent
    )
    return Subject.ACCEPTED, accepted, f"accepted-{deliberation_id}-{run_id}"


def agent_response_events(
    deliberation_id: str, run_id: str, role: str, calls: list[AgentCall]
) -> list[tuple[str, BaseModel, str]]:
    """Events for one council's calls. The msg id names the call (agent, phase, round, target: each is made
    once per council) and the run: a call published twice is stored once, even by a council started again
    whose calls came back in another order, and a later run of the same deliberation id is not a repeat."""
    events: list[tuple[str, BaseModel, str]] = []
    for call in calls:
        event = AgentResponse(
            deliberation_id=deliberation_id,
            agent_id=call.agent_id,
            role=call.role,
            phase=call.phase,
            round=call.round,
            target_agent_id=call.target_agent_id,
            model=call.model,
            duration_ms=round(call.latency_ms, 1),
            queue_ms=round(call.queue_ms, 1),
            replayed=call.replayed,
            tokens=call.tokens,
            error=call.error,
            traceparent=call.traceparent,
            **tests_fields(call.execution),
        )
        subject = Subject.AGENT_COMPLETED if call.ok else Subject.AGENT_FAILED
        call_name = f"{call.agent_id}-{call.phase}-{call.round}-{call.target_agent_id or ''}"
        events.append((subject, event, f"agent-{deliberation_id}-{run_id}-{role}-{call_name}"))
    return events


def final_event(outcome: DeliberationOutcome, run_id: str) -> tuple[str, BaseModel, str]:
    common = {
        "deliberation_id": outcome.deliberation_id,
        "run_id": run_id,
        "winners": outcome.brief_winners,
        "total_agents": outcome.expected_count,
        "successful_responses": outcome.successful_calls,
        "failed_responses": outcome.failed_calls,
        "duration_ms": outcome.duration_ms,
        "completed_at": datetime.now(UTC).isoformat(),
        "traceparent": outcome.traceparent,
    }
    msg_id = final_msg_id(outcome.deliberation_id, run_id)
    status = outcome.status
    if status in (DeliberationStatus.COMPLETED, DeliberationStatus.PARTIAL):
        return Subject.COMPLETED, DeliberationCompleted(status=status.value, **common), msg_id
    error = outcome.error_message or f"deliberation ended {status.value}"
    return Subject.FAILED, DeliberationFailed(status=status.value, error=error, **common), msg_id


def run_failed_event(
    deliberation_id: str, run_id: str, error: str, traceparent: str | None
) -> tuple[str, BaseModel, str]:
    event = DeliberationFailed(
        deliberation_id=deliberation_id,
        run_id=run_id,
        status="FAILED",
        error=error,
        completed_at=datetime.now(UTC).isoformat(),
        traceparent=traceparent,
    )
    return Subject.FAILED, event, final_msg_id(deliberation_id, run_id)


def run_canceled_event(deliberation_id: str, run_id: str, traceparent: str | None) -> tuple[str, BaseModel, str]:
    event = DeliberationCanceled(
        deliberation_id=deliberation_id,
        run_id=run_id,
        completed_at=datetime.now(UTC).isoformat(),
        traceparent=traceparent,
    )
    return Subject.CANCELED, event, final_msg_id(deliberation_id, run_id)
