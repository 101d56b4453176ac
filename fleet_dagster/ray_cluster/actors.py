"""Long-lived Ray actors shared by every run: they cost a process each, so they are started once.

- `AgentCaller`: agent calls are actor calls on a pool of these (async, many calls in flight each).
- `CouncilRunner`: runs councils as asyncio tasks, so a Dagster step only submits and collects; a few of
  them, each council on the one `runner_index` names. The first (`ADMISSION_RUNNER`) also decides the
  fleet's admission (core/admission.py), counting what every runner runs, and starts the waiting requests
  left with it (held_start.py) as slots free.
- `EmbeddedLLM`: the embedded default's model server, one for the whole cluster.
"""

import asyncio
import contextlib
import itertools
import os
import time
import zlib
from collections.abc import Callable
from typing import Any, NamedTuple

import ray
from ray import ObjectRef
from ray.actor import ActorHandle
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from fleet_dagster import __version__
from fleet_dagster.core.admission import Admission, Admitted
from fleet_dagster.core.budget import bounded_prompt_tokens
from fleet_dagster.core.council import council_for
from fleet_dagster.core.records import AgentCall, ChatRequest, ChatResult, CouncilResult
from fleet_dagster.core.request import DeliberationRequest
from fleet_dagster.llm.backends import chat_backend
from fleet_dagster.llm.embedded import EngineSettings
from fleet_dagster.llm.endpoint import LLMEndpoint
from fleet_dagster.llm.guarded_calls import GuardedCalls
from fleet_dagster.llm.prepared_call import PreparedCall, prepare_call
from fleet_dagster.llm.response_store import replay_document
from fleet_dagster.ray_cluster.council_host import UNRELEASED_TTL_S, CouncilHost
from fleet_dagster.ray_cluster.expiring import Expiring
from fleet_dagster.ray_cluster.held_start import HELD_START_POLL_S, HeldStart
from fleet_dagster.ray_cluster.ledger_store import forget_charges, load_charges, save_charge
from fleet_dagster.ray_cluster.ledgers import Ledgers
from fleet_dagster.ray_cluster.metrics import (
    record_call,
    record_deliberation_finished,
    record_deliberation_started,
    record_endpoint_call,
    record_endpoint_states,
)
from fleet_dagster.ray_cluster.response_stores import response_store_from_env
from fleet_dagster.ray_cluster.sandbox_runs import SandboxRuns

# Two of each: enough to survive one process's death (each is async and holds thousands of calls), few
# enough for a laptop. Every process must agree on them: they route councils and calls.
COUNCIL_RUNNERS = 2
AGENT_CALLERS = 2
ADMISSION_RUNNER = 0
# Detached actors outlive the code that created them: a new release gets new actors.
_SUFFIX = f"v{__version__}"
# Gauges of calls in flight and circuits, as often as Ray exports them (about every 10 s) and then some.
ENDPOINT_STATE_EXPORT_S = 2.0
# Runners and callers ask for the memory their process holds (about 105 MiB idle, measured) because Ray places
# an actor that asks for no resource on a random node, whatever its scheduling strategy (ray-project/ray#25360).
_PLACED_ACTOR_MEMORY = 128 * 2**20
STARTED = "started"


class ActorPlace(NamedTuple):
    """Where an actor runs: its process and node (operators and failover tests ask), and the worker id that labels
    the metrics it records (Ray's `WorkerId`)."""

    pid: int
    node_id: str
    worker_id: str


def actor_place() -> ActorPlace:
    context = ray.get_runtime_context()
    return ActorPlace(os.getpid(), context.get_node_id(), context.get_worker_id())


@ray.remote(num_cpus=0, memory=_PLACED_ACTOR_MEMORY, max_restarts=-1, max_task_retries=2)
class AgentCaller:
    """Makes the cluster's agent calls (see llm/guarded_calls.py); each caller takes its share of every
    endpoint's bound on calls in flight."""

    def __init__(self, caller_count: int) -> None:
        # chat_backend imports a backend's client when first called, in the Ray worker: the run processes that
        # import this module never call a model, and the openai client costs each of them about a second.
        self._calls = GuardedCalls(
            chat_backend,
            response_store_from_env(),
            share=1 / caller_count,
            on_result=lambda url, result: record_endpoint_call(url, result.queue_ms, result.replayed),
        )
        self._state_export: asyncio.Task | None = None

    async def complete(self, endpoint: LLMEndpoint, request: ChatRequest, call: PreparedCall) -> ChatResult:
        if self._state_export is None or self._state_export.done():
            self._state_export = asyncio.create_task(self._export_endpoint_states())
        return await self._calls.complete(endpoint, request, call)

    async def prompt_tokens(self, endpoint: LLMEndpoint, request: ChatRequest) -> int:
        return await self._calls.prompt_tokens(endpoint, request)

    async def _export_endpoint_states(self) -> None:
        while True:
            record_endpoint_states(self._calls.endpoint_states())
            await asyncio.sleep(ENDPOINT_STATE_EXPORT_S)

    async def where(self) -> ActorPlace:
        return actor_place()


class AgentCallerPool:
    """The council's ChatModel: each agent call is an actor call. A call goes to the caller its key picks, so
    the same call asked again (by a council restarted elsewhere) meets the first one there, never a second send."""

    def __init__(self, callers: list[ActorHandle], endpoint: LLMEndpoint):
        self._callers = callers
        self._endpoint = endpoint

    def _caller(self, call: PreparedCall) -> ActorHandle:
        return self._callers[int(call.key[:12], 16) % len(self._callers)]

    async def complete(self, request: ChatRequest) -> ChatResult:
        call = prepare_call(self._endpoint, request)  # once: the caller sends it as it is
        try:
            return await self._caller(call).complete.remote(self._endpoint, request, call)
        except ray.exceptions.RayError as exc:
            return ChatResult(error=f"agent call lost on Ray: {type(exc).__name__}: {str(exc)[:300]}")

    async def prompt_tokens(self, request: ChatRequest) -> int:
        try:
            return await self._caller(prepare_call(self._endpoint, request)).prompt_tokens.remote(
                self._endpoint, request
            )
        except ray.exceptions.RayError:
            return bounded_prompt_tokens(request.messages)


# A ledger answers in microseconds. Its runner restarting (the process died) takes seconds: it is asked again
# until then, which is safe (its calls are idempotent by call key, its charges kept in ledger_store.py); one that
# does not answer in this long refuses.
LEDGER_TIMEOUT_S = 60.0
LEDGER_RETRY_S = 0.2


class RunnerBudget:
    """A deliberation's TokenBudget, kept by one runner (`ledger_index`) for the councils on every runner.
    An unreachable ledger refuses calls: a budget is a promise not to pass it."""

    def __init__(self, ledger: ActorHandle, deliberation_id: str, limit: int) -> None:
        self._ledger = ledger
        self._deliberation_id = deliberation_id
        self._limit = limit

    async def reserve(self, key: str, tokens: int) -> bool:
        def ask() -> ObjectRef:
            return self._ledger.reserve_tokens.remote(self._deliberation_id, self._limit, key, tokens)

        try:
            return await asyncio.wait_for(_until_answered(ask), LEDGER_TIMEOUT_S)
        except Exception:  # noqa: BLE001 - a timeout, a ledger that failed: refuse
            return False

    async def settle(self, key: str, used: int, replayed: bool) -> None:
        attempts = itertools.count()

        def ask() -> ObjectRef:
            # Asked again, as a replay: the runner that died may have kept it, and it must not charge twice.
            again = replayed or next(attempts) > 0
            return self._ledger.settle_tokens.remote(self._deliberation_id, self._limit, key, used, again)

        # Never settled (its runner gone for good), the call's hold stays in the ledger: counted, never freed.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(_until_answered(ask), LEDGER_TIMEOUT_S)


async def _until_answered(ask: Callable[[], ObjectRef]) -> Any:
    """A ledger's answer, asked again while its runner restarts."""
    while True:
        try:
            return await ask()
        except ray.exceptions.RayActorError:
            await asyncio.sleep(LEDGER_RETRY_S)


@ray.remote(num_cpus=0, memory=_PLACED_ACTOR_MEMORY, max_restarts=-1)
class CouncilRunner:
    """Runs the councils that `runner_index` gives it (council_host.py), keeps the token ledgers that
    `ledger_index` gives it (ledgers.py) and counts their deliberations in metrics once. Ray restarts it empty
    when its process dies; the owner of a council it lost starts it again, and the calls that had finished are
    replayed from the store."""

    def __init__(self) -> None:
        self._callers = [agent_caller(i) for i in range(AGENT_CALLERS)]
        self._store = response_store_from_env()
        self._sandbox = SandboxRuns()  # a code task's solutions run on the sandbox nodes, never here
        self._host = CouncilHost()
        self._ledgers = Ledgers(load_charges, save_charge, forget_charges)
        # (deliberation id, "started" or "finished") counted in metrics by this runner (see ledger_index).
        self._counted: Expiring[tuple[str, str], None] = Expiring()
        self._peers: dict[int, ActorHandle] = {}  # the runners by index: finding one asks the GCS about every node
        # Decided here on ADMISSION_RUNNER only, with the starts of waiting requests left here and the last bound.
        self._admission = Admission(clock=time.time)
        self._held: dict[str, HeldStart] = {}
        self._admission_limit = 0
        self._starting_held: asyncio.Task | None = None

    async def start(
        self,
        request: DeliberationRequest,
        role: str,
        deadline_at: float,
        endpoint: LLMEndpoint,
        call_timeout_s: float,
        run_id: str,
        adopt_from: str | None = None,
    ) -> str | None:
        """Starts the council unless it runs already; returns why it was refused, or None (see CouncilHost.claim)."""
        claim = self._host.claim(request.deliberation_id, role, run_id, adopt_from)
        if not claim.to_start:
            return claim.refusal
        if self._store is not None:  # what `fleet-dagster replay` needs; the endpoint without its key
            await self._store.put_deliberation(request.deliberation_id, replay_document(request, endpoint))
        budget = (
            None
            if request.max_total_tokens is None
            else RunnerBudget(
                self._ledger_runner(request.deliberation_id), request.deliberation_id, request.max_total_tokens
            )
        )
        council = council_for(
            request,
            role,
            AgentCallerPool(self._callers, endpoint),
            deadline_at=deadline_at,
            call_timeout_s=call_timeout_s,
            budget=budget,
            on_call=lambda call: record_call(call, endpoint.prices),
            code_runner=self._sandbox,
        )
        self._host.host(request.deliberation_id, role, council, run_id)
        self._ledger_runner(request.deliberation_id).count_deliberation.remote(request.deliberation_id, STARTED)
        return None

    def _ledger_runner(self, deliberation_id: str) -> ActorHandle:
        return self._peer(ledger_index(deliberation_id))

    def _peer(self, index: int) -> ActorHandle:
        if index not in self._peers:
            self._peers[index] = council_runner(index)
        return self._peers[index]

    async def admission_view(self) -> tuple[set[str], set[str]]:
        return self._host.admission_view()

    async def _admission_view_everywhere(self) -> tuple[set[str], set[str]]:
        """(running, hosted) over every runner (see CouncilHost.admission_view)."""
        asked = [self._peer(i).admission_view.remote() for i in range(COUNCIL_RUNNERS)]
        views: list[tuple[set[str], set[str]]] = await asyncio.gather(*asked)
        return set().union(*(running for running, _ in views)), set().union(*(hosted for _, hosted in views))

    async def admit(
        self, asks: list[tuple[str, int]], limit: int, held: dict[str, HeldStart] | None = None
    ) -> Admitted:
        """Fleet admission (ADMISSION_RUNNER only): which of `asks` may start their councils now. Of the `held`
        starts, those that must wait are kept here and started as soon as a slot frees (`_start_held`)."""
        admitted = self._admission.admit(asks, limit, *await self._admission_view_everywhere())
        self._admission_limit = limit
        self._held |= {d: start for d, start in (held or {}).items() if not admitted.admits(d)}
        if self._held and (self._starting_held is None or self._starting_held.done()):
            self._starting_held = asyncio.create_task(self._start_held())
        return admitted

    async def _start_held(self) -> None:
        """While starts are held: each slot that frees goes to the next waiting deliberation in turn (core/admission.py)
        at once; a held one whose turn came starts here. One whose asker stopped asking (its run was cancelled), or
        whose councils its asker started, is let go."""
        while self._held:
            await asyncio.sleep(HELD_START_POLL_S)
            try:
                running, hosted = await self._admission_view_everywhere()
            except ray.exceptions.RayError:
                continue  # a runner restarting: asked again next time
            granted = self._admission.grant_waiting(self._admission_limit, running)
            pending = self._admission.pending()
            self._held = {d: start for d, start in self._held.items() if d in pending and d not in hosted}
            turn = [self._held.pop(d) for d in list(self._held) if d in granted]
            if turn:
                self._admission.started(await self._start_councils(turn))

    async def _start_councils(self, starts: list[HeldStart]) -> list[str]:
        """Starts each one's councils, all at once; the ids whose every council started."""
        answers = {
            start.request.deliberation_id: start_on_runners(
                self._peer,
                start.request,
                start.request.roles,
                time.time() + start.request.deadline_s,
                start.endpoint,
                start.call_timeout_s,
                start.owner,
            )
            for start in starts
        }
        refusals = await asyncio.gather(*(asyncio.gather(*refs, return_exceptions=True) for refs in answers.values()))
        return [d for d, refused in zip(answers, refusals, strict=True) if not any(refused)]

    async def admission_started(self, deliberation_ids: list[str]) -> None:
        self._admission.started(deliberation_ids)

    async def admission_state(self) -> tuple[int, int]:
        """(deliberations admitted, waiting), as ADMISSION_RUNNER counts them."""
        running, _ = await self._admission_view_everywhere()
        return self._admission.state(running)

    async def where(self) -> ActorPlace:
        return actor_place()

    async def progress(self, deliberation_id: str) -> dict[str, dict]:
        return self._host.progress(deliberation_id)

    async def calls_since(self, deliberation_id: str, offsets: dict[str, int]) -> dict[str, list[AgentCall]]:
        return self._host.calls_since(deliberation_id, offsets)

    async def published(self, deliberation_id: str, run_id: str) -> dict[str, int]:
        return self._host.published(deliberation_id, run_id)

    async def mark_published(self, deliberation_id: str, run_id: str, offsets: dict[str, int]) -> None:
        self._host.mark_published(deliberation_id, run_id, offsets)

    async def result(self, deliberation_id: str, role: str) -> CouncilResult | None:
        return await self._host.result(deliberation_id, role)

    async def reserve_tokens(self, deliberation_id: str, limit: int, key: str, tokens: int) -> bool:
        return self._ledgers.reserve(deliberation_id, limit, key, tokens)

    async def settle_tokens(self, deliberation_id: str, limit: int, key: str, used: int, replayed: bool) -> None:
        self._ledgers.settle(deliberation_id, limit, key, used, replayed)

    async def count_deliberation(self, deliberation_id: str, event: str) -> None:
        """Counts a deliberation's start (STARTED) or its end (its status) in metrics, once: each of its councils
        reports its start and owners may collect more than once, all to the runner that keeps its ledger."""
        key = (deliberation_id, STARTED if event == STARTED else "finished")
        if key in self._counted:
            return
        self._counted.prune()
        self._counted.put(key, None, time.time() + UNRELEASED_TTL_S)
        if event == STARTED:
            record_deliberation_started()
        else:
            record_deliberation_finished(event)

    async def release(self, deliberation_id: str, run_id: str | None = None) -> int:
        """Drops the deliberation's councils (those of `run_id` only, when given), cancelling any still running,
        and its token ledger."""
        self._ledgers.release(deliberation_id)
        return self._host.release(deliberation_id, run_id)


@ray.remote(num_cpus=0, max_restarts=-1)
class EmbeddedLLM:
    def __init__(self, slots: int, threads: int | None) -> None:
        from fleet_dagster.llm.embedded import EmbeddedServer

        self._server = EmbeddedServer(slots=slots, threads=threads)

    def base_url(self) -> str:
        return self._server.base_url

    def settings(self) -> EngineSettings:
        return self._server.settings


def _detached(actor_class, name: str, *args, strategy: str | NodeAffinitySchedulingStrategy = "DEFAULT") -> ActorHandle:
    return actor_class.options(
        name=f"{name}-{_SUFFIX}",
        # The namespace this process joined (RayClusterResource, from FLEET_RAY_NAMESPACE); an actor's own is the one
        # of the process that started it, so the runners find the callers and their peers in the same one.
        namespace=ray.get_runtime_context().namespace,
        lifetime="detached",
        get_if_exists=True,
        scheduling_strategy=strategy,  # used when the actor is created, not when it is found
    ).remote(*args)


def _spread(index: int) -> NodeAffinitySchedulingStrategy:
    """The index-th alive node, softly: one node's loss takes one runner and one caller, and Ray restarts
    them elsewhere. Ray's own SPREAD is best effort: it put all four on one node."""
    nodes = sorted(node["NodeID"] for node in ray.nodes() if node["Alive"])
    return NodeAffinitySchedulingStrategy(node_id=nodes[index % len(nodes)], soft=True)


# Found once per connection: finding one asks the cluster for its nodes and the actor (11 ms, measured), and every
# step of a run asks for the runners. A handle outlives its actor's restarts (they never end: max_restarts=-1);
# a new connection (another driver job, another namespace) finds them again.
_found: dict[tuple[str, str, str], ActorHandle] = {}


def _found_once(name: str, find: Callable[[], ActorHandle]) -> ActorHandle:
    context = ray.get_runtime_context()
    key = (context.namespace, context.get_job_id(), name)
    if key not in _found:
        _found[key] = find()
    return _found[key]


def agent_caller(index: int) -> ActorHandle:
    name = f"fleet-agent-caller-{index}"
    return _found_once(name, lambda: _detached(AgentCaller, name, AGENT_CALLERS, strategy=_spread(index)))


def council_runner(index: int) -> ActorHandle:
    name = f"fleet-council-runner-{index}"
    return _found_once(name, lambda: _detached(CouncilRunner, name, strategy=_spread(index)))


def ledger_index(deliberation_id: str) -> int:
    """Which runner keeps a deliberation's token ledger: one for all its councils, wherever they run."""
    return zlib.crc32(f"{deliberation_id}/budget".encode()) % COUNCIL_RUNNERS


def runner_index(deliberation_id: str, role: str) -> int:
    """Which runner runs a council: fixed by id and role, so that every owner finds it (starting stays idempotent)."""
    return zlib.crc32(f"{deliberation_id}/{role}".encode()) % COUNCIL_RUNNERS


def start_on_runners(
    runner: Callable[[int], ActorHandle],
    request: DeliberationRequest,
    roles: list[str],
    deadline_at: float,
    endpoint: LLMEndpoint,
    call_timeout_s: float,
    owner: str,
    adopt_from: str | None = None,
) -> list[ObjectRef]:
    """Each role's council started by its runner (`runner(runner_index(...))`), for `owner`, without waiting:
    each one's answer, its refusal or None (see CouncilRunner.start)."""
    return [
        runner(runner_index(request.deliberation_id, role)).start.remote(
            request, role, deadline_at, endpoint, call_timeout_s, owner, adopt_from
        )
        for role in roles
    ]


def embedded_llm(slots: int, threads: int | None) -> ActorHandle:
    """The cluster's one engine: started with these settings if none runs yet, otherwise the running one,
    whatever its settings (ask it with `settings`): an engine per setting would each hold the cores forever."""
    return _detached(EmbeddedLLM, "fleet-embedded-llm", slots, threads)
