"""How an agent caller makes calls: from the response store when answered before, each distinct call once at a
time, within the endpoint's bound on calls in flight (fair between deliberations) and behind its circuit."""

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from fleet_dagster.core.records import MIN_CALL_S, ChatRequest, ChatResult
from fleet_dagster.llm.backends import ChatBackend
from fleet_dagster.llm.backpressure import FairLimiter
from fleet_dagster.llm.circuit import CircuitBreaker, CircuitState
from fleet_dagster.llm.endpoint import LLMEndpoint, ModelCache
from fleet_dagster.llm.prepared_call import PreparedCall, prepare_call
from fleet_dagster.llm.response_store import ResponseStore
from fleet_dagster.llm.settings import display_url


@dataclass
class EndpointGuard:
    """One server's bound and circuit, as this caller sees them."""

    limiter: FairLimiter
    breaker: CircuitBreaker


@dataclass(frozen=True)
class EndpointState:
    """What an operator watches of one endpoint, as this caller sees it."""

    in_flight: int
    waiting: int
    circuit: CircuitState


class GuardedCalls:
    """`share` is this caller's part of each endpoint's bound (the cluster's callers split it); `on_result` hears
    of every call's result (from the store too) with the display URL of the server it went to."""

    def __init__(
        self,
        build_backend: Callable[[LLMEndpoint], ChatBackend],
        store: ResponseStore | None,
        share: float = 1.0,
        on_result: Callable[[str, ChatResult], None] | None = None,
    ) -> None:
        self._models = ModelCache(build_backend)
        self._store = store
        self._share = share
        self._on_result = on_result
        self._guards: dict[str, EndpointGuard] = {}
        self._in_flight: dict[str, asyncio.Task[ChatResult]] = {}

    def guard(self, endpoint: LLMEndpoint, base_url: str) -> EndpointGuard:
        limit = max(1, math.ceil(endpoint.max_in_flight * self._share))
        guard = self._guards.get(base_url)
        if guard is None:
            breaker = CircuitBreaker(endpoint.circuit_failures, endpoint.circuit_cooldown_s)
            guard = self._guards[base_url] = EndpointGuard(FairLimiter(limit), breaker)
        else:  # the endpoint's latest settings win
            guard.breaker.threshold, guard.breaker.cooldown_s = endpoint.circuit_failures, endpoint.circuit_cooldown_s
            if guard.limiter.limit != limit:
                guard.limiter.set_limit(limit)
        return guard

    def endpoint_states(self) -> dict[str, EndpointState]:
        """By endpoint, as logs may show it (no credentials)."""
        return {
            display_url(base_url): EndpointState(guard.limiter.in_flight, guard.limiter.waiting, guard.breaker.state)
            for base_url, guard in self._guards.items()
        }

    async def complete(
        self, endpoint: LLMEndpoint, request: ChatRequest, call: PreparedCall | None = None
    ) -> ChatResult:
        """`call`: the request as prepare_call made it already (a caller's pool routes by its key)."""
        call = call or prepare_call(endpoint, request)
        result = await self._answer(endpoint, call, request)
        if self._on_result is not None:
            self._on_result(call.display_url, result)
        return result

    async def _answer(self, endpoint: LLMEndpoint, call: PreparedCall, request: ChatRequest) -> ChatResult:
        # Not `if self._store`: a store's len() counts its rows.
        stored = await self._store.get(call.key) if self._store is not None and request.replay else None
        if stored is not None:
            return stored.model_copy(update={"replayed": True})
        # The same call asked again while it runs (a council restarted on another runner) joins it.
        running = self._in_flight.get(call.key)
        if running is None:
            running = self._in_flight[call.key] = asyncio.create_task(self._call(endpoint, call, request))
            running.add_done_callback(lambda _: self._in_flight.pop(call.key, None))
        # A council cancelled meanwhile leaves the call to finish and be stored: its work is not lost.
        return await asyncio.shield(running)

    async def prompt_tokens(self, endpoint: LLMEndpoint, request: ChatRequest) -> int:
        return await self._models.get(endpoint).prompt_tokens(request)

    async def _call(self, endpoint: LLMEndpoint, call: PreparedCall, request: ChatRequest) -> ChatResult:
        guard = self.guard(endpoint, call.base_url)
        refused = guard.breaker.refusal()
        if refused:
            return ChatResult(error=f"{refused}: {call.display_url}")
        deadline_at = request.deadline_at or time.time() + request.timeout_s
        queued_at = time.time()
        try:
            waited_s = await guard.limiter.acquire(
                request.deliberation_id, deadline_at - time.time() - MIN_CALL_S, request.priority
            )
        except TimeoutError:
            return ChatResult(
                error=f"deadline reached while waiting for a slot at {call.display_url} "
                f"({guard.limiter.limit} calls in flight from this caller, {guard.limiter.waiting} waiting)",
                queue_ms=(time.time() - queued_at) * 1000,
            )
        try:
            result = await self._sent(endpoint, call, guard, request, deadline_at)
        finally:
            guard.limiter.release(request.deliberation_id)
        if self._store is not None:
            await self._store.put(call.key, result)
        return result.model_copy(update={"queue_ms": waited_s * 1000})

    async def _sent(
        self, endpoint: LLMEndpoint, call: PreparedCall, guard: EndpointGuard, request: ChatRequest, deadline_at: float
    ) -> ChatResult:
        refused = guard.breaker.admit()  # it may have opened while this call waited
        if refused:
            return ChatResult(error=f"{refused}: {call.display_url}")
        timeout_s = min(request.timeout_s, deadline_at - time.time())
        try:
            result = await self._models.get(endpoint).send(call, timeout_s)
        except BaseException:
            guard.breaker.abandon()
            raise
        guard.breaker.record(result.endpoint_fault)
        return result
