"""One agent call has one time budget, retries included, whatever the server does with the connection."""

import asyncio

import pytest

from fleet_dagster.core.records import ChatRequest
from fleet_dagster.llm.endpoint import LLMEndpoint
from fleet_dagster.llm.openai_chat import OpenAIChatModel

pytestmark = pytest.mark.integration

AGENT = "agent-dev-001"
BUDGET_S = 1.0


def budgeted_call(base_url: str, stream: bool = False):
    model = OpenAIChatModel(LLMEndpoint(base_url=base_url, max_retries=2, stream=stream))
    request = ChatRequest(
        deliberation_id="d",
        agent_id=AGENT,
        role="DEV",
        phase="propose",
        round=0,
        model="sim-model",
        messages=[{"role": "user", "content": "Design a cache"}],
        temperature=0.5,
        max_tokens=64,
        seed=1,
        timeout_s=BUDGET_S,
    )
    return asyncio.run(model.complete(request))


def assert_cut_at_the_budget(result) -> None:
    assert not result.ok and result.error == f"timed out after {BUDGET_S:.1f}s"
    # Generous on purpose (a busy machine): the bug it guards against is 3 attempts, 3x the budget.
    assert result.latency_ms < 2 * BUDGET_S * 1000


def test_a_hanging_server_is_not_retried_past_the_budget(sim_llm_factory):
    server = sim_llm_factory(latency_s=0.0, hang_s=10.0, faults={AGENT: ["hang"]})
    result = budgeted_call(server.base_url)
    assert_cut_at_the_budget(result)
    assert server.requests_by_agent == {AGENT: 1}  # the budget was spent on the first attempt


def test_a_trickling_body_is_cut_at_the_budget(sim_llm_factory):
    # One byte every 50 ms: no single read times out, the whole body would take several seconds.
    server = sim_llm_factory(latency_s=0.0, trickle_byte_s=0.05, faults={AGENT: ["trickle"]})
    assert_cut_at_the_budget(budgeted_call(server.base_url))


def test_a_slow_stream_is_cut_at_the_budget(sim_llm_factory):
    # "slow" streams at 10x per_token_s: 0.5 s a token, 20 tokens.
    server = sim_llm_factory(latency_s=0.0, per_token_s=0.05, output_tokens=20, faults={AGENT: ["slow"]})
    assert_cut_at_the_budget(budgeted_call(server.base_url, stream=True))


def test_retries_of_transient_errors_stay_within_the_budget(sim_llm_factory):
    server = sim_llm_factory(latency_s=0.0, faults={AGENT: ["503", "ok"]})
    result = budgeted_call(server.base_url)
    assert result.ok and server.requests_by_agent == {AGENT: 2}
