"""Prompts a serving engine can reuse: what a council's calls share (system prompt, task, requirements, rubric and
the phase's instructions) comes first, byte for byte alike, so that vLLM's prefix cache computes it once; what
differs per agent (its id, the proposal under review, its own proposal and its reviews) comes after it. Every call
names its deliberation in a session header, for routers that keep a session on one replica."""

import asyncio
import os

import pytest

from fleet_dagster.core.council import run_council
from fleet_dagster.core.profiles import load_profile
from fleet_dagster.core.records import ChatRequest, ChatResult, Phase
from fleet_dagster.core.request import agent_id
from fleet_dagster.llm.anthropic_messages import AnthropicMessagesModel
from fleet_dagster.llm.endpoint import LLMEndpoint
from fleet_dagster.llm.openai_chat import OpenAIChatModel
from fleet_dagster.llm.prepared_call import SESSION_HEADER
from fleet_dagster.llm.tokenizer import server_root
from tests.integration.test_sim_llm import request as sim_request
from tests.unit.test_council import ScriptedModel, make

REQUIREMENTS = ["Limit each API key to 100 requests per minute", "Answer HTTP 429 with Retry-After"]
RUBRIC = "Name the algorithm and the data it keeps per key."
TEXT_TASK = {"requirements": REQUIREMENTS, "rubric": RUBRIC}
CODE_TASK = {"requirements": REQUIREMENTS, "entry_point": "limit"}  # DEV writes the solution
# Each agent's proposal, and its revision: texts of their own (no agent id in them, which reviews redact).
PROPOSALS = {agent_id("DEV", 0): "A token bucket", agent_id("DEV", 1): "A sliding log", agent_id("DEV", 2): "A ring"}


class DistinctProposals(ScriptedModel):
    async def complete(self, request: ChatRequest) -> ChatResult:
        result = await super().complete(request)
        if request.phase in ("propose", "revise"):
            return result.model_copy(update={"content": f"{PROPOSALS[request.agent_id]} ({request.phase})"})
        return result


def council_calls(**fields) -> list[ChatRequest]:
    model = DistinctProposals()
    asyncio.run(run_council(make(model, **fields)))
    return model.requests


def prompt(request: ChatRequest) -> str:
    """The messages in order, as a chat template lays them out (role markers aside)."""
    return "\n".join(message["content"] for message in request.messages)


def shared_prefix(requests: list[ChatRequest]) -> str:
    return os.path.commonprefix([prompt(request) for request in requests])


def council_text(phase: Phase, code: bool) -> list[str]:
    """What every call of the phase holds alike: the system prompt, the task and requirements (a code revision
    shows the task alone, beside its run against the tests), and the rubric the phase has (the request's when
    proposing text, the role's criteria and the answer's form when reviewing), and the phase's instructions."""
    profile = load_profile("DEV")
    system = profile.code_system_prompt if code and phase != "review" else profile.system_prompt
    texts = [system or "", "Design a rate limiter", *([] if code and phase == "revise" else REQUIREMENTS)]
    if phase == "propose" and not code:
        texts += [RUBRIC, "Be specific."]
    if phase == "review":
        texts += [f'"{criterion}": <integer 1-10>' for criterion in profile.rubric] + ['"suggestions": ["..."]}']
    if phase == "revise" and not code:
        texts.append("Answer with the full revised proposal only.")
    return texts


def agent_text(request: ChatRequest) -> list[str]:
    """What only this call holds: the agent's id, and the proposals it reviews or revises."""
    text = prompt(request)
    return [own for own in [request.agent_id, *PROPOSALS.values()] if own in text]


@pytest.mark.parametrize("phase", ["propose", "review", "revise"])
@pytest.mark.parametrize("fields", [TEXT_TASK, CODE_TASK], ids=["text", "code"])
def test_a_councils_calls_of_a_phase_share_the_council_text_first_and_the_agent_text_after(phase, fields):
    code = "entry_point" in fields
    of_phase = [request for request in council_calls(**fields) if request.phase == phase]
    assert len(of_phase) == 3
    shared = shared_prefix(of_phase)
    council = council_text(phase, code)
    for text in council:
        assert text in shared, (text, shared)
    council_end = max(shared.index(text) + len(text) for text in council)
    for request in of_phase:
        owns = agent_text(request)
        assert owns or (code and phase == "propose")  # a solution's prompt is the same for every agent
        for own in owns:
            assert prompt(request).index(own) >= council_end, (own, prompt(request))


def test_every_text_call_of_a_council_begins_with_the_system_prompt_task_and_requirements():
    """Across phases too: a review or a revision reads the blocks its council's proposals filled."""
    calls = council_calls(**TEXT_TASK)
    assert {request.phase for request in calls} == {"propose", "review", "revise"}
    shared = shared_prefix(calls)
    assert shared.startswith(load_profile("DEV").system_prompt)
    assert all(text in shared for text in ["Design a rate limiter", *REQUIREMENTS]), shared


@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_every_call_carries_its_deliberations_session_key(sim_llm_factory, api):
    """Seen where it arrives: the simulated server keeps each chat request's headers."""
    server = sim_llm_factory(latency_s=0.0, api_key="sk-test")
    url = server.base_url if api == "openai" else server_root(server.base_url)
    endpoint = LLMEndpoint(base_url=url, api=api, api_key="sk-test")
    model = OpenAIChatModel(endpoint) if api == "openai" else AnthropicMessagesModel(endpoint)
    sent = [("delib-1", "agent-dev-001"), ("delib-1", "agent-qa-002"), ("delib-2", "agent-dev-001")]

    async def calls() -> list[ChatResult]:  # one event loop: a client's connections belong to it
        return [await model.complete(sim_request(deliberation_id=d, agent_id=a)) for d, a in sent]

    assert all(result.ok for result in asyncio.run(calls()))
    received = [{name.lower(): value for name, value in headers.items()} for headers in server.chat_headers]
    assert [headers.get(SESSION_HEADER.lower()) for headers in received] == [d for d, _ in sent]
    assert not any("sk-test" in value for headers in received for value in headers.values())
