"""The CLI as users run it: a real process, against the session's Ray head and a real HTTP model."""

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from fleet_dagster.cli.main import cli

pytestmark = pytest.mark.integration


def fleet_dagster(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fleet_dagster.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_deliberate_json_is_the_status_document(ray_head, dagster_home, sim_llm_factory):
    server = sim_llm_factory(latency_s=0.05)
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home)}
    args = ["Design a cache", "--role", "DEV", "--role", "DATA", "--agents", "2", "--rounds", "1", "--id", "cli-1"]
    done = fleet_dagster("deliberate", *args, "--llm-url", server.base_url, "--json", env=env)

    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)  # nothing but the JSON document on stdout
    assert document["deliberation_id"] == "cli-1" and document["status"] == "COMPLETED"
    assert set(document["winners"]) == {"DEV", "DATA"}
    status = fleet_dagster("status", "cli-1", "--json", env=env)
    assert json.loads(status.stdout) == document


def test_partial_exits_3_and_prints_the_summary(ray_head, dagster_home, sim_llm_factory):
    server = sim_llm_factory(latency_s=0.05, faults={"agent-dev-002": ["500"]})
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "FLEET_LLM_URL": server.base_url}
    done = fleet_dagster("deliberate", "Design a cache", "--role", "DEV", "--agents", "2", "--id", "cli-2", env=env)

    assert done.returncode == 3, done.stderr
    assert "cli-2" in done.stdout and "PARTIAL" in done.stdout and "agent-dev-001" in done.stdout
    assert "storage/deliberation/cli-2" in done.stdout.replace("\n", "")


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["t", "--agents", "0"], "--agents"),
        (["t", "--rounds", "9"], "--rounds"),
        (["t", "--role", "WIZARD"], "--role"),
        (["t", "--id", "no spaces"], "--id"),
        (["t", "--deadline", "-1"], "--deadline"),
        (["   "], "TASK"),
        (["t", "--agents", "many"], "--agents"),
        (["t", "--selection", "architect", "--top-k", "1"], "--top-k"),
    ],
)
def test_invalid_flags_exit_2_naming_the_flag(args, flag, dagster_home):
    result = CliRunner().invoke(cli, ["deliberate", *args])
    assert result.exit_code == 2
    assert flag in result.output and "Traceback" not in result.output


def test_status_of_an_unknown_id(dagster_home):
    result = CliRunner().invoke(cli, ["status", "nope", "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["status"] == "UNKNOWN"
    assert CliRunner().invoke(cli, ["status", "bad id!"]).exit_code == 2
