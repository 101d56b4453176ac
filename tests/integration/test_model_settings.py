"""Which model serves a role, decided once from the deployment's settings, whatever the entry point."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def fleet_dagster(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fleet_dagster.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )


@pytest.fixture
def served(sim_llm_factory):
    """A server that, like vLLM, serves one model name and answers 404 for any other."""
    return sim_llm_factory(latency_s=0.05, model="smollm2", only_model=True)


def test_a_url_on_the_command_line_keeps_the_deployments_model(served, dagster_home):
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "FLEET_LLM_MODEL": "smollm2"}
    args = ["Design a cache", "--role", "DEV", "--agents", "2", "--rounds", "0", "--id", "model-kept", "--json"]
    done = fleet_dagster("deliberate", *args, "--llm-url", served.base_url, env=env)

    document = json.loads(done.stdout)
    assert document["status"] == "COMPLETED", document["error_message"]
    assert set(served.requests_by_agent) == {"agent-dev-001", "agent-dev-002"}


def test_bench_uses_the_deployments_model(served, dagster_home):
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "FLEET_LLM_MODEL": "smollm2"}
    done = fleet_dagster("bench", "--suite", "speed", "--tasks", "1", "--llm-url", served.base_url, env=env)
    assert done.returncode == 0, done.stderr
    assert '"failure_rate": 0.0' in done.stdout


def test_bench_fails_when_every_call_fails_and_says_why(served, dagster_home):
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "FLEET_LLM_MODEL": "not-served"}
    done = fleet_dagster("bench", "--suite", "speed", "--tasks", "1", "--llm-url", served.base_url, env=env)
    assert done.returncode != 0
    assert "not-served" in done.stdout + done.stderr and "smollm2" in done.stdout + done.stderr
