"""Long-lived Ray actors shared by every run: they cost a process each, so they are started once.

- `AgentCaller`: agent calls are actor calls on a pool of these (async, many calls in flight each).
- `CouncilRunner`: runs councils as asyncio tasks, so a Dagster step only submits and collects.
- `EmbeddedLLM`: the embedded default's model server, one for the whole cluster.
"""

import asyncio
import itertools
import time

import ray
from ray.actor import ActorHandle

from fleet_dagster import __version__
from fleet_dagster.core.chat_model import ChatModel
from fleet_dagster.core.council import Council, run_council
from fleet_dagster.core.profiles import load_profile
from fleet_dagster.core.records import AgentCall, ChatRequest, ChatResult, CouncilResult
from fleet_dagster.core.request import DeliberationRequest
from fleet_dagster.llm.endpoint import LLMEndpoint

NAMESPACE = "fleet"
UNCOLLECTED_TTL_S = 3600.0
# Detached actors outlive the code that created them: a new release gets new actors.
_SUFFIX = f"v{__version__}"


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=2)
class AgentCaller:
    def __init__(self) -> None:
        self._models: dict[tuple, ChatModel] = {}

    async def complete(self, endpoint: LLMEndpoint, request: ChatRequest) -> ChatResult:
        model = self._models.get(endpoint.cache_key)
        if model is None:
            # Imported here, in the Ray worker: the run processes that import this module never call a
            # model, and the openai client costs each of them about a second of start-up.
            from fleet_dagster.llm.openai_chat import OpenAIChatModel

            model = self._models[endpoint.cache_key] = OpenAIChatModel(endpoint)
        return await model.complete(request)


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


@ray.remote(num_cpus=0, max_restarts=-1)
class CouncilRunner:
    def __init__(self, caller_count: int) -> None:
        self._callers = [agent_caller(i) for i in range(caller_count)]
        self._councils: dict[tuple[str, str], tuple[Council, asyncio.Task]] = {}

    async def start(
        self,
        request: DeliberationRequest,
        role: str,
        deadline_at: float,
        endpoint: LLMEndpoint,
        call_timeout_s: float,
    ) -> None:
        key = (request.deliberation_id, role)
        if key in self._councils:  # a retried step must not start the council twice
            return
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
        self._councils[key] = (council, asyncio.create_task(run_council(council)))

    def _forget_uncollected(self) -> None:
        """Results nobody collected (their run died) are dropped once well past their deadline."""
        now = time.time()
        stale = [
            key
            for key, (council, task) in self._councils.items()
            if task.done() and now > council.deadline_at + UNCOLLECTED_TTL_S
        ]
        for key in stale:
            self._councils.pop(key)

    async def progress(self, deliberation_id: str) -> dict[str, dict]:
        return {
            role: {**council.progress(), "finished": task.done()}
            for (delib, role), (council, task) in self._councils.items()
            if delib == deliberation_id
        }

    async def calls_since(self, deliberation_id: str, offsets: dict[str, int]) -> dict[str, list[AgentCall]]:
        """Each council's calls from number offsets[role] on, in the order the council recorded them."""
        return {
            role: council.calls[offsets.get(role, 0) :]
            for (delib, role), (council, _) in self._councils.items()
            if delib == deliberation_id and len(council.calls) > offsets.get(role, 0)
        }

    async def result(self, deliberation_id: str, role: str) -> CouncilResult | None:
        """Waits for the council. It stays here until `release`, so that a collect step that died while
        waiting (its run resumed on a new pod) can ask again; a cancelled wait never cancels the council."""
        entry = self._councils.get((deliberation_id, role))
        if entry is None:
            return None
        return await asyncio.shield(entry[1])

    async def release(self, deliberation_id: str) -> int:
        """Drops the deliberation's councils once collected, cancelling any still running."""
        keys = [key for key in self._councils if key[0] == deliberation_id]
        for key in keys:
            self._councils.pop(key)[1].cancel()
        return len(keys)


@ray.remote(num_cpus=0, max_restarts=-1)
class EmbeddedLLM:
    def __init__(self, slots: int, threads: int | None) -> None:
        from fleet_dagster.llm.embedded import EmbeddedServer

        self._server = EmbeddedServer(slots=slots, threads=threads)
        self._started = time.time()

    def base_url(self) -> str:
        return self._server.base_url


def _detached(actor_class, name: str, *args) -> ActorHandle:
    return actor_class.options(
        name=f"{name}-{_SUFFIX}", namespace=NAMESPACE, lifetime="detached", get_if_exists=True
    ).remote(*args)


def agent_caller(index: int) -> ActorHandle:
    return _detached(AgentCaller, f"fleet-agent-caller-{index}")


def council_runner(caller_count: int = 1) -> ActorHandle:
    return _detached(CouncilRunner, "fleet-council-runner", caller_count)


def embedded_llm(slots: int, threads: int | None) -> ActorHandle:
    return _detached(EmbeddedLLM, f"fleet-embedded-llm-s{slots}-t{threads or 'auto'}", slots, threads)
