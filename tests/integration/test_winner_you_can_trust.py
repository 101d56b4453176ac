"""Form flags, votes, the token budget, early stop and blind judging through Dagster and Ray, with the simulated
server told what each agent answers (its reviews stay random JSON scores: peers that judge blindly by chance)."""

import json
import re

import jsonschema
import pytest

from fleet_dagster.cli.run_deliberation import execute_deliberation
from fleet_dagster.core.request import parse_request
from fleet_dagster.nats_bridge.event_builders import FINAL_EVENT_METADATA_KEY
from fleet_dagster.nats_bridge.schemas import schema_for_subject
from fleet_dagster.ray_cluster.actors import runner_index
from tests.integration.test_deliberation_on_ray import materialization_metadata

pytestmark = pytest.mark.integration

TASK = "Design a rate limiter for the public API gateway. It must survive a restart of any replica."
SOUND = (
    "A token bucket per client key, kept in Redis with a Lua script so that every gateway replica shares it. "
    "A restarted replica reads the buckets back, so no client gets a fresh allowance."
)
SUM_TASK = "A queue holds 3 jobs and 4 more arrive. How many jobs wait? End with a line 'Answer: <number>'."


def said(answer: int, agent: int) -> str:
    return f"Agent {agent} counted the jobs one by one and checked the count twice.\nAnswer: {answer}"


def test_a_degenerate_proposal_never_wins_and_judging_is_blind(ray_head, instance, sim_llm_factory, deploy_llm):
    server = sim_llm_factory(
        latency_s=0.02,
        answers={
            "agent-dev-001": [f"<<< {TASK} {TASK} {TASK} {TASK}"],  # the winner: the task, four times
            "agent-dev-002": ["QA QA Agent, " * 60],  # the loop
            "agent-dev-003": [SOUND],
        },
    )
    deploy_llm(server)
    request = parse_request({"task": TASK, "roles": ["DEV"], "agents_per_role": 3, "deliberation_id": "form-first"})
    document = execute_deliberation(instance, request)

    assert document["status"] == "COMPLETED", document["error_message"]
    assert document["winners"]["DEV"]["agent_id"] == "agent-dev-003"
    rows = {row["agent_id"]: row for row in document["results"]}
    assert any(flag.startswith("echo:") for flag in rows["agent-dev-001"]["flags"])
    assert rows["agent-dev-001"]["coverage"] == 0.0  # copying the task earns nothing
    assert rows["agent-dev-002"]["flags"][0].startswith("loop:")
    assert rows["agent-dev-003"]["flags"] == []
    assert document["flagged_proposals"] == 2
    metadata = materialization_metadata(instance, "form-first")
    assert "2 flagged proposals set aside" in metadata["winners"]["DEV"]["rationale"]

    review_prompts = [
        "\n".join(m["content"] for m in json.loads(fingerprint)["messages"])
        for fingerprint in server.answered
        if "Proposal under review" in fingerprint
    ]
    assert len(review_prompts) == 3
    for prompt in review_prompts:  # only the reviewer's own id: never the author's
        assert len(set(re.findall(r"agent-dev-00\d", prompt))) == 1, prompt


def test_vote_on_the_final_answer_in_metadata_and_status(ray_head, instance, sim_llm_factory, deploy_llm):
    server = sim_llm_factory(
        latency_s=0.02,
        answers={"agent-dev-001": [said(7, 1)], "agent-dev-002": [said(9, 2)], "agent-dev-003": [said(7, 3)]},
    )
    deploy_llm(server)
    request = parse_request(
        {"task": SUM_TASK, "roles": ["DEV"], "agents_per_role": 3, "selection": "vote", "deliberation_id": "vote-7"}
    )
    document = execute_deliberation(instance, request)

    assert document["status"] == "COMPLETED", document["error_message"]
    winner = document["winners"]["DEV"]
    assert winner["answer"] == "7" and winner["votes"] == {"7": 2, "9": 1}
    assert winner["agent_id"] in {"agent-dev-001", "agent-dev-003"}
    assert materialization_metadata(instance, "vote-7")["winners"]["DEV"]["decided_by"] == "vote"


def test_a_vote_without_answers_says_it_fell_back_in_status_and_final_event(
    ray_head, instance, sim_llm_factory, deploy_llm
):
    server = sim_llm_factory(latency_s=0.02, answers={f"agent-dev-00{i}": [SOUND] for i in (1, 2, 3)})
    deploy_llm(server)
    request = parse_request(
        {"task": TASK, "roles": ["DEV"], "agents_per_role": 3, "selection": "vote", "deliberation_id": "no-vote"}
    )
    document = execute_deliberation(instance, request)

    assert document["status"] == "COMPLETED", document["error_message"]
    said_by = {
        "selection": "vote",
        "decided_by": "score",
        "fallback_reason": "no proposal states a final answer",
    }
    assert document["winners"]["DEV"].items() >= said_by.items(), document["winners"]
    final = materialization_metadata(instance, "no-vote")[FINAL_EVENT_METADATA_KEY]
    assert final["event"]["winners"]["DEV"].items() >= said_by.items(), final
    jsonschema.validate(final["event"], schema_for_subject(final["subject"]))


def test_agents_that_agree_stop_early(ray_head, instance, sim_llm_factory, deploy_llm):
    server = sim_llm_factory(latency_s=0.02, answers={f"agent-dev-00{i}": [said(7, i)] for i in (1, 2, 3)})
    deploy_llm(server)
    request = parse_request(
        {"task": SUM_TASK, "roles": ["DEV"], "agents_per_role": 3, "rounds": 2, "deliberation_id": "agreed"}
    )
    document = execute_deliberation(instance, request)

    assert document["status"] == "COMPLETED", document["error_message"]
    assert document["early_stops"]["DEV"]["calls_saved"] == 2 * (3 + 3)
    assert "agree on the final answer '7'" in document["early_stops"]["DEV"]["reason"]
    assert server.requests_by_agent == dict.fromkeys(("agent-dev-001", "agent-dev-002", "agent-dev-003"), 1)


def test_the_token_budget_holds_across_roles_on_two_runners(ray_head, instance, sim_llm_factory, deploy_llm):
    deliberation_id = next(
        f"budget-{n}" for n in range(100) if runner_index(f"budget-{n}", "DEV") != runner_index(f"budget-{n}", "QA")
    )
    server = sim_llm_factory(latency_s=0.02)
    deploy_llm(server)
    # Whatever the order the two councils' calls come in, at least 4 of the 6 proposals fit (each holds its
    # prompt and 768 tokens until answered: about 1,000, 1,300 where the tokenizer is not asked), so both roles
    # have one; and not every call fits: the 30 calls use 6,400 tokens (measured without a budget), so even one
    # call at a time the last ones find no room. Under 6,400 total the outcome would hang on timing.
    budget = 5500
    request = parse_request(
        {
            "task": TASK,
            "roles": ["DEV", "QA"],
            "agents_per_role": 3,
            "rounds": 2,
            "max_total_tokens": budget,
            "deliberation_id": deliberation_id,
        }
    )
    document = execute_deliberation(instance, request)

    assert document["status"] == "PARTIAL", document["error_message"]
    spent = document["budget"]
    assert spent["max_total_tokens"] == budget and spent["exhausted"] and spent["calls_not_made"] > 0
    assert 0 < spent["total_tokens"] <= budget
    assert set(document["winners"]) == {"DEV", "QA"}  # what finished is kept and scored
    assert len(server.answered) + spent["calls_not_made"] == 2 * 3 * (1 + 2 * 2)
