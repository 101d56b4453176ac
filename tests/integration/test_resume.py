"""A run whose process dies mid-collect and is resumed (what run monitoring does on Kubernetes: `dagster api
resume_run` in a new pod) collects the councils without sending any agent call again."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._grpc.types import ExecuteRunArgs, ResumeRunArgs

from fleet_dagster.core.request import parse_request
from fleet_dagster.definitions import defs
from fleet_dagster.deliberation.run_config import run_config_for
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def command(args: list[str]) -> list[str]:
    """Dagster's own run-worker command line, with this environment's dagster."""
    return [str(Path(sys.executable).with_name("dagster")), *args[1:]] if args[0] == "dagster" else args


def step_started(instance: dg.DagsterInstance, run_id: str, step: str) -> bool:
    starts = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
    return any(record.step_key.endswith(step) for record in starts)


def test_a_resumed_run_does_not_repeat_the_councils_calls(ray_head, instance, sim_llm_factory, deploy_llm):
    server = sim_llm_factory(latency_s=1.5)
    deploy_llm(server)  # the run workers started below inherit it
    request = parse_request(
        {"task": "Design a cache", "roles": ["DEV"], "agents_per_role": 2, "rounds": 1, "deliberation_id": "resumed"}
    )
    instance.add_dynamic_partitions("deliberations", ["resumed"])
    origin = (
        ReconstructableRepository.for_module("fleet_dagster.definitions", "defs", working_directory=os.getcwd())
        .get_reconstructable_job("deliberation_job")
        .get_python_origin()
    )
    run = instance.create_run_for_job(
        defs.resolve_job_def("deliberation_job"),
        run_config=run_config_for(request),
        tags={"dagster/partition": "resumed", "fleet/deliberation_id": "resumed"},
        job_code_origin=origin,
    )
    worker = subprocess.Popen(
        command(
            ExecuteRunArgs(job_origin=origin, run_id=run.run_id, instance_ref=instance.get_ref()).get_command_args()
        ),
        start_new_session=True,
    )
    try:

        def collecting() -> bool:
            assert worker.poll() is None, "the run process ended before its collect step"
            return step_started(instance, run.run_id, "collect_deliberation")

        wait_until(collecting, 180, "the run's collect step", poll_s=0.2)
        os.killpg(worker.pid, signal.SIGKILL)  # the run pod dies while the councils run on Ray
        worker.wait()
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
    assert sum(server.requests_by_agent.values()) < 6, "killed before the councils finished"

    resumed = subprocess.run(
        command(
            ResumeRunArgs(job_origin=origin, run_id=run.run_id, instance_ref=instance.get_ref()).get_command_args()
        ),
        timeout=300,
    )
    assert resumed.returncode == 0
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.SUCCESS
    materialization = instance.fetch_materializations(dg.AssetKey("deliberation"), limit=1).records[0]
    assert materialization.asset_materialization.metadata["status"].value == "COMPLETED"
    # 2 agents x (propose, review, revise): each call made once, although the plan and council steps ran again.
    assert dict(server.requests_by_agent) == {"agent-dev-001": 3, "agent-dev-002": 3}
