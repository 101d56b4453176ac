"""A deliberation's outcome, from its councils' results alone, and what is made of it."""

import jsonschema
from dagster._core.definitions.metadata import normalize_metadata

from fleet_dagster.core.outcome import (
    BriefWinner,
    DeliberationOutcome,
    EarlyStop,
    critical_path_ms,
    deliberation_outcome,
    failed_calls_summary,
    winners,
)
from fleet_dagster.core.records import AgentCall, CouncilResult, Proposal, Selection
from fleet_dagster.core.request import parse_request
from fleet_dagster.core.status import DeliberationStatus
from fleet_dagster.core.status_document import outcome_status
from fleet_dagster.deliberation.metadata_models import model_from_metadata, model_metadata
from fleet_dagster.nats_bridge.schemas import STATUS_DOCUMENT_SCHEMA, committed_schema

FELL_BACK = {"fallback_reason": "no proposal states a final answer"}


def call(agent: str, phase: str, round_: int, latency_ms: float) -> AgentCall:
    return AgentCall(agent_id=agent, role="DEV", phase=phase, round=round_, ok=True, latency_ms=latency_ms)


def council(role: str, calls: list[AgentCall], winner: str | None = None) -> CouncilResult:
    proposals = [Proposal(role=role, agent_id="a1", round=0, content="x", temperature=0.7, seed=1, score=8.5)]
    return CouncilResult(
        role=role,
        expected_agents=1,
        proposals=proposals,
        reviews=[],
        calls=calls,
        selection=Selection(winner=winner, method="score", rationale="highest score 8.50", asked="vote", **FELL_BACK),
        started_at=0.0,
        finished_at=1.0,
    )


def test_the_critical_path_is_the_slowest_call_of_each_phase_of_the_slowest_council():
    dev = council("DEV", [call("a1", "propose", 0, 100), call("a2", "propose", 0, 300), call("a1", "review", 0, 50)])
    qa = council("QA", [call("b1", "propose", 0, 200), call("b1", "review", 0, 100), call("b1", "revise", 1, 90)])
    assert critical_path_ms([dev]) == 350
    assert critical_path_ms([dev, qa]) == 390
    assert critical_path_ms([]) == 0.0


SAID_BY = {"selection": "vote", "decided_by": "score", **FELL_BACK}


def test_winners_name_only_roles_that_have_one():
    found = winners([council("DEV", [], winner="a1"), council("QA", [], winner=None)])
    brief = BriefWinner(agent_id="a1", score=8.5, **SAID_BY)
    assert set(found) == {"DEV"} and found["DEV"].rationale == "highest score 8.50" and found["DEV"].flags == []
    assert found["DEV"].brief() == brief  # what the status document and the final event say


def test_failed_calls_are_summarized_by_distinct_error_counted():
    def failed(error: str | None) -> AgentCall:
        return AgentCall(agent_id="a1", role="DEV", phase="propose", round=0, ok=False, error=error)

    ok = call("a2", "propose", 0, 10)
    errors = ["HTTP 404: no such model"] * 3 + ["timeout", "HTTP 500", None, "HTTP 429"]
    summary = failed_calls_summary([council("DEV", [ok, *map(failed, errors)])], shown=3)
    assert (
        summary
        == "7 of 8 agent calls failed: HTTP 404: no such model (x3); timeout (x1); HTTP 500 (x1); 2 other errors"
    )
    assert failed_calls_summary([council("DEV", [ok])]) is None


def outcome_of_two_councils():
    dev = council("DEV", [call("a1", "propose", 0, 100), call("a1", "review", 0, 300)], winner="a1")
    dev.calls[0].replayed = True
    dev.budget_exhausted, dev.calls_not_made = True, 2
    qa = council("QA", [AgentCall(agent_id="b1", role="QA", phase="propose", round=0, ok=False, error="timeout")])
    qa.early_stop, qa.calls_saved = "agents agreed", 4
    request = parse_request({"task": "Design a cache", "roles": ["DEV", "QA"], "max_total_tokens": 900})
    return deliberation_outcome(request, [dev, qa], wall_ms=800.0, prices={})


def test_the_outcome_is_built_once_from_the_councils():
    outcome = outcome_of_two_councils()
    assert outcome.status is DeliberationStatus.PARTIAL and outcome.roles == ["DEV", "QA"]
    assert (outcome.expected_count, outcome.current_count) == (6, 2)
    assert set(outcome.winners) == {"DEV"} and outcome.no_winner == {"QA": "highest score 8.50"}
    assert (outcome.agent_calls, outcome.failed_calls, outcome.replayed_calls) == (3, 1, 1)
    assert outcome.calls_by_phase == {"propose": 2, "review": 1}
    assert outcome.budget.exhausted and outcome.budget.calls_not_made == 2 and outcome.budget.max_total_tokens == 900
    assert outcome.early_stops == {"QA": EarlyStop(reason="agents agreed", calls_saved=4)} and outcome.calls_saved == 4
    assert (outcome.critical_path_s, outcome.parallel_efficiency) == (0.4, 0.5)
    assert (outcome.latency_p50_ms, outcome.latency_p95_ms) == (100, 300)
    assert outcome.error_message == "1 of 3 agent calls failed: timeout (x1)"
    assert outcome.winning_content("DEV") == "x" and outcome.winning_content("QA") is None


def test_the_outcome_comes_back_whole_from_its_metadata():
    outcome = outcome_of_two_councils()
    stored = normalize_metadata(model_metadata(outcome))
    assert stored["total_tokens"].value == outcome.total_tokens  # numbers stay numbers, for the UI to plot
    assert model_from_metadata(DeliberationOutcome, stored) == outcome
    # An earlier release's metadata is no outcome: read as such, never as a half-filled one.
    assert model_from_metadata(DeliberationOutcome, normalize_metadata({"status": "COMPLETED"})) is None
    # One written before calls_by_phase existed still is one.
    earlier = {k: v for k, v in model_metadata(outcome).items() if k != "calls_by_phase"}
    assert model_from_metadata(DeliberationOutcome, normalize_metadata(earlier)).calls_by_phase == {}


def test_the_status_document_of_an_outcome_keeps_to_its_schema():
    outcome = outcome_of_two_councils()
    document = outcome_status(outcome, run_id="r1", traceparent=None).model_dump(mode="json")
    jsonschema.validate(document, committed_schema(STATUS_DOCUMENT_SCHEMA))
    no_votes = {"answer": None, "votes": None, "weighted_votes": None}
    assert document["winners"] == {"DEV": {"agent_id": "a1", "score": 8.5, "model": "", **no_votes, **SAID_BY}}
    assert document["error_message"] == outcome.error_message and document["duration_ms"] == 800
    assert document["calls_by_phase"] == {"propose": 2, "review": 1}
