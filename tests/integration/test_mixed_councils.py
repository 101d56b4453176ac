"""A mixed council through the CLI, the launchpad and NATS: one server serving two model names, each agent's calls
reaching its own, its model on its proposal (the UI's proposals table, the status document) and on its events."""

import json
import os

import dagster as dg
import pytest

from fleet_dagster.definitions import defs
from tests import nats_helpers
from tests.cli_helpers import fleet_dagster

pytestmark = pytest.mark.integration

MODELS = ["sim-a", "sim-b"]


@pytest.fixture
def two_models(sim_llm_factory):
    """As vLLM serving two names: any other name is answered with HTTP 404."""
    return sim_llm_factory(latency_s=0.05, model=MODELS[0], models=MODELS[1:], only_model=True)


def models_called(server) -> dict[str, int]:
    called: dict[str, int] = {}
    for fingerprint in server.answered:
        model = json.loads(fingerprint)["model"]
        called[model] = called.get(model, 0) + 1
    return called


def proposals_table_models(result: dg.ExecuteInProcessResult) -> list[str]:
    """The model column of the proposals table the UI shows (markdown), in row order."""
    table = result.asset_materializations_for_node("deliberation")[0].metadata["proposals"].value
    header, _, *rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()]
    return [row[header.index("model")] for row in rows]


def test_the_cli_runs_a_mixed_council_and_refuses_an_unserved_model(ray_head, dagster_home, two_models):
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home)}
    mix = ["--agent-model", "sim-a", "--agent-model", "sim-b", "--llm-url", two_models.base_url]
    done = fleet_dagster("deliberate", "Design a cache", "--role", "DEV", "--agents", "3", *mix, "--json", env=env)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert [p["model"] for p in document["results"]] == ["sim-a", "sim-b", "sim-a"]
    assert document["winners"]["DEV"]["model"] in MODELS
    # propose, review and revise (one round): three calls per agent, each at its agent's model
    assert models_called(two_models) == {"sim-a": 6, "sim-b": 3}

    unserved = ["--agent-model", "sim-a", "--agent-model", "gpt-x", "--llm-url", two_models.base_url]
    refused = fleet_dagster("deliberate", "Design a cache", "--role", "DEV", *unserved, env=env)
    assert refused.returncode == 2
    assert "model 'gpt-x' is not served" in refused.stderr and "served: sim-a, sim-b" in refused.stderr
    assert models_called(two_models) == {"sim-a": 6, "sim-b": 3}  # nothing was called


def test_the_launchpad_runs_a_mixed_council_with_cross_model_reviews(instance, ray_head, two_models, deploy_llm):
    deploy_llm(two_models)
    instance.add_dynamic_partitions("deliberations", ["mix-launchpad"])
    config = {"task": "Design a cache", "roles": ["QA"], "agents_per_role": 2, "rounds": 1}
    mix = {"agent_models": MODELS, "cross_model_reviews": True, "review_mode": "all"}
    result = defs.resolve_job_def("deliberation_job").execute_in_process(
        run_config={"ops": {"deliberation": {"config": {**config, **mix}}}},
        instance=instance,
        partition_key="mix-launchpad",
    )
    assert result.success
    assert proposals_table_models(result) == MODELS
    assert models_called(two_models) == {"sim-a": 3, "sim-b": 3}


def test_a_nats_request_runs_a_mixed_council_and_its_events_name_each_model(
    nats_server, instance, ray_head, two_models, deploy_llm
):
    deploy_llm(two_models)
    body = {"task": "Design a cache", "roles": ["DEV"], "agents_per_role": 2, "rounds": 0, "agent_models": MODELS}
    nats_helpers.publish_raw(nats_server.url, [json.dumps({**body, "deliberation_id": "mix-nats"}).encode()])
    result = nats_helpers.evaluate_request_sensor(nats_server.url, instance, None)
    [run_request] = result.run_requests
    outcome = nats_helpers.execute_run_request(instance, run_request)
    assert outcome.success and proposals_table_models(outcome) == MODELS
    events = nats_helpers.stored_events(nats_server.url, "agent.response.completed")
    assert {(e["agent_id"], e["model"]) for e in events} == {("agent-dev-001", "sim-a"), ("agent-dev-002", "sim-b")}
