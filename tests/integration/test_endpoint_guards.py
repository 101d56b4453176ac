"""An agent caller's calls against real HTTP model servers: the bound, the circuit, the store."""

import asyncio
import time
from pathlib import Path

import pytest

from fleet_dagster.core.records import ChatRequest
from fleet_dagster.llm.endpoint import LLMEndpoint
from fleet_dagster.llm.guarded_calls import GuardedCalls
from fleet_dagster.llm.openai_chat import OpenAIChatModel
from fleet_dagster.llm.response_store import ResponseStore, SqliteResponseStore
from fleet_dagster.sim_llm.server import SimLLMServer, SimSettings

pytestmark = pytest.mark.integration


def chat_request(deliberation_id: str, index: int, **changes) -> ChatRequest:
    fields = {
        "deliberation_id": deliberation_id,
        "agent_id": f"agent-dev-{index:03d}",
        "role": "DEV",
        "phase": "propose",
        "round": 0,
        "model": "sim-model",
        "messages": [{"role": "user", "content": f"Design cache number {index} for {deliberation_id}"}],
        "temperature": 0.5,
        "max_tokens": 32,
        "seed": index,
        "timeout_s": 30.0,
        "deadline_at": time.time() + 60,
    }
    return ChatRequest(**{**fields, **changes})


def guarded(store: ResponseStore | None = None) -> GuardedCalls:
    return GuardedCalls(OpenAIChatModel, store)


def test_calls_in_flight_stay_within_the_bound_shared_fairly_with_queue_wait_reported(sim_llm_factory):
    server = sim_llm_factory(latency_s=0.2, capacity=64)
    endpoint = LLMEndpoint(base_url=server.base_url, max_in_flight=3)
    calls = guarded()

    finished: list[str] = []  # which deliberation each call belonged to, in the order the calls ended

    async def call(name: str, index: int):
        result = await calls.complete(endpoint, chat_request(name, index))
        finished.append(name)
        return result

    async def scenario() -> tuple[list, list]:
        big = [asyncio.create_task(call("big", i)) for i in range(15)]
        await asyncio.sleep(0.05)  # every big call has asked for a slot (3 hold one) before the small ones ask
        small = await asyncio.gather(*(call("small", i) for i in range(2)))
        return await asyncio.gather(*big), small

    big, small = asyncio.run(scenario())
    assert all(result.ok for result in [*big, *small])
    assert server.peak_in_flight == 3
    # 15 big calls at 3 at a time take 5 turns; first come first served would serve the small deliberation
    # after all of them (the last two to end): a fair share lets it in at the next free slots, its second turn.
    assert [i for i, name in enumerate(finished) if name == "small"] < [6, 6], finished
    assert max(result.queue_ms for result in big) > 500 and min(result.queue_ms for result in big) == 0


def test_waiting_for_a_slot_counts_against_the_deadline_not_the_call_timeout(sim_llm_factory):
    server = sim_llm_factory(latency_s=0.05, hang_s=5, faults={"agent-dev-000": ["hang"]})
    endpoint = LLMEndpoint(base_url=server.base_url, max_in_flight=1, max_retries=0)
    calls = guarded()

    async def scenario():
        hanging = asyncio.create_task(calls.complete(endpoint, chat_request("d", 0, timeout_s=3)))
        await asyncio.sleep(0.1)  # the hanging call holds the one slot
        waited = await calls.complete(endpoint, chat_request("d", 1, timeout_s=30, deadline_at=time.time() + 0.5))
        slot_still_held = not hanging.done()
        await hanging
        return waited, slot_still_held

    waited, slot_still_held = asyncio.run(scenario())
    assert not waited.ok and "deadline reached while waiting for a slot" in (waited.error or "")
    # It gave up at its deadline while the slot was still taken, not once the other call timed out (3 s).
    assert slot_still_held and waited.queue_ms > 300


def test_a_server_that_goes_down_fails_fast_behind_its_circuit_then_comes_back(sim_llm_factory):
    server = sim_llm_factory(latency_s=0.01)
    host, port = server.server_address[:2]
    base_url = server.base_url
    server.__exit__(None, None, None)  # down: connections refused
    cooldown_s = 2.0
    endpoint = LLMEndpoint(base_url=base_url, max_retries=1, circuit_failures=3, circuit_cooldown_s=cooldown_s)
    calls = guarded()

    async def one(index: int):
        return await calls.complete(endpoint, chat_request("down", index))

    async def scenario():
        failures = [await one(i) for i in range(3)]
        fast = await one(3)
        with SimLLMServer(SimSettings(latency_s=0.01), host=host, port=port) as back:
            refused_while_cooling = await one(4)
            await asyncio.sleep(cooldown_s)  # the cool-down is a time: waiting it out is what is under test
            probe, after = await one(5), await one(6)
            return failures, fast, refused_while_cooling, probe, after, len(back.answered)

    failures, fast, cooling, probe, after, answered = asyncio.run(scenario())
    assert all(not r.ok and "circuit" not in (r.error or "") for r in failures)
    # Refused by the circuit without a connection: the server, back by then, answered neither of these two.
    assert "endpoint unavailable (circuit open after 3 failures in a row" in (fast.error or "")
    assert "circuit open" in (cooling.error or "")  # back up, but the cool-down is not over
    assert probe.ok and after.ok and answered == 2


def test_the_same_call_is_sent_once_and_answered_again_from_the_store(sim_llm_factory, tmp_path: Path):
    server = sim_llm_factory(latency_s=0.2)
    endpoint = LLMEndpoint(base_url=server.base_url)
    store = SqliteResponseStore(tmp_path / "responses.sqlite", ttl_s=3600, max_entries=100)
    calls = guarded(store)

    async def twice_at_once():
        return await asyncio.gather(*(calls.complete(endpoint, chat_request("same", 1)) for _ in range(2)))

    first, joined = asyncio.run(twice_at_once())
    assert first.ok and joined == first and len(server.answered) == 1
    # A new caller (a restarted actor) answers from the shared store, without a call.
    replayed = asyncio.run(guarded(store).complete(endpoint, chat_request("same", 1, agent_id="agent-qa-009")))
    assert replayed.replayed and replayed.content == first.content and len(server.answered) == 1
    assert replayed.completion_tokens == first.completion_tokens


def test_each_models_server_has_its_own_bound_and_circuit(sim_llm_factory):
    """A mixed council's models on servers of their own (model_urls): one server down opens its circuit only, and
    the other's calls keep their own bound on calls in flight."""
    up = sim_llm_factory(latency_s=0.2, model="up-model")
    down = sim_llm_factory(latency_s=0.01, model="down-model")
    down_url = down.base_url
    down.__exit__(None, None, None)  # connections refused
    endpoint = LLMEndpoint(
        base_url=up.base_url, model_urls={"down-model": down_url}, max_in_flight=2, max_retries=0, circuit_failures=2
    )
    calls = guarded()

    async def scenario():
        failed = [await calls.complete(endpoint, chat_request("mix", i, model="down-model")) for i in range(3)]
        answered = await asyncio.gather(
            *(calls.complete(endpoint, chat_request("mix", 10 + i, model="up-model")) for i in range(6))
        )
        return failed, answered

    failed, answered = asyncio.run(scenario())
    assert "circuit open" in (failed[2].error or "") and all(not r.ok for r in failed)
    assert all(r.ok for r in answered) and up.peak_in_flight == 2
    states = calls.endpoint_states()
    assert (states[down_url].circuit, states[up.base_url].circuit) == ("open", "closed")
