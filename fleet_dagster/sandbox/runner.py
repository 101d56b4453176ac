"""The CodeRunner of one machine: bubblewrap sandboxes, a few at a time."""

import asyncio

from fleet_dagster.core.execution import ExecutionJob, ExecutionResult
from fleet_dagster.sandbox.bubblewrap import run_job
from fleet_dagster.sandbox.settings import SandboxSettings


class BubblewrapRunner:
    """Runs jobs in bubblewrap sandboxes, at most `max_concurrent` at once (each may use a core and its memory
    limit); the others wait their turn, and a job's duration counts from its start, not its wait. Bound to
    the event loop it first runs on (its semaphore is)."""

    def __init__(self, settings: SandboxSettings | None = None, max_concurrent: int = 2) -> None:
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be at least 1, not {max_concurrent}")
        self.settings = settings or SandboxSettings()
        self._slots = asyncio.Semaphore(max_concurrent)

    async def run(self, job: ExecutionJob) -> ExecutionResult:
        async with self._slots:
            return await run_job(job, self.settings)
