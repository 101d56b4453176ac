"""`replay`: a stored deliberation scored again from the response store, without any model call."""

import json
import sys

import click
from rich.console import Console
from rich.markup import escape

from fleet_dagster.cli.console import EXIT_CODES, check_deliberation_id, winners_table


@click.command()
@click.argument("deliberation_id")
@click.option("--json", "as_json", is_flag=True, help="Print the replay's outcome as JSON.")
def replay(deliberation_id: str, as_json: bool) -> None:
    """Score a stored deliberation again from the response store, without calling any model.

    Exit codes are those of `deliberate`, for the replayed outcome.
    """
    check_deliberation_id(deliberation_id)
    import asyncio

    from fleet_dagster.core.outcome import deliberation_outcome
    from fleet_dagster.llm.replay import replay_deliberation
    from fleet_dagster.llm.response_store import RESPONSE_STORE_ENV
    from fleet_dagster.ray_cluster.response_stores import response_store_from_env

    try:
        store = response_store_from_env()
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if store is None:
        raise click.UsageError(f"the response store is turned off ({RESPONSE_STORE_ENV['path']}=off)")
    replayed = asyncio.run(replay_deliberation(store, deliberation_id))
    if replayed is None:
        raise click.ClickException(f"{deliberation_id} is not in the response store")
    document, councils = replayed
    # No call made, no time spent that means anything: what a replay shows is what the answers decide.
    outcome = deliberation_outcome(document.request, councils, wall_ms=0.0, prices={})
    missing = outcome.agent_calls - outcome.replayed_calls
    if as_json:
        click.echo(json.dumps({**outcome.model_dump(mode="json"), "missing_calls": missing}, indent=2))
    else:
        console = Console()
        console.print(
            f"Replayed [bold]{escape(deliberation_id)}[/]: [bold]{outcome.status.value}[/] "
            f"({outcome.replayed_calls} answers from the store, {missing} missing)"
        )
        console.print(winners_table({role: winner.model_dump() for role, winner in outcome.winners.items()}))
    sys.exit(EXIT_CODES[outcome.status])
