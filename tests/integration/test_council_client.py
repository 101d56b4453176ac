"""The council runner's client, as the asset, the CLI and the benchmarks use it, against the real actor."""

import json
import time

import pytest
from click.testing import CliRunner

from fleet_dagster.cli.main import cli
from fleet_dagster.core.request import parse_request
from fleet_dagster.llm.endpoint import LLMEndpoint
from fleet_dagster.ray_cluster.council_client import CouncilClient, LostCouncil
from fleet_dagster.ray_cluster.deliberate import deliberate_on_ray

pytestmark = pytest.mark.integration


def request(deliberation_id: str):
    return parse_request(
        {
            "task": "Design a cache",
            "roles": ["DEV", "QA"],
            "agents_per_role": 2,
            "rounds": 0,
            "deliberation_id": deliberation_id,
        }
    )


def test_start_watch_collect_and_release(runner, sim_llm_factory):
    server = sim_llm_factory(latency_s=0.3)
    endpoint = LLMEndpoint(base_url=server.base_url)
    mine, theirs = CouncilClient("client-1", owner="run-a"), CouncilClient("client-1", owner="run-b")
    deadline_at = time.time() + 60
    assert mine.start(request("client-1"), ["DEV", "QA"], deadline_at, endpoint, 10) == []
    assert mine.start(request("client-1"), ["DEV"], deadline_at, endpoint, 10) == []  # its own: idempotent
    refusals = theirs.start(request("client-1"), ["DEV"], deadline_at, endpoint, 10)
    assert len(refusals) == 1 and "run-a" in refusals[0]
    assert set(mine.progress()) == {"DEV", "QA"}

    waiting = mine.results(["DEV", "QA"])
    outcomes = {}
    while waiting.pending:
        outcomes |= waiting.ready(timeout_s=0.5)
    assert all(len(result.proposals) == 2 for result in outcomes.values())
    assert {role: len(calls) for role, calls in mine.calls_since({}).items()} == {
        role: len(result.calls) for role, result in outcomes.items()
    }
    assert theirs.release(timeout_s=10) == 0  # another run's release leaves them be
    assert mine.release(timeout_s=10) == 2
    assert mine.progress() == {}


def test_a_council_that_never_started_is_reported_lost(runner):
    outcomes = CouncilClient("client-never", owner="run-x").results(["DEV"]).wait_all()
    assert outcomes == {"DEV": LostCouncil("the council was never started")}


def test_a_deliberation_run_again_is_answered_from_the_response_store(runner, sim_llm_factory):
    """A re-run (a new owner of the same request) pays for no call that had already finished."""
    server = sim_llm_factory(latency_s=0.05)
    endpoint = LLMEndpoint(base_url=server.base_url)
    first = deliberate_on_ray(request("client-rerun"), endpoint, call_timeout_s=10)
    answered = len(server.answered)
    again = deliberate_on_ray(request("client-rerun"), endpoint, call_timeout_s=10)

    assert answered == 2 * 2 and len(server.answered) == answered
    assert all(call.replayed for council in again for call in council.calls)
    assert [p.content for c in again for p in c.proposals] == [p.content for c in first for p in c.proposals]


def test_replay_scores_a_stored_deliberation_again_without_any_call(runner, sim_llm_factory):
    server = sim_llm_factory(latency_s=0.05)
    original = request("client-replay").model_copy(update={"rounds": 1})
    councils = deliberate_on_ray(original, LLMEndpoint(base_url=server.base_url), call_timeout_s=10)
    answered = len(server.answered)
    server.__exit__(None, None, None)  # the model server is gone: a replay must not need it

    replayed = CliRunner().invoke(cli, ["replay", "client-replay", "--json"])
    assert replayed.exit_code == 0, replayed.output
    outcome = json.loads(replayed.output)
    assert outcome["status"] == "COMPLETED" and outcome["missing_calls"] == 0
    assert outcome["replayed_calls"] == answered == sum(len(council.calls) for council in councils)
    assert {role: w["agent_id"] for role, w in outcome["winners"].items()} == {
        council.role: council.selection.winner for council in councils
    }

    unknown = CliRunner().invoke(cli, ["replay", "never-stored"])
    assert unknown.exit_code == 1 and "never-stored is not in the response store" in unknown.output
