"""Code runs on the cluster's sandbox nodes: a Ray task that needs SANDBOX_RESOURCE, which only the nodes meant
for model-written code offer. No council actor, run pod or code location runs model code: they ask here."""

import asyncio
import os
import time

import ray

from fleet_dagster.core.cross_execution import cross_execute
from fleet_dagster.core.execution import ExecutionJob, ExecutionResult
from fleet_dagster.core.pass_matrix import PassMatrix
from fleet_dagster.core.records import CouncilResult
from fleet_dagster.core.request import DeliberationRequest
from fleet_dagster.ray_cluster.cluster_settings import SANDBOX_RESOURCE
from fleet_dagster.ray_cluster.metrics import record_execution

# Runs one runner asks for at once: the cluster's slots bound how many run, this bounds what waits for them.
MAX_RUNS_IN_FLIGHT = 16
# How long a run may wait for a sandbox slot beyond its own wall limit before it is reported unavailable:
# a cluster without sandbox nodes never runs it, and waiting forever would hold the council to its deadline.
SLOT_WAIT_S = 60.0


@ray.remote(num_cpus=0, resources={SANDBOX_RESOURCE: 1}, max_retries=0)
def _run_in_sandbox(job: ExecutionJob) -> ExecutionResult:
    from fleet_dagster.sandbox.bubblewrap import run_job
    from fleet_dagster.sandbox.settings import SandboxSettings

    result = asyncio.run(run_job(job, SandboxSettings.from_environ(os.environ)))
    record_execution(result.verdict, result.duration_ms)
    return result


class SandboxRuns:
    """A CodeRunner (core/execution.py) that runs each job as a task on a sandbox node."""

    def __init__(self, max_in_flight: int = MAX_RUNS_IN_FLIGHT) -> None:
        self._in_flight = asyncio.Semaphore(max_in_flight)

    async def run(self, job: ExecutionJob) -> ExecutionResult:
        async with self._in_flight:
            ref = _run_in_sandbox.remote(job)
            try:
                return await asyncio.wait_for(asyncio.wrap_future(ref.future()), job.limits.wall_s + SLOT_WAIT_S)
            except TimeoutError:
                ray.cancel(ref, force=True)
                reason = f"no sandbox node ran it within {job.limits.wall_s + SLOT_WAIT_S:.0f} s"
            except Exception as exc:  # noqa: BLE001 - a lost node or task: the run's verdict, never the council's end
                reason = f"the sandbox task failed: {type(exc).__name__}: {str(exc)[:200]}"
            return ExecutionResult(verdict="unavailable", reason=reason)


def cross_executed(
    request: DeliberationRequest, councils: list[CouncilResult], deadline_at: float
) -> tuple[list[CouncilResult], PassMatrix | None]:
    """The councils once their code has run against each other's (core/cross_execution.py), from a driver: the
    collect step, or the CLI's and the benchmarks' direct runs."""
    return asyncio.run(cross_execute(request, councils, SandboxRuns(), deadline_at=deadline_at, clock=time.time))
