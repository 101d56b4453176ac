"""The model-backend seam: an endpoint's declared protocol picks its backend, and the Anthropic messages backend
speaks that protocol to the simulated server (x-api-key, the system prompt beside the messages, content blocks,
named stream events, count_tokens, its errors)."""

import asyncio

import pytest

from fleet_dagster.core.records import ChatRequest
from fleet_dagster.core.request import parse_request
from fleet_dagster.core.status import DeliberationStatus, final_status
from fleet_dagster.llm.anthropic_messages import AnthropicMessagesModel
from fleet_dagster.llm.backends import chat_backend
from fleet_dagster.llm.endpoint import LLMEndpoint
from fleet_dagster.llm.guarded_calls import GuardedCalls
from fleet_dagster.llm.openai_chat import OpenAIChatModel
from fleet_dagster.llm.preflight import check_models, model_listing
from fleet_dagster.llm.tokenizer import server_root
from fleet_dagster.ray_cluster.deliberate import deliberate_on_ray
from fleet_dagster.sim_llm.server import prompt_tokens
from tests.integration.test_sim_llm import request as sim_request

pytestmark = pytest.mark.integration

KEY = "sk-ant-test"
MESSAGES = [{"role": "system", "content": "You are a DEV."}, {"role": "user", "content": "Design a cache for 3 users"}]


def request(agent: str = "agent-dev-001") -> ChatRequest:
    """With a system prompt: the messages wire carries it apart from the messages."""
    return sim_request(agent_id=agent, messages=MESSAGES, temperature=0.7)


def anthropic_endpoint(server, **fields) -> LLMEndpoint:
    return LLMEndpoint(base_url=server_root(server.base_url), api="anthropic", api_key=KEY, **fields)


def test_each_protocol_has_its_backend():
    assert isinstance(chat_backend(LLMEndpoint(base_url="http://vllm:8000/v1")), OpenAIChatModel)
    assert isinstance(chat_backend(LLMEndpoint(base_url="https://llm", api="anthropic")), AnthropicMessagesModel)


@pytest.mark.parametrize("stream", [False, True], ids=["answered", "streamed"])
def test_the_anthropic_backend_speaks_messages(sim_llm_factory, stream):
    server = sim_llm_factory(latency_s=0.02, per_token_s=0.005, output_tokens=12, api_key=KEY)
    model = AnthropicMessagesModel(anthropic_endpoint(server, stream=stream))

    async def calls():  # one event loop: a client's connections belong to the loop that opened them
        return (
            await model.complete(request()),
            await model.prompt_tokens(request()),
            await model.complete(request(agent="agent-dev-002")),
        )

    result, counted, other = asyncio.run(calls())
    assert result.ok and result.model == "sim-model" and len(result.content.split(" ")) == 12
    assert (result.prompt_tokens, result.completion_tokens) == (prompt_tokens(MESSAGES), 12)
    assert (result.first_token_ms is not None) == stream
    assert counted == prompt_tokens(MESSAGES)  # the server's count of the same prompt, the system prompt included
    assert other.content != result.content  # without a seed, the server samples differently per agent
    assert len(server.authorizations) == 3 and all(KEY in header for header in server.authorizations)


def test_anthropic_errors_are_results_and_server_faults_trip_the_circuit(sim_llm_factory):
    server = sim_llm_factory(latency_s=0.01, faults={"agent-dev-001": ["500", "429"]}, api_key=KEY)
    model = AnthropicMessagesModel(anthropic_endpoint(server, max_retries=0))

    async def calls():
        return await model.complete(request()), await model.complete(request())

    fault, limited = asyncio.run(calls())
    assert fault.error == "HTTP 500: injected HTTP 500" and fault.endpoint_fault
    assert limited.error == "HTTP 429: injected HTTP 429" and not limited.endpoint_fault
    wrong_key = AnthropicMessagesModel(LLMEndpoint(base_url=server_root(server.base_url), api="anthropic"))
    assert asyncio.run(wrong_key.complete(request())).error == "HTTP 401: invalid API key"


def test_guarded_calls_send_a_call_through_the_endpoints_backend(sim_llm_factory):
    server = sim_llm_factory(latency_s=0.01, output_tokens=5, api_key=KEY)
    seen: list[str] = []
    calls = GuardedCalls(chat_backend, store=None, on_result=lambda url, result: seen.append(url))
    result = asyncio.run(calls.complete(anthropic_endpoint(server), request()))
    assert result.ok and len(server.authorizations) == 1 and KEY in server.authorizations[0]
    assert seen == [server_root(server.base_url)]


def test_preflight_lists_an_anthropic_servers_models(sim_llm_factory):
    server = sim_llm_factory(latency_s=0.01, api_key=KEY)
    endpoint = anthropic_endpoint(server)
    checked = check_models(endpoint, {"DEV": ["sim-model"]}, model_listing(endpoint))
    assert checked.model_override is None and not checked.notes
    unserved = endpoint.model_copy(update={"model_override": "claude-x"})
    with pytest.raises(ValueError, match="model 'claude-x' is not served"):
        check_models(unserved, {"DEV": ["sim-model"]}, model_listing(unserved))


def test_a_deliberation_on_ray_through_an_anthropic_endpoint(ray_connected, sim_llm_factory):
    """The whole path: the council runner's pool prepares each call, the agent caller picks the endpoint's
    backend, and every call of the deliberation speaks messages to the server."""
    server = sim_llm_factory(latency_s=0.02, output_tokens=30, api_key=KEY)
    request_ = parse_request(
        {
            "task": "Design a cache",
            "roles": ["DEV", "QA"],
            "agents_per_role": 2,
            "rounds": 1,
            "deliberation_id": "msg-1",
        }
    )
    councils = deliberate_on_ray(request_, anthropic_endpoint(server, structured_output=False), call_timeout_s=10)
    assert final_status(request_.roles, councils) is DeliberationStatus.COMPLETED
    calls = [call for council in councils for call in council.calls]
    assert len(calls) == 2 * (2 + 2 + 2) and all(call.ok and call.tokens > 0 for call in calls)
    assert len(server.authorizations) >= len(calls) and all(KEY in header for header in server.authorizations)
    assert server.chat_requests_by_path == {"/v1/messages": len(calls)} and len(server.answered) == len(calls)
