"""What the CLI's commands share: exit codes, the Dagster instance, consoles, and the deliberation's summary."""

import contextlib
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fleet_dagster.core.request import DELIBERATION_ID_PATTERN
from fleet_dagster.core.status import DeliberationStatus

if TYPE_CHECKING:
    import dagster as dg

EXIT_INTERRUPTED = 130  # the shell's code for a command stopped by Ctrl-C (128 + SIGINT)
EXIT_CODES = {
    DeliberationStatus.COMPLETED: 0,
    DeliberationStatus.PARTIAL: 3,
    DeliberationStatus.TIMEOUT: 3,
    DeliberationStatus.FAILED: 1,
}


def check_deliberation_id(deliberation_id: str) -> None:
    if not re.match(DELIBERATION_ID_PATTERN, deliberation_id):
        raise click.BadParameter(f"must match {DELIBERATION_ID_PATTERN}", param_hint="DELIBERATION_ID")


def ray_logs_to_file() -> None:
    """The terminal shows the CLI's own output; Ray's log lines go to FLEET_HOME/logs/ray-driver.log."""
    from fleet_dagster.ray_cluster.driver_logs import send_driver_logs_to
    from fleet_dagster.settings import fleet_home

    send_driver_logs_to(fleet_home() / "logs" / "ray-driver.log")


@contextlib.contextmanager
def ctrl_c_as_flag() -> Iterator[threading.Event]:
    """While the run goes, Ctrl-C sets a flag that the wait loop reads between polls. The default handler
    raises KeyboardInterrupt wherever the main thread happens to be (inside the instance's database driver,
    say), where a library may absorb it or leave a connection half-used: then the run went on to the end."""
    interrupted = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.set())
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


def dagster_instance() -> "dg.DagsterInstance":
    import dagster as dg  # when a command needs it: importing Dagster costs every command a second

    from fleet_dagster.settings import ensure_dagster_home

    ensure_dagster_home()
    return dg.DagsterInstance.get()


def stderr_console() -> Console:
    """A console on a copy of stderr. While a run goes, Dagster's log capture points this process's stdout
    and stderr at files, mirrored back by a `tail` child, which a Ctrl-C stops too: what the console says
    after a Ctrl-C would otherwise be lost."""
    try:
        return Console(file=os.fdopen(os.dup(sys.stderr.fileno()), "w"))
    except OSError:  # stderr is no file (a test runner's buffer): nothing redirects it either
        return Console(stderr=True)


def winners_table(winners: dict[str, dict], results: list[dict] | None = None) -> Table:
    """With an answer column when a winner was chosen by vote (its answer and its share of the votes), and a tests
    column when a winner's code was run against the request's tests (its verdict, tests passed of the total)."""
    voted = any(winner.get("votes") for winner in winners.values())
    runs = {(r["role"], r["agent_id"]): r for r in results or [] if r.get("tests_verdict")}
    table = Table("role", "winner", "score", *(["answer (votes)"] if voted else []), *(["tests"] if runs else []))
    for role, winner in winners.items():
        row = [escape(role), escape(str(winner["agent_id"])), f"{winner['score']:.2f}"]
        if voted:
            votes = winner.get("votes") or {}
            answer = winner.get("answer")
            row.append(f"{escape(str(answer))} ({votes.get(answer, 0)} of {sum(votes.values())})" if votes else "")
        if runs:
            run = runs.get((role, winner["agent_id"]))
            row.append(f"{run['tests_verdict']} {run['tests_passed']}/{run['tests_total']}" if run else "")
        table.add_row(*row)
    return table


def print_summary(document: dict, dagster_home: str) -> None:
    """Every value is escaped: error messages quote model and server text, where `[...]` is not markup."""
    console = Console()
    deliberation_id, run_id = escape(str(document["deliberation_id"])), escape(str(document["run_id"]))
    console.print(
        f"Deliberation [bold]{deliberation_id}[/]: [bold]{escape(str(document['status']))}[/] "
        f"({document['current_count']}/{document['expected_count']} proposals, "
        f"{(document['duration_ms'] or 0) / 1000:.1f}s)"
    )
    if document["error_message"]:
        console.print(f"[red]{escape(document['error_message'])}[/]")
    console.print(winners_table(document["winners"], document.get("results")))
    console.print(
        f"Result: asset [bold]deliberation[/], partition {deliberation_id}, run {run_id}\n"
        f"  stored in {escape(dagster_home)}/storage/deliberation/{deliberation_id}\n"
        f"  fleet-dagster status {deliberation_id} --json   |   dagster dev -w workspace.yaml"
    )
    if document.get("traceparent"):
        console.print(f"  trace {escape(document['traceparent'])}")
    if document.get("estimated_cost") is not None:
        console.print(f"  estimated cost {document['estimated_cost']:.6g} (at the deployment's per-model prices)")
