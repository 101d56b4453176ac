"""The simulated vLLM over real HTTP: latency model, queueing, streaming and faults."""

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from fleet_dagster.core.records import ChatRequest
from fleet_dagster.llm.endpoint import LLMEndpoint
from fleet_dagster.llm.openai_chat import OpenAIChatModel
from fleet_dagster.sim_llm.server import FaultRates

pytestmark = pytest.mark.integration


def chat(server, model="sim-model", **kwargs):
    client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0, timeout=10)
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Design a cache"}], **kwargs
    )


def request(model: str = "sim-model", **fields) -> ChatRequest:
    """An agent's call to the simulated server; any field may be given instead."""
    values = {
        "deliberation_id": "d",
        "agent_id": "agent-dev-001",
        "role": "DEV",
        "phase": "propose",
        "round": 0,
        "model": model,
        "messages": [{"role": "user", "content": "Design a cache"}],
        "temperature": 0.5,
        "max_tokens": 64,
        "seed": 1,
        "timeout_s": 5,
    }
    return ChatRequest.model_validate(values | fields)


def test_models_health_and_deterministic_text_of_the_requested_length(sim_llm_factory):
    server = sim_llm_factory(latency_s=0.01, output_tokens=20)
    client = openai.OpenAI(base_url=server.base_url, api_key="x")
    assert client.models.list().data[0].id == "sim-model"
    first, again = chat(server, max_tokens=50, seed=3), chat(server, max_tokens=50, seed=3)
    assert first.choices[0].message.content == again.choices[0].message.content
    assert first.usage.completion_tokens == 20 == len(first.choices[0].message.content.split(" "))
    assert chat(server, max_tokens=8, seed=3).usage.completion_tokens == 8


def test_requests_beyond_capacity_wait_for_a_slot(sim_llm_factory):
    server = sim_llm_factory(latency_s=0.2, capacity=2)
    started = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: chat(server, max_tokens=4), range(4)))
    assert time.perf_counter() - started >= 0.4  # two waves of two: the queue held two requests back
    assert server.load.utilization() > 0.5


def test_streaming_reports_time_to_first_token_and_usage(sim_llm_factory):
    server = sim_llm_factory(latency_s=0.05, per_token_s=0.01, output_tokens=10)
    model = OpenAIChatModel(LLMEndpoint(base_url=server.base_url, stream=True))
    result = asyncio.run(model.complete(request()))
    assert result.ok and result.completion_tokens == 10 and len(result.content.split(" ")) == 10
    assert result.first_token_ms is not None and result.first_token_ms < result.latency_ms


def test_faults_per_model_and_malformed_bodies(sim_llm_factory):
    server = sim_llm_factory(
        latency_s=0.01,
        model_faults={"flaky": FaultRates(error_rate=1.0, error_codes=(429, 503))},
        faults={"agent-dev-001": ["garbage"]},
    )
    codes = set()
    for _ in range(2):
        with pytest.raises(openai.APIStatusError) as caught:
            chat(server, model="flaky")
        codes.add(caught.value.status_code)
    assert codes == {429, 503}
    chat(server, model="sim-model")  # other models are healthy
    model = OpenAIChatModel(LLMEndpoint(base_url=server.base_url, max_retries=0))
    result = asyncio.run(model.complete(request()))
    assert not result.ok and "malformed" in result.error


def test_a_run_wide_error_rate_is_seeded(sim_llm_factory):
    def failures(seed: int) -> list[bool]:
        server = sim_llm_factory(latency_s=0.0, seed=seed, run_faults=FaultRates(error_rate=0.5))
        outcome = []
        for _ in range(20):
            try:
                chat(server)
                outcome.append(False)
            except openai.InternalServerError:
                outcome.append(True)
        return outcome

    assert failures(1) == failures(1) and 3 <= sum(failures(1)) <= 17


def test_each_model_can_have_its_own_server(sim_llm_factory):
    small, large = sim_llm_factory(model="small"), sim_llm_factory(model="large")
    endpoint = LLMEndpoint(base_url=small.base_url, model_urls={"big-model": large.base_url})
    model = OpenAIChatModel(endpoint)
    asyncio.run(model.complete(request(model="big-model")))  # the request's model picks the server
    asyncio.run(model.complete(request()))
    assert large.requests_by_agent == {"agent-dev-001": 1} and small.requests_by_agent == {"agent-dev-001": 1}
