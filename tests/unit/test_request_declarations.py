"""A request field is declared once, in DeliberationRequest; the launchpad config and the CLI flags agree with it."""

import click
import pytest

from fleet_dagster.cli.deliberate import deliberate
from fleet_dagster.cli.nats_commands import submit
from fleet_dagster.core.request import DeliberationRequest
from fleet_dagster.deliberation.config import DeliberationConfig

REQUEST_FIELDS = DeliberationRequest.model_fields
# The partition key is the deliberation id; the launchpad never types it into the config.
CONFIG_FIELDS = set(REQUEST_FIELDS) - {"deliberation_id"}
# Free-form JSON does not fit a shell flag: it comes through NATS or the launchpad.
CLI_FIELDS = set(REQUEST_FIELDS) - {"metadata"}


def request_default(name: str):
    return REQUEST_FIELDS[name].get_default(call_default_factory=True)


def test_every_request_field_is_in_the_launchpad_config_with_its_default_and_description():
    config_fields = DeliberationConfig.model_fields
    assert set(config_fields) == CONFIG_FIELDS
    for name in CONFIG_FIELDS - {"task"}:
        default = config_fields[name].get_default(call_default_factory=True)
        assert default == request_default(name), name
    for name in CONFIG_FIELDS:
        assert REQUEST_FIELDS[name].description, f"DeliberationRequest.{name} has no description"
        assert config_fields[name].description == REQUEST_FIELDS[name].description, name


@pytest.mark.parametrize("command", [deliberate, submit], ids=["deliberate", "submit"])
def test_every_request_field_has_a_flag_with_the_request_default(command: click.Command):
    params = {param.name: param for param in command.params}
    assert set(params) >= CLI_FIELDS, f"no flag for {sorted(CLI_FIELDS - set(params))}"
    repeatable = {name for name, param in params.items() if getattr(param, "multiple", False)}
    for name in CLI_FIELDS - {"task", "deliberation_id", "tests"} - repeatable:
        assert params[name].default == request_default(name), name
    given = command.make_context(command.name, ["a task"]).params
    for name in repeatable - {"roles"}:  # no role given: the request's default roles
        assert list(given[name]) == request_default(name), name
    # --tests names a file; without one, the request's default
    assert command.make_context(command.name, ["a task"]).params["tests"] == request_default("tests")
