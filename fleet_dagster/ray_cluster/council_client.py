"""One owner's view of a deliberation's councils on the cluster's CouncilRunners: start, watch, collect,
release. Each council runs on the runner `runner_index` names; questions about the whole deliberation go
to every runner. The Dagster asset and the benchmarks reach councils only through it; the CLI's Ctrl-C path also
asks Ray whether this process is connected (cli/run_deliberation.py)."""

import time
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.actor import ActorHandle

from fleet_dagster.core.records import AgentCall, CouncilResult
from fleet_dagster.core.request import DeliberationRequest
from fleet_dagster.llm.endpoint import LLMEndpoint
from fleet_dagster.ray_cluster.actors import (
    COUNCIL_RUNNERS,
    council_runner,
    ledger_index,
    runner_index,
    start_on_runners,
)

MAX_RESTARTS = 3  # per council: a runner that keeps dying is not going to finish it
# How long a council's restart waits for its runner to be restarted by Ray (a new process: seconds).
RUNNER_RESTART_S = 60.0
RUNNER_RESTART_POLL_S = 0.2


class CouncilRunnerUnavailable(RuntimeError):
    """The runner could not be reached or answered with an error: Ray is down, or the actor died."""


@dataclass(frozen=True)
class LostCouncil:
    """A council whose result the runner could not hand over, and why."""

    reason: str
    detail: str = ""


def ray_call(ref: ray.ObjectRef | list[ray.ObjectRef], timeout_s: float | None = None) -> Any:
    try:
        return ray.get(ref, timeout=timeout_s)
    except ray.exceptions.RayError as exc:
        raise CouncilRunnerUnavailable(f"{type(exc).__name__}: {exc}") from exc


def council_runners() -> list[ActorHandle]:
    return [council_runner(i) for i in range(COUNCIL_RUNNERS)]


def _merged(answers: list[dict]) -> dict:
    return {key: value for answer in answers for key, value in answer.items()}


@dataclass
class CouncilClient:
    """The councils of `deliberation_id` that `owner` (a Dagster run id, or any caller's own id) started."""

    deliberation_id: str
    owner: str
    # Finding a runner asks the cluster; a caller with many clients finds them once (council_runners()).
    runners: list[ActorHandle] = field(default_factory=lambda: council_runners(), repr=False)

    # role -> the arguments this owner started its council with, and how often it was started again
    _started: dict[str, tuple] = field(default_factory=dict, repr=False)
    _restarts: dict[str, int] = field(default_factory=dict, repr=False)

    def _runner(self, role: str) -> ActorHandle:
        return self.runners[runner_index(self.deliberation_id, role)]

    def start(
        self,
        request: DeliberationRequest,
        roles: list[str],
        deadline_at: float,
        endpoint: LLMEndpoint,
        call_timeout_s: float,
        adopt_from: str | None = None,
        timeout_s: float | None = None,
    ) -> list[str]:
        """Starts each role's council unless this owner runs it already; returns the refusals (another
        owner runs the id, or this owner released it). Councils that `adopt_from` started (on the request's
        arrival) become this owner's. Waits for the runners' answers at most `timeout_s` (None: as long as
        they take)."""
        starts = self.submit_start(request, roles, deadline_at, endpoint, call_timeout_s, adopt_from)
        return [refusal for refusal in ray_call(starts, timeout_s) if refusal]

    def submit_start(
        self,
        request: DeliberationRequest,
        roles: list[str],
        deadline_at: float,
        endpoint: LLMEndpoint,
        call_timeout_s: float,
        adopt_from: str | None = None,
    ) -> list[ray.ObjectRef]:
        """`start` without waiting: each role's answer (its refusal, or None), to `ray_call` with others."""
        starts = start_on_runners(
            self.runners.__getitem__, request, roles, deadline_at, endpoint, call_timeout_s, self.owner, adopt_from
        )
        self._started |= {role: (request, deadline_at, endpoint, call_timeout_s) for role in roles}
        return starts

    def restart(self, role: str) -> bool:
        """Starts again a council this owner started and its runner lost (the process died and Ray restarted
        it empty): the calls that had finished are answered from the response store. False when it cannot."""
        if role not in self._started or self._restarts.get(role, 0) >= MAX_RESTARTS:
            return False
        request, deadline_at, endpoint, call_timeout_s = self._started[role]
        if time.time() >= deadline_at:
            return False
        self._restarts[role] = self._restarts.get(role, 0) + 1
        give_up_at = min(deadline_at, time.time() + RUNNER_RESTART_S)
        while True:
            try:
                return not self.start(request, [role], deadline_at, endpoint, call_timeout_s)
            except CouncilRunnerUnavailable as exc:
                # Lost with its runner, the council is asked for while Ray restarts that runner: starting is
                # idempotent for this owner, so it is asked again until the runner is back.
                if not isinstance(exc.__cause__, ray.exceptions.ActorUnavailableError) or time.time() >= give_up_at:
                    return False
                time.sleep(RUNNER_RESTART_POLL_S)

    def _ask_every_runner(self, method: str, *args: Any) -> list[ray.ObjectRef]:
        return [getattr(runner, method).remote(self.deliberation_id, *args) for runner in self.runners]

    def progress(self) -> dict[str, dict]:
        return _merged(ray_call(self._ask_every_runner("progress")))

    def calls_since(self, offsets: dict[str, int]) -> dict[str, list[AgentCall]]:
        return _merged(ray_call(self._ask_every_runner("calls_since", offsets)))

    def published(self) -> dict[str, int]:
        """How many of each council's calls this owner has put on NATS."""
        return _merged(ray_call(self._ask_every_runner("published", self.owner)))

    def mark_published(self, offsets: dict[str, int]) -> None:
        """Recorded in the background: a lost mark only means those calls are published again."""
        self._ask_every_runner("mark_published", self.owner, offsets)

    def finished(self, status: str) -> None:
        """Counts the deliberation's end in metrics, in the background (counted once, whoever reports it)."""
        self.runners[ledger_index(self.deliberation_id)].count_deliberation.remote(self.deliberation_id, status)

    def results(self, roles: list[str]) -> "CouncilResults":
        return CouncilResults(self, roles)

    def result_of(self, role: str) -> ray.ObjectRef:
        return self._runner(role).result.remote(self.deliberation_id, role)

    def release(self, timeout_s: float | None = None) -> int | None:
        """Drops this owner's councils, cancelling those still running. Waits up to timeout_s for how many
        were released; without a timeout it only sends the request."""
        released = self._ask_every_runner("release", self.owner)
        return None if timeout_s is None else sum(ray_call(released, timeout_s))

    def collect(self, roles: list[str]) -> list[CouncilResult]:
        """Waits for every council and releases them: the results of the roles that had a council."""
        try:
            outcomes = self.results(roles).wait_all()
        finally:
            self.release()
        return [outcome for outcome in outcomes.values() if isinstance(outcome, CouncilResult)]


class CouncilResults:
    """The councils' results as they come in. A council that finished stays on its runner until released,
    so a caller that died while waiting (a resumed run) can ask again."""

    def __init__(self, client: CouncilClient, roles: list[str]):
        self._client = client
        self._pending: dict[ray.ObjectRef, str] = {}
        self.restarted: list[str] = []  # roles whose council was lost and started again, in order
        for role in roles:
            self.wait_for(role)

    def wait_for(self, role: str) -> None:
        """Waits (again) for the role's council: after it was started again on a restarted runner."""
        self._pending[self._client.result_of(role)] = role

    @property
    def pending(self) -> list[str]:
        return list(self._pending.values())

    def ready(self, timeout_s: float) -> dict[str, CouncilResult | LostCouncil]:
        """The results that came in within timeout_s, by role."""
        done, _ = ray.wait(list(self._pending), num_returns=len(self._pending), timeout=timeout_s)
        outcomes: dict[str, CouncilResult | LostCouncil] = {}
        for ref in done:
            role = self._pending.pop(ref)
            try:
                outcome = ray.get(ref) or LostCouncil("the council was never started")
            except ray.exceptions.RayError as exc:
                outcome = LostCouncil(f"the council was lost on Ray: {type(exc).__name__}", str(exc))
            if isinstance(outcome, LostCouncil) and self._client.restart(role):
                self.restarted.append(role)
                self.wait_for(role)
            else:
                outcomes[role] = outcome
        return outcomes

    def wait_all(self) -> dict[str, CouncilResult | LostCouncil]:
        outcomes: dict[str, CouncilResult | LostCouncil] = {}
        while self._pending:
            outcomes |= self.ready(timeout_s=60.0)
        return outcomes
