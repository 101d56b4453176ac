"""What a deliberation came to: one typed outcome, built once from its councils' results. The asset's metadata,
the status document, the final event, the CLI, replay, the archive and benchmark rows are projections of it."""

from collections import Counter
from collections.abc import Mapping

from pydantic import BaseModel, Field, computed_field

from fleet_dagster.core.cost import Cost, ModelPrice, calls_cost
from fleet_dagster.core.execution import ExecutionResult
from fleet_dagster.core.pass_matrix import PassMatrix
from fleet_dagster.core.records import CouncilResult, Phase, SelectionMethod
from fleet_dagster.core.request import DeliberationRequest
from fleet_dagster.core.status import DeliberationStatus, final_status


class BriefWinner(BaseModel):
    """What the status document and the final event say of a role's winner."""

    agent_id: str
    score: float | None
    selection: SelectionMethod | None = Field(None, description="The selection the request asked for.")
    decided_by: SelectionMethod = Field(
        description="What chose the winner: score where the asked selection could not decide."
    )
    fallback_reason: str | None = Field(None, description="Why the asked selection did not decide.")
    answer: str | None = Field(None, description="By vote: the winning final answer.")
    votes: dict[str, int] | None = Field(None, description="By vote: each final answer's count.")
    weighted_votes: dict[str, float] | None = Field(
        None, description="By weighted vote: each final answer's summed calibrated confidence."
    )
    model: str = Field("", description="The model the winner's agent called.")


class Winner(BriefWinner):
    rationale: str
    flags: list[str] = Field(default_factory=list)

    def brief(self) -> BriefWinner:
        return BriefWinner.model_validate(self.model_dump(include=set(BriefWinner.model_fields)))


class ProposalResult(BaseModel):
    """One proposal as the asset's table and the status document list it."""

    role: str
    agent_id: str
    # Defaults: outcomes from before mixed councils.
    model: str = Field("", description="The model its agent called.")
    round: int
    is_winner: bool
    score: float | None
    peer_score: float | None
    coverage: float | None
    checks: float | None
    answer: str | None
    confidence: float | None = Field(None, description="How sure its agent said it is of its answer, 0..1.")
    flags: list[str]
    tokens: int
    latency_ms: float
    error: str | None
    reviews_received: int
    reviews_unparsed: int
    temperature: float
    seed: int
    content: str | None
    # A code task's solution run against the request's tests (defaults: outcomes from before code tasks).
    tests_verdict: str | None = Field(None, description="passed, failed, errored, timeout, limit or unavailable.")
    tests_passed: int | None = None
    tests_total: int | None = None
    first_failure: str | None = Field(None, description="The first failing test's output, bounded.")
    tests_ms: float | None = Field(None, description="How long the run took.")


class Budget(BaseModel):
    """The token budget and what it did: whether it left calls unmade, and how many."""

    max_total_tokens: int | None
    total_tokens: int
    exhausted: bool
    calls_not_made: int


class EarlyStop(BaseModel):
    """A council whose agents agreed before its last round: why, and the calls that saved."""

    reason: str
    calls_saved: int


class DeliberationOutcome(BaseModel):
    deliberation_id: str
    status: DeliberationStatus
    roles: list[str] = Field(description="The request's roles, in its order.")
    expected_count: int
    current_count: int = Field(description="Proposals written.")
    winners: dict[str, Winner] = Field(description="Per role that has one, its winner.")
    no_winner: dict[str, str] = Field(description="Per role without a winner, why.")
    results: list[ProposalResult]
    agent_calls: int
    # A default: the metadata of deliberations materialized before the field existed still reads as an outcome.
    calls_by_phase: dict[Phase, int] = Field(default_factory=dict, description="Agent calls made in each phase.")
    failed_calls: int
    replayed_calls: int = Field(description="Calls answered from the response store: no call was made.")
    unparsed_reviews: int
    flagged_proposals: int
    cost: Cost
    budget: Budget
    early_stops: dict[str, EarlyStop]
    calls_saved: int
    queue_wait_max_s: float
    started_at: float | None = Field(
        None,
        description="When its first council started (epoch s): on the request's arrival, at the CLI's launch or in "
        "its run's plan step. Its wall time counts from then, or from the plan step if that came first.",
    )
    wall_time_s: float
    critical_path_s: float
    parallel_efficiency: float
    latency_p50_ms: float | None = Field(description="Of the calls that succeeded.")
    latency_p95_ms: float | None
    ttft_p50_ms: float | None = Field(description="Time to first token, of streamed calls.")
    tokens_per_s: float | None = Field(description="Tokens generated per second of successful calls.")
    models: list[str]
    errors: list[str] = Field(description="What the councils reported.")
    call_errors: str | None = Field(description="Why calls failed, in a line.")
    traceparent: str | None
    executions: dict[str, int] = Field(
        default_factory=dict, description="Code runs in the sandbox (a code task), by verdict."
    )
    pass_matrix: PassMatrix | None = Field(
        None, description="A code task: every solution run against every test set the councils wrote."
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_tokens(self) -> int:
        return self.budget.total_tokens

    @computed_field  # type: ignore[prop-decorator]
    @property
    def estimated_cost(self) -> float | None:
        return self.cost.estimated_cost

    @property
    def error_message(self) -> str | None:
        return "; ".join(error for error in [*self.errors, self.call_errors] if error) or None

    @property
    def brief_winners(self) -> dict[str, BriefWinner]:
        """What the status document and the final event say of the winners."""
        return {role: winner.brief() for role, winner in self.winners.items()}

    @property
    def duration_ms(self) -> int:
        return round(self.wall_time_s * 1000)

    @property
    def successful_calls(self) -> int:
        return self.agent_calls - self.failed_calls

    def winning_content(self, role: str) -> str | None:
        winner = self.winners.get(role)
        chosen = (r.content for r in self.results if winner and r.role == role and r.agent_id == winner.agent_id)
        return next(chosen, None)


def deliberation_outcome(
    request: DeliberationRequest,
    councils: list[CouncilResult],
    wall_ms: float,
    prices: Mapping[str, ModelPrice],
    pass_matrix: PassMatrix | None = None,
) -> DeliberationOutcome:
    calls = [call for council in councils for call in council.calls]
    critical_ms = critical_path_ms(councils)
    latencies = [call.latency_ms for call in calls if call.ok]
    busy_s = sum(latencies) / 1000
    generated = sum(call.completion_tokens for call in calls if call.ok)
    return DeliberationOutcome(
        deliberation_id=request.deliberation_id,
        status=final_status(request.roles, councils),
        roles=request.roles,
        expected_count=request.expected_count,
        current_count=sum(c.proposals_done for c in councils),
        winners=winners(councils),
        no_winner={c.role: c.selection.rationale for c in councils if c.winner is None},
        results=proposal_results(councils),
        agent_calls=len(calls),
        calls_by_phase=Counter(call.phase for call in calls),
        failed_calls=sum(not call.ok for call in calls),
        replayed_calls=sum(call.replayed for call in calls),
        unparsed_reviews=sum(not r.parsed for c in councils for r in c.reviews),
        flagged_proposals=sum(bool(p.flags) for c in councils for p in c.proposals),
        cost=calls_cost(calls, prices),
        budget=Budget(
            max_total_tokens=request.max_total_tokens,
            total_tokens=sum(call.tokens for call in calls),
            exhausted=any(c.budget_exhausted for c in councils),
            calls_not_made=sum(c.calls_not_made for c in councils),
        ),
        early_stops={
            c.role: EarlyStop(reason=c.early_stop, calls_saved=c.calls_saved) for c in councils if c.early_stop
        },
        calls_saved=sum(c.calls_saved for c in councils),
        queue_wait_max_s=round(max((call.queue_ms for call in calls), default=0.0) / 1000, 3),
        started_at=councils_started_at(councils),
        wall_time_s=round(wall_ms / 1000, 3),
        critical_path_s=round(critical_ms / 1000, 3),
        parallel_efficiency=round(critical_ms / wall_ms, 3) if wall_ms else 0.0,
        latency_p50_ms=percentile(latencies, 0.5),
        latency_p95_ms=percentile(latencies, 0.95),
        ttft_p50_ms=percentile([call.first_token_ms for call in calls if call.first_token_ms is not None], 0.5),
        tokens_per_s=round(generated / busy_s, 2) if busy_s else None,
        models=sorted({call.model for call in calls if call.model}),
        errors=[c.error for c in councils if c.error],
        call_errors=failed_calls_summary(councils),
        traceparent=request.traceparent,
        executions=Counter(
            [call.execution.verdict for call in calls if call.execution]
            + [cell.verdict for cell in (pass_matrix.cells if pass_matrix else [])]
        ),
        pass_matrix=pass_matrix,
    )


def winners(councils: list[CouncilResult]) -> dict[str, Winner]:
    """Each role's winner, for the roles that have one: the selection asked for, what decided (another method
    where the asked one could not, and why); by vote, its answer and every answer's votes."""
    return {
        c.role: Winner(
            agent_id=c.winner.agent_id,
            score=c.winner.score,
            selection=c.selection.asked,
            decided_by=c.selection.method,
            fallback_reason=c.selection.fallback_reason,
            rationale=c.selection.rationale,
            flags=c.winner.flags,
            model=c.winner.model,
            **(
                {"answer": c.selection.answer, "votes": c.selection.votes}
                if c.selection.method in ("vote", "weighted-vote")
                else {}
            ),
            **({"weighted_votes": c.selection.weighted_votes} if c.selection.method == "weighted-vote" else {}),
        )
        for c in councils
        if c.winner is not None
    }


def proposal_results(councils: list[CouncilResult]) -> list[ProposalResult]:
    results = []
    for council in councils:
        for proposal in council.proposals:
            received = [r for r in council.reviews if r.author == proposal.agent_id]
            results.append(
                ProposalResult.model_validate(
                    {
                        **proposal.model_dump(include=set(ProposalResult.model_fields)),
                        **tests_fields(proposal.execution),
                        "reviews_received": len(received),
                        "reviews_unparsed": sum(not r.parsed for r in received),
                    }
                )
            )
    return results


def tests_fields(run: ExecutionResult | None) -> dict:
    """A solution's run against the request's tests, as the proposals table and the agent events carry it."""
    if run is None:
        return {}
    return {
        "tests_verdict": run.verdict,
        "tests_passed": run.passed,
        "tests_total": run.total,
        "first_failure": run.first_failure,
        "tests_ms": round(run.duration_ms, 1),
    }


def percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile; None of nothing."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def councils_started_at(councils: list[CouncilResult]) -> float | None:
    """When the first of them started; a run that adopts councils started on arrival or at launch comes later."""
    return min((council.started_at for council in councils), default=None)


def critical_path_ms(councils: list[CouncilResult]) -> float:
    """Longest chain of dependent calls: per council, the slowest call of each phase, summed."""
    longest = 0.0
    for council in councils:
        slowest: dict[tuple[str, int], float] = {}
        for call in council.calls:
            key = (call.phase, call.round)
            slowest[key] = max(slowest.get(key, 0.0), call.latency_ms)
        longest = max(longest, sum(slowest.values()))
    return longest


def failed_calls_summary(councils: list[CouncilResult], shown: int = 3) -> str | None:
    """Why calls failed, in a line: the first distinct errors, each counted. None when none failed."""
    calls = [call for council in councils for call in council.calls]
    errors = Counter(call.error or "failed" for call in calls if not call.ok)
    if not errors:
        return None
    listed = "; ".join(f"{error} (x{count})" for error, count in list(errors.items())[:shown])
    more = f"; {len(errors) - shown} other errors" if len(errors) > shown else ""
    return f"{errors.total()} of {len(calls)} agent calls failed: {listed}{more}"
