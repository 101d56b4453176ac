"""A NATS request's councils start when the sensor sees it; its run adopts them, within run concurrency limits."""

import json
import threading
import time
from pathlib import Path

import dagster as dg
import pytest
import ray

from fleet_dagster.core.request import parse_request
from fleet_dagster.deliberation.arrival import arrival_owner, start_councils
from fleet_dagster.deliberation.run_config import run_config_for
from fleet_dagster.llm.resources import LLMResource
from fleet_dagster.llm.settings import LLM_ENV
from fleet_dagster.ray_cluster.council_client import CouncilClient
from fleet_dagster.ray_cluster.fleet_admission import admit, mark_started
from tests import nats_helpers
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def nats_url(nats_server) -> str:
    return nats_server.url


def queued_instance(home: Path, max_concurrent_runs: int) -> dg.DagsterInstance:
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\n"
        "run_coordinator:\n  module: dagster.core.run_coordinator\n  class: QueuedRunCoordinator\n"
        f"  config:\n    max_concurrent_runs: {max_concurrent_runs}\n"
    )
    return dg.DagsterInstance.from_config(str(home))


def test_councils_start_on_arrival_and_the_run_adopts_them(
    nats_url, instance, ray_head, ray_namespace, sim_llm_factory, deploy_llm
):
    server = sim_llm_factory(latency_s=0.3)
    deploy_llm(server)
    [seq] = nats_helpers.publish_raw(nats_url, [nats_helpers.request_body("arrival-1")])
    result = nats_helpers.evaluate_request_sensor(nats_url, instance, None, start_on_arrival=True)
    [run_request] = result.run_requests
    # The sensor's tick left this process connected, in the test's namespace: asked on that connection.
    ray.init(address=ray_head.address, namespace=ray_namespace, log_to_driver=False, ignore_reinit_error=True)
    try:
        councils_before_the_run = CouncilClient("arrival-1", arrival_owner(seq)).progress()
    finally:
        ray.shutdown()

    wait_until(lambda: server.answered, 20, "a model call before the run")  # the model works before any run exists
    assert instance.get_runs_count() == 0
    assert set(councils_before_the_run) == {"DEV"}

    outcome = nats_helpers.execute_run_request(instance, run_request)
    assert outcome.success
    metadata = outcome.asset_materializations_for_node("deliberation")[0].metadata
    assert metadata["status"].value == "COMPLETED"
    # Adopted, not started again: every call made once, none of them replayed from the store.
    assert metadata["agent_calls"].value == 2 * 3 and metadata["replayed_calls"].value == 0
    assert len(server.answered) == len(set(server.answered)) == 6


def test_an_adopted_deliberation_is_timed_from_its_councils_start(
    nats_url, instance, ray_head, ray_namespace, sim_llm_factory, deploy_llm
):
    """Its councils may finish before its run starts; its wall time still covers every call, so the share of it on
    the critical path is at most 1."""
    server = sim_llm_factory(latency_s=1.0)
    deploy_llm(server)
    nats_helpers.publish_raw(nats_url, [nats_helpers.request_body("arrival-timed")])
    result = nats_helpers.evaluate_request_sensor(nats_url, instance, None, start_on_arrival=True)
    tick_returned_at = time.time()
    wait_until(lambda: len(server.answered) == 6, 60, "the councils' 6 calls, before any run")  # 3 phases of 1 s

    outcome = nats_helpers.execute_run_request(instance, result.run_requests[0])
    metadata = {k: v.value for k, v in outcome.asset_materializations_for_node("deliberation")[0].metadata.items()}
    assert metadata["critical_path_s"] >= 3.0
    assert metadata["wall_time_s"] >= metadata["critical_path_s"]
    assert 0 < metadata["parallel_efficiency"] <= 1
    assert metadata["started_at"] < tick_returned_at


def request_with(deliberation_id: str, priority: str) -> bytes:
    return json.dumps({**json.loads(nats_helpers.request_body(deliberation_id)), "priority": priority}).encode()


def councils_of(ray_head, ray_namespace, owners: dict[str, str]) -> dict[str, dict]:
    """Each deliberation's councils, as the owner its arrival gave them holds them."""
    ray.init(address=ray_head.address, namespace=ray_namespace, log_to_driver=False, ignore_reinit_error=True)
    try:
        return {d: CouncilClient(d, owner).progress() for d, owner in owners.items()}
    finally:
        ray.shutdown()


def test_admission_starts_councils_past_the_run_queue_up_to_its_bound_by_priority(
    nats_url, tmp_path, ray_head, ray_namespace, sim_llm_factory, deploy_llm, monkeypatch
):
    server = sim_llm_factory(latency_s=0.3)
    deploy_llm(server)
    monkeypatch.setenv(LLM_ENV["max_deliberations_in_flight"], "2")
    with queued_instance(tmp_path / "one_slot", max_concurrent_runs=1) as instance:
        # One run goes on: Dagster's queue starts no other, yet admission is the fleet's, not the queue's.
        instance.add_run(dg.DagsterRun(job_name="deliberation_job", status=dg.DagsterRunStatus.STARTED))
        server.hold()  # the admitted councils stay running until the test lets the model answer
        seqs = nats_helpers.publish_raw(
            nats_url, [request_with("p-low", "low"), request_with("p-normal", "normal"), request_with("p-high", "high")]
        )
        owners = {d: arrival_owner(seq) for d, seq in zip(["p-low", "p-normal", "p-high"], seqs, strict=True)}
        result = nats_helpers.evaluate_request_sensor(nats_url, instance, None, start_on_arrival=True)
        assert {r.run_key: r.tags["dagster/priority"] for r in result.run_requests} == {
            "p-low": "-1",
            "p-normal": "0",
            "p-high": "1",
        }
        running = councils_of(ray_head, ray_namespace, owners)
        # Two slots: high, then normal; low waits, though it came first.
        assert {d for d, councils in running.items() if councils} == {"p-high", "p-normal"}

        for run_request in result.run_requests:  # what the daemon makes of them: runs waiting in the queue
            instance.add_run(
                dg.DagsterRun(
                    job_name="deliberation_job",
                    status=dg.DagsterRunStatus.NOT_STARTED,  # queued; QUEUED needs a code location's origin
                    run_config=run_request.run_config,
                    tags=run_request.tags,
                )
            )
        again = nats_helpers.evaluate_request_sensor(nats_url, instance, result.cursor, start_on_arrival=True)
        assert isinstance(again, dg.SkipReason)  # no new request, and no slot free yet
        assert not councils_of(ray_head, ray_namespace, {"p-low": owners["p-low"]})["p-low"]

        server.let_go()
        # A slot frees: the keeper starts the waiting request's councils then, with no tick of the sensor (the
        # next one may be seconds away), and before its run (still queued) does.
        wait_until(
            lambda: councils_of(ray_head, ray_namespace, {"p-low": owners["p-low"]})["p-low"],
            30,
            "the waiting request's councils to start as a slot frees",
        )
        assert server.first_call_at["p-low"] > min(server.last_answer_at[d] for d in ("p-high", "p-normal"))
        assert instance.get_runs_count(dg.RunsFilter(statuses=[dg.DagsterRunStatus.NOT_STARTED])) == 3


def _waiting_logged(instance: dg.DagsterInstance) -> bool:
    return any(
        "waiting for fleet capacity" in (entry.message or "")
        for run in instance.get_runs()
        for entry in instance.all_logs(run.run_id)
    )


def test_a_run_launched_from_the_launchpad_waits_for_its_turn(
    instance, ray_head, ray_namespace, sim_llm_factory, deploy_llm, monkeypatch
):
    server = sim_llm_factory(latency_s=0.2)
    deploy_llm(server)
    monkeypatch.setenv(LLM_ENV["max_deliberations_in_flight"], "1")
    server.hold()
    # Another deliberation holds the fleet's one slot (started on its arrival, as the sensor would).
    blocker = parse_request({**json.loads(nats_helpers.request_body("blocker")), "rounds": 0, "agents_per_role": 1})
    ray.init(address=ray_head.address, namespace=ray_namespace, log_to_driver=False)
    try:
        assert admit([("blocker", 0)], 1).to_start == ["blocker"]
        client = CouncilClient("blocker", arrival_owner(1))
        assert not start_councils(client, blocker, ["DEV"], time.time() + 60, None, LLMResource())
        mark_started(["blocker"])
    finally:
        ray.shutdown()

    def let_go_once_the_run_waits() -> None:
        try:
            wait_until(lambda: _waiting_logged(instance), 60, "the run to wait for its turn")
        finally:
            server.let_go()

    watcher = threading.Thread(target=let_go_once_the_run_waits)
    watcher.start()
    second = parse_request(json.loads(nats_helpers.request_body("second")))
    run_request = dg.RunRequest(run_key="second", partition_key="second", run_config=run_config_for(second))
    outcome = nats_helpers.execute_run_request(instance, run_request)
    watcher.join()
    assert outcome.success and _waiting_logged(instance)
    # Its councils started only once the blocker's had finished: its first call came after the blocker's answer.
    assert server.first_call_at["second"] >= server.first_call_at["blocker"] + 0.2
