"""Long-lived Ray actors shared by every run: they cost a process each, so they are started once.

- `AgentCaller`: agent calls are actor calls on a pool of these (async, many calls in flight each).
- `CouncilRunner`: runs councils as asyncio tasks, so a Dagster step only submits and collects.
- `EmbeddedLLM`: the embedded default's model server, one for the whole cluster.
"""

import asyncio
import itertools
import time
from dataclasses import dataclass

import ray
from ray.actor import ActorHandle

from fleet_dagster import __version__
from fleet_dagster.core.chat_model import ChatModel
from fleet_dagster.core.council import Council, run_council
from fleet_dagster.core.profiles import load_profile
from fleet_dagster.core.records import AgentCall, ChatRequest, ChatResult, CouncilResult
from fleet_dagster.core.request import DeliberationRequest
from fleet_dagster.llm.embedded import EngineSettings
from fleet_dagster.llm.endpoint import LLMEndpoint, ModelCache

NAMESPACE = "fleet"
UNCOLLECTED_TTL_S = 3600.0
# Detached actors outlive the code that created them: a new release gets new actors.
_SUFFIX = f"v{__version__}"


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=2)
class AgentCaller:
    def __init__(self) -> None:
        self._models = ModelCache(self._openai_model)

    @staticmethod
    def _openai_model(endpoint: LLMEndpoint) -> ChatModel:
        # Imported here, in the Ray worker: the run processes that import this module never call a
        # model, and the openai client costs each of them about a second of start-up.
        from fleet_dagster.llm.openai_chat import OpenAIChatModel

        return OpenAIChatModel(endpoint)

    async def complete(self, endpoint: LLMEndpoint, request: ChatRequest) -> ChatResult:
        return await self._models.get(endpoint).complete(request)


class AgentCallerPool:
    """The council's ChatModel: each agent call is an actor call, spread over the pool."""

    def __init__(self, callers: list[ActorHandle], endpoint: LLMEndpoint):
        self._callers = itertools.cycle(callers)
        self._endpoint = endpoint

    async def complete(self, request: ChatRequest) -> ChatResult:
        try:
            return await next(self._callers).complete.remote(self._endpoint, request)
        except ray.exceptions.RayError as exc:
            return ChatResult(error=f"agent call lost on Ray: {type(exc).__name__}: {str(exc)[:300]}")


@dataclass
class _RunningCouncil:
    council: Council
    task: asyncio.Task
    run_id: str
    published: int = 0  # how many of its calls the owning run has put on NATS (a resumed collect goes on from here)


@ray.remote(num_cpus=0, max_restarts=-1)
class CouncilRunner:
    def __init__(self, caller_count: int) -> None:
        self._callers = [agent_caller(i) for i in range(caller_count)]
        self._councils: dict[tuple[str, str], _RunningCouncil] = {}
        # Runs whose councils were released, and when: a step of such a run that still goes on (Ctrl-C
        # releases while the in-process executor runs) may not start a council that nothing would release.
        self._released_runs: dict[str, float] = {}

    async def start(
        self,
        request: DeliberationRequest,
        role: str,
        deadline_at: float,
        endpoint: LLMEndpoint,
        call_timeout_s: float,
        run_id: str,
    ) -> str | None:
        """Starts the council unless it runs already; returns why it was refused, or None. A retried step or
        a resumed run (the same run) gets its running council; another run may not take it over."""
        if run_id in self._released_runs:
            return f"run {run_id} released its councils (it finished or was cancelled) and starts none again"
        key = (request.deliberation_id, role)
        existing = self._councils.get(key)
        if existing is not None and existing.run_id == run_id:
            return None
        if existing is not None and not existing.task.done():
            return (
                f"deliberation {request.deliberation_id} is already running in run {existing.run_id}; "
                f"one deliberation id runs in one run at a time"
            )
        self._forget_uncollected()
        architect = load_profile("ARCHITECT") if request.selection == "architect" else None
        council = Council(
            request,
            load_profile(role),
            AgentCallerPool(self._callers, endpoint),
            deadline_at=deadline_at,
            call_timeout_s=call_timeout_s,
            architect=architect,
        )
        self._councils[key] = _RunningCouncil(council, asyncio.create_task(run_council(council)), run_id)
        return None

    def _forget_uncollected(self) -> None:
        """Results nobody collected (their run died) are dropped once well past their deadline."""
        now = time.time()
        stale = [
            key
            for key, entry in self._councils.items()
            if entry.task.done() and now > entry.council.deadline_at + UNCOLLECTED_TTL_S
        ]
        for key in stale:
            self._councils.pop(key)

    def _of(self, deliberation_id: str, run_id: str | None = None) -> dict[str, _RunningCouncil]:
        return {
            role: entry
            for (delib, role), entry in self._councils.items()
            if delib == deliberation_id and run_id in (None, entry.run_id)
        }

    async def progress(self, deliberation_id: str) -> dict[str, dict]:
        return {
            role: {**entry.council.progress(), "finished": entry.task.done()}
            for role, entry in self._of(deliberation_id).items()
        }

    async def calls_since(self, deliberation_id: str, offsets: dict[str, int]) -> dict[str, list[AgentCall]]:
        """Each council's calls from number offsets[role] on, in the order the council recorded them."""
        return {
            role: entry.council.calls[offsets.get(role, 0) :]
            for role, entry in self._of(deliberation_id).items()
            if len(entry.council.calls) > offsets.get(role, 0)
        }

    async def published(self, deliberation_id: str, run_id: str) -> dict[str, int]:
        return {role: entry.published for role, entry in self._of(deliberation_id, run_id).items()}

    async def mark_published(self, deliberation_id: str, run_id: str, offsets: dict[str, int]) -> None:
        for role, entry in self._of(deliberation_id, run_id).items():
            entry.published = max(entry.published, offsets.get(role, 0))

    async def result(self, deliberation_id: str, role: str) -> CouncilResult | None:
        """Waits for the council. It stays here until `release`, so that a collect step that died while
        waiting (its run resumed on a new pod) can ask again; a cancelled wait never cancels the council."""
        entry = self._councils.get((deliberation_id, role))
        if entry is None:
            return None
        return await asyncio.shield(entry.task)

    async def release(self, deliberation_id: str, run_id: str | None = None) -> int:
        """Drops the deliberation's councils (those of `run_id` only, when given), cancelling any still running."""
        keys = [(deliberation_id, role) for role in self._of(deliberation_id, run_id)]
        for key in keys:
            self._councils.pop(key).task.cancel()
        if run_id is not None:
            now = time.time()
            self._released_runs = {r: at for r, at in self._released_runs.items() if now < at + UNCOLLECTED_TTL_S}
            self._released_runs[run_id] = now
        return len(keys)


@ray.remote(num_cpus=0, max_restarts=-1)
class EmbeddedLLM:
    def __init__(self, slots: int, threads: int | None) -> None:
        from fleet_dagster.llm.embedded import EmbeddedServer

        self._server = EmbeddedServer(slots=slots, threads=threads)

    def base_url(self) -> str:
        return self._server.base_url

    def settings(self) -> EngineSettings:
        return self._server.settings


def _detached(actor_class, name: str, *args) -> ActorHandle:
    return actor_class.options(
        name=f"{name}-{_SUFFIX}", namespace=NAMESPACE, lifetime="detached", get_if_exists=True
    ).remote(*args)


def agent_caller(index: int) -> ActorHandle:
    return _detached(AgentCaller, f"fleet-agent-caller-{index}")


def council_runner(caller_count: int = 1) -> ActorHandle:
    return _detached(CouncilRunner, "fleet-council-runner", caller_count)


def embedded_llm(slots: int, threads: int | None) -> ActorHandle:
    """The cluster's one engine: started with these settings if none runs yet, otherwise the running one,
    whatever its settings (ask it with `settings`): an engine per setting would each hold the cores forever."""
    return _detached(EmbeddedLLM, "fleet-embedded-llm", slots, threads)
