"""`deliberate` and `status`: a deliberation run from the shell, and its status document."""

import json
import signal
import sys

import click
from rich.console import Console
from rich.markup import escape

from fleet_dagster.cli.console import (
    EXIT_CODES,
    EXIT_INTERRUPTED,
    check_deliberation_id,
    ctrl_c_as_flag,
    dagster_instance,
    print_summary,
    ray_logs_to_file,
    stderr_console,
)
from fleet_dagster.cli.options import (
    llm_options,
    refuse_what_the_server_cannot_serve,
    request_from_flags,
    request_options,
    use_llm,
)
from fleet_dagster.core.status import DeliberationStatus


@click.command()
@request_options
@llm_options
@click.option("--json", "as_json", is_flag=True, help="Print only the status document as JSON.")
def deliberate(
    task: str, roles: tuple[str, ...], llm_url: str | None, llm_model: str | None, as_json: bool, **fields
) -> None:
    """Run a deliberation on TASK and print the winner of each role.

    Exit codes: 0 COMPLETED, 3 PARTIAL or TIMEOUT, 1 FAILED, 2 invalid input.
    """
    request = request_from_flags(task, roles, fields)
    ray_logs_to_file()

    from fleet_dagster.cli.progress import DeliberationProgress
    from fleet_dagster.cli.run_deliberation import cancel_deliberation, execute_deliberation, new_run_id

    console = stderr_console()
    instance = dagster_instance()
    use_llm(llm_url, llm_model)
    refuse_what_the_server_cannot_serve(request)
    run_id = new_run_id()  # known before the run exists: a Ctrl-C cancels this run only
    try:
        with ctrl_c_as_flag() as interrupted:
            if as_json:
                document = execute_deliberation(instance, request, run_id=run_id, quiet=True, interrupted=interrupted)
            else:
                console.print(
                    f"Deliberation [bold]{escape(request.deliberation_id)}[/]: {len(request.roles)} roles x "
                    f"{request.agents_per_role} agents x {request.rounds} rounds"
                )
                with DeliberationProgress(request.roles, request.expected_count, console) as progress:
                    document = execute_deliberation(
                        instance, request, run_id=run_id, quiet=True, on_status=progress.update, interrupted=interrupted
                    )
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the release short
        outcome = cancel_deliberation(instance, request.deliberation_id, run_id)
        console.print(f"Interrupted: deliberation {request.deliberation_id} cancelled, {outcome}", markup=False)
        sys.exit(EXIT_INTERRUPTED)
    if as_json:
        click.echo(json.dumps(document, indent=2))
    else:
        print_summary(document, instance.root_directory)
    sys.exit(EXIT_CODES.get(DeliberationStatus(document["status"]), 1))


@click.command()
@click.argument("deliberation_id")
@click.option("--json", "as_json", is_flag=True, help="Print the status document as JSON.")
def status(deliberation_id: str, as_json: bool) -> None:
    """Show the status of a deliberation (UNKNOWN, PENDING, IN_PROGRESS or its final status)."""
    check_deliberation_id(deliberation_id)
    from fleet_dagster.deliberation.status_query import deliberation_status

    instance = dagster_instance()
    document = deliberation_status(instance, deliberation_id)
    if as_json:
        click.echo(json.dumps(document, indent=2))
    else:
        print_summary(document, instance.root_directory)
        if document.get("archived"):
            Console().print(f"  archived in {escape(document['archive'])}: its runs and partition were deleted")
