"""Real Dagster execution, a real local Ray head and real HTTP model servers."""

import json
import os
import subprocess
import sys
import time

import dagster as dg
import pytest
import ray

from fleet_dagster.cli.run_deliberation import cancel_deliberation, execute_deliberation, new_run_id
from fleet_dagster.core.request import parse_request
from fleet_dagster.deliberation.arrival import start_for_launch
from fleet_dagster.deliberation.keys_and_tags import DELIBERATION_ASSET_KEY
from fleet_dagster.llm.endpoint import LLMEndpoint
from fleet_dagster.llm.resources import LLMResource
from fleet_dagster.ray_cluster.council_client import CouncilClient
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def materialization_metadata(instance: dg.DagsterInstance, deliberation_id: str) -> dict:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=DELIBERATION_ASSET_KEY, asset_partitions=[deliberation_id]), limit=1
    ).records
    assert records, "no materialization of the deliberation partition"
    return {key: value.value for key, value in records[0].asset_materialization.metadata.items()}


def test_embedded_model_deliberation(ray_head, instance, dagster_home):
    request = parse_request(
        {
            "task": "Design a rate limiter for the public REST API",
            "roles": ["DEV", "QA"],
            "agents_per_role": 2,
            "rounds": 1,
            "deliberation_id": "embedded-2x2",
        }
    )
    seen: list[dict] = []
    # The wiring is under test, not the machine's speed: beside a busy core the small model on one thread took
    # over the default 120 s for a review (4 of 12 calls timed out), so a call may take up to the deadline.
    llm_config = {"embedded_max_tokens": 160, "call_timeout_s": request.deadline_s}
    document = execute_deliberation(instance, request, llm_config=llm_config, on_status=seen.append)

    assert document["status"] == "COMPLETED", document["error_message"]
    assert document["expected_count"] == 4 and document["current_count"] == 4
    assert set(document["winners"]) == {"DEV", "QA"}
    rows = document["results"]
    assert len(rows) == 4 and all(row["content"].strip() for row in rows)
    assert sum(row["is_winner"] for row in rows) == 2
    # Ring of two: each author is reviewed once; a review the small model garbled is kept as unparsed.
    assert all(row["reviews_received"] == 1 for row in rows)
    assert all(row["peer_score"] is not None or row["reviews_unparsed"] == 1 for row in rows)
    assert any(d["status"] in ("IN_PROGRESS", "PENDING") for d in seen)

    metadata = materialization_metadata(instance, "embedded-2x2")
    for key in (
        "status",
        "expected_count",
        "current_count",
        "winners",
        "proposals",
        "total_tokens",
        "wall_time_s",
        "models",
        "parallel_efficiency",
    ):
        assert key in metadata
    assert metadata["total_tokens"] > 0 and any("smollm2" in model for model in metadata["models"])
    assert 0 < metadata["parallel_efficiency"] <= 1

    printed = subprocess.run(
        [sys.executable, "-m", "fleet_dagster.cli", "status", "embedded-2x2", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "DAGSTER_HOME": str(dagster_home)},
        check=True,
    )
    assert json.loads(printed.stdout) == document


def test_failing_agent_gives_partial(ray_head, instance, sim_llm_factory, deploy_llm):
    server = sim_llm_factory(latency_s=0.05, hang_s=30, faults={"agent-qa-002": ["500", "hang"]})
    deploy_llm(server)
    request = parse_request(
        {"task": "Design a cache", "roles": ["DEV", "QA"], "agents_per_role": 2, "deliberation_id": "faulty-agent"}
    )
    document = execute_deliberation(instance, request, llm_config={"max_retries": 1, "call_timeout_s": 2.0})

    assert document["status"] == "PARTIAL"
    failed = [row for row in document["results"] if row["agent_id"] == "agent-qa-002"]
    assert failed[0]["content"] is None and "timed out" in failed[0]["error"]
    assert server.requests_by_agent["agent-qa-002"] == 2  # the HTTP 500, then the retry that hung
    assert all(row["content"] for row in document["results"] if row["agent_id"] != "agent-qa-002")
    assert set(document["winners"]) == {"DEV", "QA"}


def test_each_council_runs_once_though_the_plan_and_its_step_both_start_it(
    ray_head, instance, sim_llm_factory, deploy_llm
):
    server = sim_llm_factory(latency_s=0.05)
    deploy_llm(server)
    roles = ["DEV", "QA", "DATA"]
    request = parse_request(
        {"task": "Design a cache", "roles": roles, "agents_per_role": 2, "rounds": 1, "deliberation_id": "started-once"}
    )
    document = execute_deliberation(instance, request)

    assert document["status"] == "COMPLETED"
    agents = {f"agent-{role.lower()}-00{i}" for role in roles for i in (1, 2)}
    assert server.requests_by_agent == dict.fromkeys(agents, 3)  # propose, review, revise: once each


def test_the_cli_starts_the_councils_before_dagster_creates_the_run(ray_head, instance, sim_llm_factory, deploy_llm):
    """Creating a run and reaching its plan step takes Dagster about 0.3 s on SQLite; the councils do not wait for
    it, and the run takes them as its own: each call made once."""
    server = sim_llm_factory(latency_s=0.2)
    deploy_llm(server)
    request = parse_request(
        {"task": "Design a cache", "roles": ["DEV", "QA"], "agents_per_role": 2, "deliberation_id": "cli-first"}
    )
    document = execute_deliberation(instance, request)

    assert document["status"] == "COMPLETED", document["error_message"]
    run_created_at = instance.all_logs(document["run_id"])[0].timestamp
    assert materialization_metadata(instance, "cli-first")["started_at"] < run_created_at
    assert len(server.answered) == len(set(server.answered)) == 2 * 2 * 3
    assert document["replayed_calls"] == 0


def test_ctrl_c_before_the_run_exists_releases_the_councils_started_for_it(
    ray_head, ray_namespace, instance, sim_llm_factory, deploy_llm
):
    server = sim_llm_factory(latency_s=0.05)
    deploy_llm(server)
    server.hold()  # the councils wait in their first calls
    request = parse_request({"task": "Design a cache", "roles": ["DEV"], "deliberation_id": "cli-released"})
    run_id = new_run_id()
    ray.init(address=ray_head.address, namespace=ray_namespace, log_to_driver=False, ignore_reinit_error=True)
    try:
        assert start_for_launch(request, run_id, LLMResource())
        wait_until(lambda: server.in_flight == request.agents_per_role, 30, "the councils' first calls")
        assert instance.get_run_by_id(run_id) is None

        assert cancel_deliberation(instance, "cli-released", run_id) == "its councils released"
        assert CouncilClient("cli-released", run_id).progress() == {}
        # A start that was on its way when Ctrl-C came starts nothing now.
        assert not start_for_launch(request, run_id, LLMResource())
    finally:
        server.let_go()
        ray.shutdown()


def test_architect_selection_through_dagster_and_ray(ray_head, instance, sim_llm_factory, deploy_llm):
    # The simulated server decodes to the requested JSON Schema, as vLLM's guided decoding does.
    server = sim_llm_factory(latency_s=0.05)
    deploy_llm(server)
    request = parse_request(
        {
            "task": "Design a cache",
            "roles": ["DEV", "QA"],
            "agents_per_role": 3,
            "selection": "architect",
            "deliberation_id": "architect-pick",
        }
    )
    document = execute_deliberation(instance, request)

    assert document["status"] == "COMPLETED"
    metadata = materialization_metadata(instance, "architect-pick")
    chosen = metadata["winners"]
    assert set(chosen) == {"DEV", "QA"}
    for role, winner in chosen.items():
        assert winner["decided_by"] == "architect" and winner["rationale"], winner
        # The asset page shows each winner's whole proposal, with the architect's rationale, as markdown.
        content = next(r["content"] for r in document["results"] if r["agent_id"] == winner["agent_id"])
        assert len(content) > 200 and content in metadata["winning_proposals"]
        assert winner["rationale"] in metadata["winning_proposals"]
        finalists = sorted((row for row in document["results"] if row["role"] == role), key=lambda row: -row["score"])[
            : request.select_top_k
        ]
        assert winner["agent_id"] in {row["agent_id"] for row in finalists}
    assert sum(server.requests_by_agent.values()) == 2 * 3 * 3 + 2  # 3 phases per agent, 1 pick per role


def test_a_council_result_can_be_collected_again_until_released(runner, sim_llm_factory):
    """What a resumed run needs: its collect step died while waiting, the new one asks again."""
    server = sim_llm_factory(latency_s=1.0)
    request = parse_request(
        {"task": "Design a cache", "roles": ["DEV"], "agents_per_role": 2, "rounds": 0, "deliberation_id": "again"}
    )
    dev_runner = runner("again")
    ray.get(
        dev_runner.start.remote(request, "DEV", time.time() + 60, LLMEndpoint(base_url=server.base_url), 10, "run-1")
    )
    abandoned = dev_runner.result.remote("again", "DEV")
    ray.cancel(abandoned)  # the first collector goes away while the council runs
    with pytest.raises(ray.exceptions.RayError):
        ray.get(abandoned)

    first = ray.get(dev_runner.result.remote("again", "DEV"))
    assert first is not None and first.error is None and len(first.proposals) == 2
    assert ray.get(dev_runner.result.remote("again", "DEV")) == first
    assert ray.get(dev_runner.release.remote("again")) == 1
    assert ray.get(dev_runner.result.remote("again", "DEV")) is None


def test_a_released_run_cannot_start_its_councils_again(runner, sim_llm_factory):
    """Ctrl-C releases a run's councils while its in-process steps still go on: a later start_council
    step of that run must not start the council again, where nothing would ever release it."""
    server = sim_llm_factory(latency_s=1.0)
    request = parse_request(
        {"task": "Design a cache", "roles": ["DEV"], "agents_per_role": 2, "rounds": 0, "deliberation_id": "gone"}
    )
    endpoint = LLMEndpoint(base_url=server.base_url)
    assert ray.get(runner("gone").start.remote(request, "DEV", time.time() + 60, endpoint, 10, "run-gone")) is None
    assert ray.get(runner("gone").release.remote("gone", "run-gone")) == 1

    refusal = ray.get(runner("gone").start.remote(request, "DEV", time.time() + 60, endpoint, 10, "run-gone"))
    assert refusal and "run-gone" in refusal and "released" in refusal
    assert ray.get(runner("gone").progress.remote("gone")) == {}
    # Another run (a re-execution) may run the id again.
    assert ray.get(runner("gone").start.remote(request, "DEV", time.time() + 60, endpoint, 10, "run-again")) is None
    assert ray.get(runner("gone").release.remote("gone")) == 1


def test_deadline_gives_timeout_with_what_finished(ray_head, instance, sim_llm_factory, deploy_llm):
    """Each agent proposes, then its review hangs past the deadline. Not a race of latencies against the deadline:
    the time the run takes to start its councils (actors starting on 2 busy cores) once took all of a 4 s one."""
    hangs_after_proposing = ["ok", "hang"]
    server = sim_llm_factory(
        latency_s=0.05,
        hang_s=12.0,
        faults={"agent-dev-001": hangs_after_proposing, "agent-dev-002": hangs_after_proposing},
    )
    deploy_llm(server)
    request = parse_request(
        {
            "task": "Design a queue",
            "roles": ["DEV"],
            "agents_per_role": 2,
            "rounds": 1,
            "deadline_s": 8,
            "deliberation_id": "short-deadline",
        }
    )
    document = execute_deliberation(instance, request)

    assert document["status"] == "TIMEOUT"
    assert document["current_count"] == 2
    assert all(row["content"] and row["round"] == 0 for row in document["results"])  # revisions were cut off
    assert document["winners"]["DEV"]["agent_id"].startswith("agent-dev-")


def test_unknown_deliberation_is_unknown(instance):
    from fleet_dagster.deliberation.status_query import deliberation_status

    assert deliberation_status(instance, "never-ran")["status"] == "UNKNOWN"


def test_role_without_any_proposal_fails_but_keeps_its_record(ray_head, instance, sim_llm_factory, deploy_llm):
    faults = {"agent-qa-001": ["500"], "agent-qa-002": ["503"]}
    server = sim_llm_factory(latency_s=0.05, faults=faults)
    deploy_llm(server)
    request = parse_request(
        {"task": "Design a cache", "roles": ["DEV", "QA"], "agents_per_role": 2, "deliberation_id": "qa-down"}
    )
    document = execute_deliberation(instance, request, llm_config={"max_retries": 0})

    assert document["status"] == "FAILED"
    assert materialization_metadata(instance, "qa-down")["status"] == "FAILED"
    qa_rows = [row for row in document["results"] if row["role"] == "QA"]
    assert [row["error"] for row in qa_rows] == [
        "propose: HTTP 500: injected HTTP 500",
        "propose: HTTP 503: injected HTTP 503",
    ]
    assert set(document["winners"]) == {"DEV"}
