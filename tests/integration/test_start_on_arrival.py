"""A NATS request's councils start when the sensor sees it; its run adopts them, within run concurrency limits."""

import json
from pathlib import Path

import dagster as dg
import pytest
import ray

from fleet_dagster.deliberation.arrival import arrival_owner, free_run_slots
from fleet_dagster.ray_cluster.council_client import CouncilClient
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


def request_body(deliberation_id: str) -> bytes:
    fields = {"task": "Design a cache", "roles": ["DEV"], "agents_per_role": 2, "rounds": 1}
    return json.dumps({**fields, "deliberation_id": deliberation_id}).encode()


def test_councils_start_on_arrival_and_the_run_adopts_them(
    nats_url, instance, ray_head, ray_namespace, sim_llm_factory, deploy_llm
):
    server = sim_llm_factory(latency_s=0.3)
    deploy_llm(server)
    [seq] = nats_helpers.publish_raw(nats_url, [request_body("arrival-1")])
    result = nats_helpers.evaluate_request_sensor(nats_url, instance, None, start_on_arrival=True)
    [run_request] = result.run_requests
    # The sensor's connection ended with its tick; this process asks the councils on a connection of its own.
    ray.init(address=ray_head.address, namespace=ray_namespace, log_to_driver=False)
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


def test_no_council_starts_early_beyond_the_runs_dagster_would_start(
    nats_url, tmp_path, ray_head, ray_namespace, sim_llm_factory, deploy_llm
):
    server = sim_llm_factory(latency_s=0.3)
    deploy_llm(server)
    with queued_instance(tmp_path / "one_slot", max_concurrent_runs=1) as instance:
        assert free_run_slots(instance) == 1
        instance.add_run(dg.DagsterRun(job_name="deliberation_job", status=dg.DagsterRunStatus.STARTED))
        assert free_run_slots(instance) == 0  # one run goes on: a new request's run would wait in the queue
        [seq] = nats_helpers.publish_raw(nats_url, [request_body("arrival-late")])
        result = nats_helpers.evaluate_request_sensor(nats_url, instance, None, start_on_arrival=True)
        assert [r.run_key for r in result.run_requests] == ["arrival-late"]
        # The sensor starts councils before its tick ends, or not at all: asked now, the runner holds none.
        ray.init(address=ray_head.address, namespace=ray_namespace, log_to_driver=False)
        try:
            assert CouncilClient("arrival-late", arrival_owner(seq)).progress() == {}
        finally:
            ray.shutdown()
        assert not server.requests_by_agent
