"""Settings from a process's environment: each field's variable declared once, read once at the edge."""

import os
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from fleet_dagster.core.env_settings import SettingsError
from fleet_dagster.fleet_settings import FleetSettings
from fleet_dagster.llm.settings import LLM_ENV, LLMSettings, process_llm_settings
from fleet_dagster.nats_bridge.settings import NATS_ENV, NatsSettings


def test_each_field_reads_the_variable_it_declares_and_an_empty_one_is_unset():
    settings = LLMSettings.from_environ(
        {"FLEET_LLM_URL": "http://vllm:8000/v1", "FLEET_LLM_MODEL": "", "FLEET_LLM_MODEL_URLS": '{"m": "http://m/v1"}'}
    )
    assert settings.base_url == "http://vllm:8000/v1" and settings.model_override is None
    assert settings.model_urls == {"m": "http://m/v1"} and LLM_ENV["model_urls"] == "FLEET_LLM_MODEL_URLS"
    # A caller passes values by field name, never through the environment.
    assert LLMSettings(base_url="http://other/v1", model_urls={"m": "http://m/v1"}).model_urls == {"m": "http://m/v1"}


def test_a_field_without_a_variable_is_never_read_from_the_environment():
    settings = NatsSettings.from_environ({"NATS_URL": "nats://n:4222", "connect_timeout_s": "99"})
    assert settings.connect_timeout_s == 2.0 and "connect_timeout_s" not in NATS_ENV
    assert NatsSettings.deployed({}) is None and NatsSettings.deployed({"NATS_URL": ""}) is None


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"FLEET_LLM_MAX_IN_FLIGHT": "0"}, "FLEET_LLM_MAX_IN_FLIGHT"),
        ({"FLEET_LLM_PRICES": "{not json"}, "FLEET_LLM_PRICES"),
        ({"FLEET_LLM_API": "grpc"}, "FLEET_LLM_API"),
    ],
)
def test_a_bad_value_is_refused_naming_its_variable(environ, named):
    with pytest.raises(SettingsError, match=named):
        LLMSettings.from_environ(environ)


def test_every_setting_the_code_reads_is_documented():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert sorted(v for v in FleetSettings.variables() if not re.search(rf"`{v}[`=]", readme)) == []


def test_the_cli_chooses_the_model_server_as_a_value_for_as_long_as_its_command(monkeypatch):
    from fleet_dagster.cli.options import use_llm

    monkeypatch.delenv(LLM_ENV["base_url"], raising=False)
    monkeypatch.setenv(LLM_ENV["api_key"], "the-deployments-key")
    seen = {}

    @click.command()
    def probe() -> None:
        use_llm("http://flagged:8000/v1", None)
        seen["settings"], seen["environment"] = process_llm_settings(), os.environ.get(LLM_ENV["base_url"])

    assert CliRunner().invoke(probe).exit_code == 0
    chosen = seen["settings"]
    assert chosen.base_url == "http://flagged:8000/v1" and chosen.api_key.get_secret_value() == "the-deployments-key"
    assert seen["environment"] is None  # a value, never written into the environment
    assert process_llm_settings().base_url is None  # gone with the command


def test_a_runs_resources_read_their_settings_once_when_set_up(monkeypatch):
    import dagster as dg

    from fleet_dagster.llm.resources import LLMResource
    from fleet_dagster.nats_bridge.resources import NatsResource

    monkeypatch.setenv(NATS_ENV["url"], "nats://first:4222")
    monkeypatch.setenv(LLM_ENV["base_url"], "http://first:8000/v1")
    with dg.build_resources({"nats": NatsResource(), "llm": LLMResource()}) as resources:
        monkeypatch.setenv(NATS_ENV["url"], "nats://second:4222")
        monkeypatch.delenv(LLM_ENV["base_url"])
        assert resources.nats.settings().url == "nats://first:4222"
        assert resources.llm.settings().base_url == "http://first:8000/v1"


# Where a process reads its environment: its edges (the CLI, the code location, a run's resources and retention
# op, an actor's start), the places that hand it to a child process, and the local paths (FLEET_HOME and its kin).
ENVIRONMENT_READERS = {
    "cli/options.py",
    "definitions.py",
    "llm/settings.py",
    "nats_bridge/resources.py",
    "ray_cluster/resources.py",
    "ray_cluster/response_stores.py",
    "ray_cluster/sandbox_runs.py",  # a sandbox task's start: the sandbox node's settings
    "deliberation/retention.py",
    "ray_cluster/local_head.py",
    "settings.py",
    "core/resource_files.py",
    "deliberation/archive.py",
    "cli/drain.py",  # the drain benchmark's daemon: this process's environment, with the drain's own settings
}


def test_only_a_processs_edges_read_its_environment():
    package = Path(__file__).resolve().parents[2] / "fleet_dagster"
    readers = {
        str(path.relative_to(package))
        for path in package.rglob("*.py")
        if re.search(r"\bos\.(environ|getenv)\b|\bgetenv\(", path.read_text())
    }
    assert readers <= ENVIRONMENT_READERS, sorted(readers - ENVIRONMENT_READERS)
