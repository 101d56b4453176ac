"""The fleet against a real vLLM OpenAI server: what the simulated server stands in for elsewhere."""

import json
import os
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest
import requests

from fleet_dagster.benchmarks.runner import run_suite
from fleet_dagster.cli.run_deliberation import execute_deliberation
from fleet_dagster.core.request import agent_id, parse_request
from fleet_dagster.llm.preflight import PreflightError, preflight
from fleet_dagster.llm.resources import LLMResource
from fleet_dagster.llm.settings import LLM_ENV
from tests import nats_helpers
from tests.cli_helpers import fleet_dagster
from tests.helm_chart import named, render
from tests.vllm.conftest import API_KEY, API_KEY_ENV, MAX_MODEL_LEN, SECOND_NAME, SERVED_NAME

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

pytestmark = pytest.mark.vllm


@pytest.fixture
def on_vllm(vllm_server, monkeypatch):
    """This process's deployment is the vLLM server and its key; no model override: it serves one model."""
    monkeypatch.setenv(LLM_ENV["base_url"], vllm_server.base_url)
    monkeypatch.setenv(LLM_ENV["api_key"], API_KEY)
    monkeypatch.delenv(LLM_ENV["model_override"], raising=False)
    monkeypatch.delenv(LLM_ENV["model_urls"], raising=False)
    return vllm_server


@pytest.fixture
def on_two_vllm_servers(vllm_servers, on_vllm, monkeypatch):
    """The deployment routes by model name: each served model's calls go to its own server."""
    monkeypatch.setenv(LLM_ENV["model_urls"], json.dumps({server.name: server.base_url for server in vllm_servers}))
    return vllm_servers


# The wiring is under test, not the CPU's speed: on an AVX2-only CPU (no oneDNN linear) six review calls queued at
# the server took over the default 120 s each, so a call may take most of the test's time.
CALL_TIMEOUT_S = 480.0


def deliberate(instance, deliberation_id: str, **fields) -> dict:
    fields = {"task": "Design a cache for a REST API", "roles": ["DEV"], "agents_per_role": 2, "rounds": 1, **fields}
    request = parse_request({**fields, "deliberation_id": deliberation_id})
    return execute_deliberation(instance, request, llm_config={"call_timeout_s": CALL_TIMEOUT_S})


@pytest.mark.parametrize(
    "fields",
    # The architect is asked only among two or more proposals that could win: three agents, so that one proposal
    # the small model garbles (flagged) still leaves a choice.
    [
        {"review_mode": "ring"},
        {"review_mode": "all", "agents_per_role": 3},
        {"selection": "architect", "agents_per_role": 3},
    ],
    ids=["ring", "all", "architect"],
)
def test_deliberations_complete_with_every_review_parsed(ray_head, instance, on_vllm, fields):
    deliberation_id = f"vllm-{'-'.join(map(str, fields.values()))}"
    document = deliberate(instance, deliberation_id, **fields)
    assert document["status"] == "COMPLETED", document["error_message"]
    rows = document["results"]
    assert rows and all(row["reviews_unparsed"] == 0 for row in rows), rows
    if fields.get("selection") == "architect":
        records = instance.fetch_materializations(dg.AssetKey("deliberation"), limit=1).records
        winners = records[0].asset_materialization.metadata["winners"].value
        assert all(w["decided_by"] == "architect" and w["rationale"] for w in winners.values()), winners


# A council's calls open with what they share (system prompt, task, requirements, rubric, the phase's instructions;
# core/prompts.py): vLLM computes it once and serves it to the other calls from its prefix cache. Measured here (two
# cores, blocks of 32 tokens), this deliberation's prompt tokens served from the cache: 19.0 % (2,880 of 15,143)
# with the agent's id and the proposal before the phase's shared instructions, 29.6 % (4,160 of 14,036) with them
# after. The floor lies between, below the second by a margin for sampling (proposals' lengths vary).
PREFIX_TASK = "Design a rate limiter for the public REST API of a payment service"
PREFIX_REQUIREMENTS = [
    "Limit each API key to 100 requests per minute, with bursts of 20",
    "Answer a limited request with HTTP 429 and a Retry-After header",
    "Keep working when the shared store is unreachable",
]
PREFIX_RUBRIC = "Name the algorithm, the data it stores per key, and how it behaves across several API servers."
PREFIX_CACHE_FLOOR = 0.25


# 27 calls on one CPU server: over 600 s (the suite's limit a test) on an AVX2-only CPU, where decoding falls back to
# torch's linear; the share is under test, not the time.
@pytest.mark.timeout(1500)
def test_a_deliberations_shared_prompt_text_is_served_from_the_prefix_cache(ray_head, instance, on_vllm):
    """3 roles x 3 agents x 1 round: the share of its prompt tokens vLLM found in its prefix cache."""
    (hits_before, queries_before) = on_vllm.prefix_cache_tokens()
    document = deliberate(
        instance,
        "vllm-prefix",
        task=PREFIX_TASK,
        requirements=PREFIX_REQUIREMENTS,
        rubric=PREFIX_RUBRIC,
        roles=["DEV", "QA", "ARCHITECT"],
        agents_per_role=3,
    )
    assert document["status"] == "COMPLETED", document["error_message"]
    (hits_after, queries_after) = on_vllm.prefix_cache_tokens()
    hits, queries = hits_after - hits_before, queries_after - queries_before
    share = hits / queries
    print(f"prefix cache: {hits:.0f} of {queries:.0f} prompt tokens ({share:.1%})")
    assert share > PREFIX_CACHE_FLOOR, (hits, queries)


def test_a_nats_request_end_to_end(nats_server, instance, on_vllm):
    body = {
        "task": "Design a cache",
        "roles": ["DEV"],
        "agents_per_role": 2,
        "rounds": 0,
        "deliberation_id": "vllm-nats",
    }
    nats_helpers.publish_raw(nats_server.url, [json.dumps(body).encode()])
    run_request = nats_helpers.evaluate_request_sensor(nats_server.url, instance, None).run_requests[0]
    outcome = nats_helpers.execute_run_request(instance, run_request)
    assert outcome.success
    completed = nats_helpers.stored_events(nats_server.url, "deliberation.completed")
    assert [e["deliberation_id"] for e in completed] == ["vllm-nats"] and completed[0]["status"] == "COMPLETED"
    assert len(nats_helpers.stored_events(nats_server.url, "agent.response.completed")) == 2


def test_a_mixed_council_calls_each_agents_model_on_its_own_server(nats_server, instance, on_two_vllm_servers):
    """Agent i calls agent_models[i]: each agent's call is answered by its model's server, which names itself in the
    answer and counts the call in its own /metrics. No rounds: a round's reviews and revisions take the same route
    (tests/unit/test_mixed_councils.py), and one round took 127 s here against 51 s without."""
    first, second = on_two_vllm_servers
    assert (first.name, second.name) == (SERVED_NAME, SECOND_NAME)
    finished_before = {server.name: server.requests_finished() for server in on_two_vllm_servers}
    document = deliberate(instance, "vllm-mixed", agent_models=[first.name, second.name], rounds=0)
    assert document["status"] == "COMPLETED", document["error_message"]

    expected = {agent_id("DEV", 0): first.name, agent_id("DEV", 1): second.name}
    assert {row["agent_id"]: row["model"] for row in document["results"]} == expected  # Proposal.model
    calls = nats_helpers.stored_events(nats_server.url, "agent.response.completed")  # AgentCall.model, as answered
    assert not nats_helpers.stored_events(nats_server.url, "agent.response.failed")
    assert {(call["agent_id"], call["model"]) for call in calls} == set(expected.items()), calls
    assert sorted(call["agent_id"] for call in calls) == sorted(expected), calls  # one proposal each
    calls_per_model = Counter(call["model"] for call in calls)
    for server in on_two_vllm_servers:
        finished = server.requests_finished() - finished_before[server.name]
        assert finished >= calls_per_model[server.name] > 0, (server.name, finished, calls_per_model)


def test_preflight_refuses_an_agent_model_no_server_serves(on_two_vllm_servers):
    """A model no server serves is asked of base_url (no model_urls entry names it), which lists what it serves."""
    first, second = on_two_vllm_servers
    fields = {"task": "Design a cache", "roles": ["DEV"], "agents_per_role": 2, "deliberation_id": "vllm-unserved"}
    endpoint = LLMResource().served_endpoint()
    assert endpoint.model_urls == {first.name: first.base_url, second.name: second.base_url}
    served = preflight(endpoint, parse_request({**fields, "agent_models": [first.name, second.name]}))
    assert served.model_override is None and served.context_tokens == {"DEV": MAX_MODEL_LEN}
    with pytest.raises(PreflightError) as refused:
        preflight(endpoint, parse_request({**fields, "agent_models": [first.name, "no-such-model"]}))
    assert refused.value.errors == [
        (
            "agent_models",
            f"agent_models: model 'no-such-model' is not served at {first.base_url}; served: {first.name}",
        )
    ]


def test_the_streaming_speed_suite_measures_time_to_first_token(ray_connected, on_vllm):
    with dg.build_resources({"llm": LLMResource()}) as ready:
        frame, summary = run_suite("speed", ready.llm, limit=1)
    assert summary["failure_rate"] == 0.0, summary["call_errors"]
    assert frame["ttft_p50_ms"].notna().all() and frame["tokens_per_s"].gt(0).all()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)  # the figures, kept for the record
    (ARTIFACTS / "vllm-speed.md").write_text(frame.to_markdown(index=False) + "\n")


def test_an_unserved_model_is_refused_naming_the_served_one(ray_head, vllm_server, dagster_home):
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), LLM_ENV["model_override"]: "Qwen/Qwen2.5-7B-Instruct"}
    env[LLM_ENV["api_key"]] = API_KEY
    done = fleet_dagster("deliberate", "Design a cache", "--role", "DEV", "--llm-url", vllm_server.base_url, env=env)
    assert done.returncode == 2, done.stderr
    assert "'Qwen/Qwen2.5-7B-Instruct' is not served" in done.stderr and f"served: {SERVED_NAME}" in done.stderr


def test_a_prompt_over_the_context_is_refused_with_a_clear_message(ray_head, vllm_server, dagster_home):
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), LLM_ENV["api_key"]: API_KEY}
    env.pop(LLM_ENV["model_override"], None)
    task = "Design a cache for a REST API. " * 120
    done = fleet_dagster("deliberate", task, "--role", "DEV", "--llm-url", vllm_server.base_url, env=env)
    assert done.returncode == 2, done.stderr
    assert f"{MAX_MODEL_LEN}-token context" in done.stderr and "role DEV" in done.stderr


def test_the_key_the_chart_gives_vllm_is_required_and_the_fleets_key_is_accepted(ray_head, vllm_server, helm):
    """vLLM serves with the key in the variable the chart sets; without it /v1 answers 401, with it 200."""
    container = named(render(helm, None), "Deployment", "-vllm-qwen-7b")["spec"]["template"]["spec"]["containers"][0]
    assert API_KEY_ENV in {variable["name"] for variable in container["env"]}
    models = f"{vllm_server.base_url}/models"
    assert requests.get(models, timeout=10).status_code == 401
    assert requests.get(models, headers={"Authorization": "Bearer wrong"}, timeout=10).status_code == 401
    assert requests.get(models, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10).status_code == 200
