"""Which model serves a role, decided once from the deployment's settings, whatever the entry point."""

import json
import os

import pytest

from tests.cli_helpers import fleet_dagster

pytestmark = pytest.mark.integration


@pytest.fixture
def served(sim_llm_factory):
    """A server that, like vLLM, serves one model name and answers 404 for any other."""
    return sim_llm_factory(latency_s=0.05, model="smollm2", only_model=True)


def test_a_url_on_the_command_line_keeps_the_deployments_model(ray_head, served, dagster_home):
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "FLEET_LLM_MODEL": "smollm2"}
    args = ["Design a cache", "--role", "DEV", "--agents", "2", "--rounds", "0", "--id", "model-kept", "--json"]
    done = fleet_dagster("deliberate", *args, "--llm-url", served.base_url, env=env)

    document = json.loads(done.stdout)
    assert document["status"] == "COMPLETED", document["error_message"]
    assert set(served.requests_by_agent) == {"agent-dev-001", "agent-dev-002"}


def test_bench_uses_the_deployments_model(ray_head, served, dagster_home):
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "FLEET_LLM_MODEL": "smollm2"}
    done = fleet_dagster("bench", "--suite", "speed", "--tasks", "1", "--llm-url", served.base_url, env=env)
    assert done.returncode == 0, done.stderr
    assert '"failure_rate": 0.0' in done.stdout


def test_bench_refuses_an_unserved_model_exit_2(ray_head, served, dagster_home):
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "FLEET_LLM_MODEL": "not-served"}
    done = fleet_dagster("bench", "--suite", "speed", "--tasks", "1", "--llm-url", served.base_url, env=env)
    assert done.returncode == 2, done.stderr
    assert "'not-served' is not served" in done.stderr and "served: smollm2" in done.stderr


def test_bench_fails_when_every_call_fails_and_says_why(ray_head, sim_llm_factory, dagster_home):
    from fleet_dagster.sim_llm.server import FaultRates

    failing = sim_llm_factory(latency_s=0.01, model="smollm2", run_faults=FaultRates(error_rate=1.0))
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "FLEET_LLM_MODEL": "smollm2"}
    done = fleet_dagster("bench", "--suite", "speed", "--tasks", "1", "--llm-url", failing.base_url, env=env)
    assert done.returncode == 1, done.stderr
    assert "Every agent call failed" in done.stderr and "HTTP 500" in done.stderr


def test_with_one_served_model_every_role_uses_it(ray_head, served, dagster_home):
    """The profiles ask for Qwen/Qwen2.5-7B-Instruct; the server serves only smollm2, and no override is set."""
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home)}
    env.pop("FLEET_LLM_MODEL", None)
    args = ["Design a cache", "--role", "DEV", "--role", "QA", "--agents", "2", "--id", "one-model", "--json"]
    done = fleet_dagster("deliberate", *args, "--llm-url", served.base_url, env=env)
    assert json.loads(done.stdout)["status"] == "COMPLETED", done.stderr


def test_an_unserved_model_is_refused_before_any_call_exit_2(ray_head, served, dagster_home):
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "FLEET_LLM_MODEL": "not-served"}
    done = fleet_dagster("deliberate", "Design a cache", "--role", "DEV", "--llm-url", served.base_url, env=env)
    assert done.returncode == 2, done.stderr
    assert "model 'not-served' is not served" in done.stderr and "served: smollm2" in done.stderr
    assert served.requests_by_agent == {}


def test_a_request_over_the_served_context_is_refused_exit_2(ray_head, sim_llm_factory, dagster_home):
    short = sim_llm_factory(latency_s=0.05, model="smollm2", only_model=True, max_model_len=1024)
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home)}
    done = fleet_dagster("deliberate", "Design a cache " * 60, "--role", "DEV", "--llm-url", short.base_url, env=env)
    assert done.returncode == 2, done.stderr
    assert "role DEV" in done.stderr and "1024-token context" in done.stderr
    assert short.requests_by_agent == {}


def test_a_run_launched_elsewhere_fails_its_plan_step_saying_what_is_served(ray_head, instance, served, deploy_llm):
    from fleet_dagster.cli.run_deliberation import execute_deliberation
    from fleet_dagster.core.request import parse_request

    deploy_llm(served, model="not-served")
    request = parse_request({"task": "Design a cache", "roles": ["DEV"], "deliberation_id": "preflight-plan"})
    document = execute_deliberation(instance, request)
    assert document["status"] == "FAILED"
    assert "Model preflight" in document["error_message"] and "served: smollm2" in document["error_message"]
    assert served.requests_by_agent == {}
