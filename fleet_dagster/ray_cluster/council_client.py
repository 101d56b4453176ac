"""One owner's view of a deliberation's councils on the cluster's CouncilRunner: start, watch, collect,
release. Callers above this layer (the Dagster asset, the CLI, benchmarks) never touch Ray themselves."""

from dataclasses import dataclass, field
from typing import Any

import ray
from ray.actor import ActorHandle

from fleet_dagster.core.records import AgentCall, CouncilResult
from fleet_dagster.core.request import DeliberationRequest
from fleet_dagster.llm.endpoint import LLMEndpoint
from fleet_dagster.ray_cluster.actors import council_runner


class CouncilRunnerUnavailable(RuntimeError):
    """The runner could not be reached or answered with an error: Ray is down, or the actor died."""


@dataclass(frozen=True)
class LostCouncil:
    """A council whose result the runner could not hand over, and why."""

    reason: str
    detail: str = ""


def _ray_call(ref: ray.ObjectRef | list[ray.ObjectRef], timeout_s: float | None = None) -> Any:
    try:
        return ray.get(ref, timeout=timeout_s)
    except ray.exceptions.RayError as exc:
        raise CouncilRunnerUnavailable(f"{type(exc).__name__}: {exc}") from exc


@dataclass
class CouncilClient:
    """The councils of `deliberation_id` that `owner` (a Dagster run id, or any caller's own id) started."""

    deliberation_id: str
    owner: str
    _runner: ActorHandle = field(default_factory=council_runner, repr=False)

    def start(
        self,
        request: DeliberationRequest,
        roles: list[str],
        deadline_at: float,
        endpoint: LLMEndpoint,
        call_timeout_s: float,
    ) -> list[str]:
        """Starts each role's council unless this owner runs it already; returns the refusals (another
        owner runs the id, or this owner released it)."""
        starts: list[ray.ObjectRef] = [
            self._runner.start.remote(request, role, deadline_at, endpoint, call_timeout_s, self.owner)
            for role in roles
        ]
        return [refusal for refusal in _ray_call(starts) if refusal]

    def progress(self) -> dict[str, dict]:
        return _ray_call(self._runner.progress.remote(self.deliberation_id))

    def calls_since(self, offsets: dict[str, int]) -> dict[str, list[AgentCall]]:
        return _ray_call(self._runner.calls_since.remote(self.deliberation_id, offsets))

    def published(self) -> dict[str, int]:
        """How many of each council's calls this owner has put on NATS."""
        return _ray_call(self._runner.published.remote(self.deliberation_id, self.owner))

    def mark_published(self, offsets: dict[str, int]) -> None:
        """Recorded in the background: a lost mark only means those calls are published again."""
        self._runner.mark_published.remote(self.deliberation_id, self.owner, offsets)

    def results(self, roles: list[str]) -> "CouncilResults":
        return CouncilResults(self._runner, self.deliberation_id, roles)

    def release(self, timeout_s: float | None = None) -> int | None:
        """Drops this owner's councils, cancelling those still running. Waits up to timeout_s for how many
        were released; without a timeout it only sends the request."""
        released: ray.ObjectRef = self._runner.release.remote(self.deliberation_id, self.owner)
        return None if timeout_s is None else _ray_call(released, timeout_s)

    def collect(self, roles: list[str]) -> list[CouncilResult]:
        """Waits for every council and releases them: the results of the roles that had a council."""
        try:
            outcomes = self.results(roles).wait_all()
        finally:
            self.release()
        return [outcome for outcome in outcomes.values() if isinstance(outcome, CouncilResult)]


class CouncilResults:
    """The councils' results as they come in. A council that finished stays on the runner until released,
    so a caller that died while waiting (a resumed run) can ask again."""

    def __init__(self, runner: ActorHandle, deliberation_id: str, roles: list[str]):
        self._pending: dict[ray.ObjectRef, str] = {runner.result.remote(deliberation_id, role): role for role in roles}

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
                outcomes[role] = ray.get(ref) or LostCouncil("the council was never started")
            except ray.exceptions.RayError as exc:
                outcomes[role] = LostCouncil(f"the council was lost on Ray: {type(exc).__name__}", str(exc))
        return outcomes

    def wait_all(self) -> dict[str, CouncilResult | LostCouncil]:
        outcomes: dict[str, CouncilResult | LostCouncil] = {}
        while self._pending:
            outcomes |= self.ready(timeout_s=60.0)
        return outcomes
