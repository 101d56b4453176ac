"""fleet-dagster: run a deliberation and ask for its status from the shell. Each command lives with its kin."""

import click

from fleet_dagster.cli.deliberate import deliberate, status
from fleet_dagster.cli.nats_commands import nats_server, republish, submit
from fleet_dagster.cli.replay import replay
from fleet_dagster.cli.tools import bench, down, sim_llm


@click.group()
def cli() -> None:
    """Multi-agent LLM deliberations on Dagster + Ray (+ vLLM)."""


for command in (deliberate, status, submit, republish, replay, nats_server, bench, sim_llm, down):
    cli.add_command(command)
