"""Events the bridge publishes. Each carries `task_id` (= deliberation_id) for the original consumers."""

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from fleet_dagster.core.outcome import BriefWinner, DeliberationOutcome
from fleet_dagster.core.records import Phase
from fleet_dagster.core.status import DeliberationStatus
from fleet_dagster.nats_bridge.subjects import Subject

WINNERS_DESCRIPTION = DeliberationOutcome.model_fields["winners"].description


class FieldError(BaseModel):
    field: str
    message: str


class _KeyedEvent(BaseModel):
    deliberation_id: str | None
    task_id: str | None = Field(None, description="Always equal to deliberation_id (legacy consumers key on it).")
    traceparent: str | None = Field(
        None, description="W3C trace context of the deliberation (an agent response: of its model call)."
    )

    @model_validator(mode="after")
    def task_id_mirrors_deliberation_id(self) -> "_KeyedEvent":
        self.task_id = self.deliberation_id
        return self


class DeliberationEvent(_KeyedEvent):
    deliberation_id: str


class DeliberationAccepted(DeliberationEvent):
    run_id: str
    stream_seq: int | None = None


class DeliberationRejected(_KeyedEvent):
    """deliberation_id is null when the request could not be read far enough to have one."""

    stream_seq: int
    errors: list[FieldError] = Field(min_length=1)


class DeliberationDuplicate(DeliberationEvent):
    """The same request (same id, same body) published again: it joins the run of the original request,
    whose deliberation.accepted (stream_seq = original_stream_seq) names that run."""

    stream_seq: int
    original_stream_seq: int
    run_id: str | None = Field(None, description="The original request's run, when it had started already.")


class AgentResponse(DeliberationEvent):
    agent_id: str
    role: str
    phase: Phase
    round: int
    target_agent_id: str | None = None
    model: str = ""  # the model that answered (as its server names it), else the one called
    duration_ms: float
    tokens: int
    error: str | None = None
    queue_ms: float = 0.0  # waiting for a slot at the model server (its bound on calls in flight), before the call
    replayed: bool = False  # answered from the response store, no call made
    # A code task: the solution in this answer run against the request's tests.
    tests_verdict: str | None = None
    tests_passed: int | None = None
    tests_total: int | None = None
    first_failure: str | None = None
    tests_ms: float | None = None


class DeliberationCompleted(DeliberationEvent):
    run_id: str | None = None
    status: Literal[DeliberationStatus.COMPLETED, DeliberationStatus.PARTIAL]
    winners: dict[str, BriefWinner] = Field(description=WINNERS_DESCRIPTION)
    total_agents: int
    successful_responses: int
    failed_responses: int
    duration_ms: int
    completed_at: str


class DeliberationFailed(DeliberationEvent):
    run_id: str | None = None
    status: Literal[DeliberationStatus.FAILED, DeliberationStatus.TIMEOUT]
    error: str | None
    winners: dict[str, BriefWinner] = Field(default_factory=dict, description=WINNERS_DESCRIPTION)
    total_agents: int | None = None
    successful_responses: int = 0
    failed_responses: int = 0
    duration_ms: int | None = None
    completed_at: str


class DeliberationCanceled(DeliberationEvent):
    """The run was canceled (from the UI, the CLI's Ctrl-C) before it reported an outcome."""

    run_id: str
    status: Literal["CANCELED"] = "CANCELED"
    completed_at: str = Field(description="When the deliberation's outbox found the run canceled.")


# subject (without prefix) -> model; with the request's and the status document's, the JSON Schemas in
# resources/schemas/ (schemas.py)
EVENT_SUBJECTS: dict[Subject, type[BaseModel]] = {
    Subject.ACCEPTED: DeliberationAccepted,
    Subject.REJECTED: DeliberationRejected,
    Subject.DUPLICATE: DeliberationDuplicate,
    Subject.AGENT_COMPLETED: AgentResponse,
    Subject.AGENT_FAILED: AgentResponse,
    Subject.COMPLETED: DeliberationCompleted,
    Subject.FAILED: DeliberationFailed,
    Subject.CANCELED: DeliberationCanceled,
}
