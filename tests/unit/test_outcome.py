"""Winners and the critical path, from councils' results alone."""

from fleet_dagster.core.outcome import brief_winners, critical_path_ms, failed_calls_summary, winners
from fleet_dagster.core.records import AgentCall, CouncilResult, Proposal, Selection

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
    brief = {"agent_id": "a1", "score": 8.5, **SAID_BY}
    assert found == {"DEV": {**brief, "rationale": "highest score 8.50", "flags": []}}
    assert brief_winners(found) == {"DEV": brief}  # what the status document and the final event say


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
