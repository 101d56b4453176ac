"""The councils a runner hosts, and who owns each: the run that started it, or the run that adopted it from the
arrival that started it on a request's arrival (deliberation/arrival.py). Plain asyncio: the runner actor holds one."""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from fleet_dagster.core.council import Council, run_council
from fleet_dagster.core.records import AgentCall, CouncilResult
from fleet_dagster.core.request import MAX_DEADLINE_S
from fleet_dagster.ray_cluster.expiring import Expiring

UNCOLLECTED_TTL_S = 3600.0
# What a runner keeps of a deliberation nobody released (its run died) goes this long after it started: no
# deliberation runs longer than MAX_DEADLINE_S, and its result waits UNCOLLECTED_TTL_S more.
UNRELEASED_TTL_S = MAX_DEADLINE_S + UNCOLLECTED_TTL_S


@dataclass
class HostedCouncil:
    council: Council
    task: asyncio.Task
    run_id: str
    published: int = 0  # how many of its calls the owning run has put on NATS (a resumed collect goes on from here)


@dataclass(frozen=True)
class Claim:
    """What a run's start of a council comes to: refused (why), hosted already for that run, or to start."""

    refusal: str | None = None
    hosted: bool = False

    @property
    def to_start(self) -> bool:
        return self.refusal is None and not self.hosted


class CouncilHost:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        # Results nobody collected (their run died) go once well past their deadline.
        self._councils: Expiring[tuple[str, str], HostedCouncil] = Expiring(clock=clock)
        # Runs whose councils were released: a step of such a run that still goes on (Ctrl-C releases while the
        # in-process executor runs) may not start a council that nothing would release.
        self._released_runs: Expiring[str, None] = Expiring(clock=clock)

    def claim(self, deliberation_id: str, role: str, run_id: str, adopt_from: str | None = None) -> Claim:
        """A retried step or a resumed run (the same run) gets its running council; another run may not take it
        over, except the run of a request whose councils were started on its arrival (`adopt_from`, their owner
        until then)."""
        if run_id in self._released_runs:
            return Claim(f"run {run_id} released its councils (it finished or was cancelled) and starts none again")
        hosted = self._councils.get((deliberation_id, role))
        if hosted is not None and adopt_from is not None and hosted.run_id == adopt_from:
            hosted.run_id = run_id
        if hosted is not None and hosted.run_id == run_id:
            return Claim(hosted=True)
        if hosted is not None and not hosted.task.done():
            return Claim(
                f"deliberation {deliberation_id} is already running in run {hosted.run_id}; "
                "one deliberation id runs in one run at a time"
            )
        return Claim()

    def host(self, deliberation_id: str, role: str, council: Council, run_id: str) -> None:
        self._councils.prune(keep=lambda hosted: not hosted.task.done())
        task = asyncio.create_task(run_council(council))
        self._councils.put(
            (deliberation_id, role), HostedCouncil(council, task, run_id), council.deadline_at + UNCOLLECTED_TTL_S
        )

    def of(self, deliberation_id: str, run_id: str | None = None) -> dict[str, HostedCouncil]:
        return {
            role: hosted
            for (delib, role), hosted in self._councils.items()
            if delib == deliberation_id and run_id in (None, hosted.run_id)
        }

    def admission_view(self) -> tuple[set[str], set[str]]:
        """For fleet admission: the deliberations with a council running here, and those with any council here
        (running or done, not yet released)."""
        councils = list(self._councils.items())
        running = {delib for (delib, _), council in councils if not council.task.done()}
        return running, {delib for (delib, _), _ in councils}

    def progress(self, deliberation_id: str) -> dict[str, dict]:
        return {
            role: {**hosted.council.progress(), "finished": hosted.task.done()}
            for role, hosted in self.of(deliberation_id).items()
        }

    def calls_since(self, deliberation_id: str, offsets: dict[str, int]) -> dict[str, list[AgentCall]]:
        """Each council's calls from number offsets[role] on, in the order the council recorded them."""
        return {
            role: hosted.council.calls[offsets.get(role, 0) :]
            for role, hosted in self.of(deliberation_id).items()
            if len(hosted.council.calls) > offsets.get(role, 0)
        }

    def published(self, deliberation_id: str, run_id: str) -> dict[str, int]:
        return {role: hosted.published for role, hosted in self.of(deliberation_id, run_id).items()}

    def mark_published(self, deliberation_id: str, run_id: str, offsets: dict[str, int]) -> None:
        for role, hosted in self.of(deliberation_id, run_id).items():
            hosted.published = max(hosted.published, offsets.get(role, 0))

    async def result(self, deliberation_id: str, role: str) -> CouncilResult | None:
        """Waits for the council. It stays here until `release`, so that a collect step that died while
        waiting (its run resumed on a new pod) can ask again; a cancelled wait never cancels the council."""
        hosted = self._councils.get((deliberation_id, role))
        if hosted is None:
            return None
        return await asyncio.shield(hosted.task)

    def release(self, deliberation_id: str, run_id: str | None = None) -> int:
        """Drops the deliberation's councils (those of `run_id` only, when given), cancelling any still running."""
        roles = list(self.of(deliberation_id, run_id))
        for role in roles:
            hosted = self._councils.pop((deliberation_id, role))
            if hosted is not None:
                hosted.task.cancel()
        if run_id is not None:
            self._released_runs.prune()
            self._released_runs.put(run_id, None, self._clock() + UNCOLLECTED_TTL_S)
        return len(roles)
