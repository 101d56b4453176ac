"""The status document (`fleet-dagster status --json`, what `deliberate` returns): a deliberation's state as its
run and outcome tell it. Its JSON Schema is resources/schemas/status.json."""

from typing import Any

from pydantic import BaseModel, Field

from fleet_dagster.core.outcome import BriefWinner, Budget, DeliberationOutcome, EarlyStop, ProposalResult
from fleet_dagster.core.pass_matrix import PassMatrix
from fleet_dagster.core.records import Phase
from fleet_dagster.core.status import DeliberationStatus


class DeliberationProgress(BaseModel):
    """A running deliberation, as its collect step observes it."""

    status: DeliberationStatus = DeliberationStatus.IN_PROGRESS
    expected_count: int
    current_count: int
    progress: dict[str, dict[str, Any]] = Field(default_factory=dict, description="Per role, its council's phase.")


class StatusDocument(BaseModel):
    deliberation_id: str
    status: DeliberationStatus
    expected_count: int | None = None
    current_count: int = 0
    run_id: str | None = None
    winners: dict[str, BriefWinner] = Field(default_factory=dict)
    results: list[ProposalResult] = Field(default_factory=list)
    error_message: str | None = None
    duration_ms: int | None = None
    budget: Budget | None = None
    early_stops: dict[str, EarlyStop] = Field(default_factory=dict)
    flagged_proposals: int = 0
    estimated_cost: float | None = None
    replayed_calls: int = 0
    calls_by_phase: dict[Phase, int] = Field(default_factory=dict)
    executions: dict[str, int] = Field(default_factory=dict, description="Code runs in the sandbox, by verdict.")
    pass_matrix: PassMatrix | None = None
    traceparent: str | None = None
    progress: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="While IN_PROGRESS: per role, its council's phase."
    )


def outcome_status(outcome: DeliberationOutcome, run_id: str | None, traceparent: str | None) -> StatusDocument:
    """A finished deliberation's document. `traceparent`: the run's, where the outcome has none."""
    return StatusDocument(
        **outcome.model_dump(include=_FROM_OUTCOME),
        run_id=run_id,
        winners=outcome.brief_winners,
        error_message=outcome.error_message,
        duration_ms=outcome.duration_ms,
        traceparent=outcome.traceparent or traceparent,
    )


_FROM_OUTCOME = {
    "deliberation_id",
    "status",
    "expected_count",
    "current_count",
    "results",
    "budget",
    "early_stops",
    "flagged_proposals",
    "estimated_cost",
    "replayed_calls",
    "calls_by_phase",
    "executions",
    "pass_matrix",
}
