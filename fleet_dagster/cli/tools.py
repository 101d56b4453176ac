"""Tools around the fleet: `bench` a suite, serve a simulated model (`sim-llm`), stop the local Ray head (`down`)."""

import contextlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click
from rich.console import Console

from fleet_dagster.benchmarks.suites import SUITE_CHOICES, BenchmarkTask, SuiteChoice
from fleet_dagster.cli.console import ray_logs_to_file, stderr_console
from fleet_dagster.cli.options import llm_options, use_llm

if TYPE_CHECKING:  # imported where used: `fleet-dagster --help` loads no model, Ray or pandas code
    import pandas as pd

    from fleet_dagster.benchmarks.ab_test import ABSuite, Arm
    from fleet_dagster.llm.resources import LLMResource


# A suite's or an A/B test's run, given the model resource and what to call after each task.
Run = Callable[["LLMResource", Callable[[BenchmarkTask, dict[str, Any]], None]], tuple["pd.DataFrame", dict]]


@click.command()
@click.option("--suite", type=click.Choice(SUITE_CHOICES), default="speed", show_default=True)
@llm_options
@click.option("--tasks", "limit", type=click.IntRange(min=1), default=None, help="Only the first N tasks.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None, help="Also write the rows here.")
@click.option(
    "--compare",
    nargs=2,
    metavar="A B",
    default=None,
    help="A/B test two arms on the quality or code suite, each 'key=value,...' of models (joined by +), role, "
    "selection, agents, rounds (--tasks: how many tasks, past the suite's count where it generates them).",
)
def bench(
    suite: SuiteChoice,
    llm_url: str | None,
    llm_model: str | None,
    limit: int | None,
    csv_path: str | None,
    compare: tuple[str, str] | None,
) -> None:
    """Run a benchmark suite from the shell and print its table (no Dagster run is recorded)."""
    arms = None if compare is None else _arms(suite, compare)  # a bad spec exits before anything starts
    ray_logs_to_file()
    use_llm(llm_url, llm_model)
    from fleet_dagster.benchmarks.quality_stats import markdown_table
    from fleet_dagster.benchmarks.runner import run_suite
    from fleet_dagster.benchmarks.suites import suite_tasks
    from fleet_dagster.llm.resources import LLMResource

    served = LLMResource().served_endpoint() is not None
    if arms is None:
        total = len(suite_tasks(suite, served_model=served)[:limit])
        frame, summary = _with_progress(
            f"{suite} suite", total, lambda llm, on_task: run_suite(suite, llm, limit=limit, on_task=on_task)
        )
        tables = [markdown_table(table) for table in (summary["methods"], summary["code_methods"]) if table]
    else:
        from fleet_dagster.benchmarks.ab_runner import ab_tasks, run_ab
        from fleet_dagster.benchmarks.ab_test import ab_markdown

        ab_suite, arm_a, arm_b = arms
        total = 2 * len(ab_tasks(ab_suite, served_model=served, count=limit))
        frame, summary = _with_progress(
            f"{suite} A/B",
            total,
            lambda llm, on_task: run_ab(ab_suite, arm_a, arm_b, llm, limit=limit, on_task=on_task),
        )
        tables = [ab_markdown(summary, (arm_a.label, arm_b.label))]
    # Plain text, never wrapped to a terminal's width: the tables are read and kept.
    click.echo(frame.drop(columns=["suite"]).to_markdown(index=False))
    for table in tables:
        click.echo(table)
    click.echo(json.dumps(summary, indent=2))
    if csv_path is not None:
        frame.to_csv(csv_path, index=False)
    if summary["failure_rate"] in (None, 1.0):  # nothing was measured: say why, and fail the command
        stderr_console().print(f"Every agent call failed: {summary['call_errors']}", markup=False)
        sys.exit(1)


def _arms(suite: SuiteChoice, specs: tuple[str, str]) -> tuple["ABSuite", "Arm", "Arm"]:
    """The suite and arms of `--compare`; exits 2 (a usage error) naming what is wrong."""
    from fleet_dagster.benchmarks.ab_test import AB_SUITES, Arm

    if suite not in AB_SUITES:
        raise click.UsageError(f"--compare runs the {' or '.join(AB_SUITES)} suite, not {suite}")
    try:
        arm_a, arm_b = (Arm.parse(spec) for spec in specs)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--compare") from None
    return cast("ABSuite", suite), arm_a, arm_b


def _with_progress(label: str, total: int, run: Run) -> tuple["pd.DataFrame", dict]:
    """Runs on the deployment's resources, with a progress bar on stderr; a model not served exits 2."""
    import dagster as dg
    from rich.progress import Progress

    from fleet_dagster.llm.preflight import PreflightError
    from fleet_dagster.llm.resources import LLMResource
    from fleet_dagster.ray_cluster.resources import RayClusterResource

    resources = {"ray_cluster": RayClusterResource(), "llm": LLMResource()}
    try:
        with dg.build_resources(resources) as ready, Progress(console=Console(stderr=True)) as progress:
            bar = progress.add_task(label, total=total)
            return run(
                ready.llm,
                lambda task, row: progress.update(
                    bar, advance=1, description=f"{task.name} ({row.get('arm', task.mode)})"
                ),
            )
    except PreflightError as exc:
        stderr_console().print(f"Error: {exc}", markup=False)
        sys.exit(2)


@click.command("sim-llm")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8011, show_default=True)
@click.option("--latency", "latency_s", type=float, default=2.0, show_default=True, help="Time to first token, s.")
@click.option("--per-token", "per_token_s", type=float, default=0.0, show_default=True, help="Seconds per token.")
@click.option("--capacity", type=click.IntRange(min=1), default=256, show_default=True, help="Sequences at once.")
@click.option("--output-tokens", type=click.IntRange(min=1), default=None, help="Answer length (default: short).")
@click.option("--error-rate", type=click.FloatRange(0, 1), default=0.0, show_default=True, help="Share of HTTP 500s.")
@click.option("--model", "models", multiple=True, help="Also serve this model name (repeatable).")
@click.option(
    "--model-accuracy",
    "accuracies",
    multiple=True,
    metavar="NAME=P",
    help="How often model NAME answers a question of --answer-key right (repeatable).",
)
@click.option(
    "--answer-key",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="A JSON object: question text -> its correct answer.",
)
def sim_llm(
    host: str, port: int, models: tuple[str, ...], accuracies: tuple[str, ...], answer_key: str | None, **settings
) -> None:
    """Serve a simulated OpenAI-compatible model (a vLLM under load, without a GPU)."""
    from fleet_dagster.sim_llm.server import FaultRates, SimLLMServer, SimSettings

    error_rate = settings.pop("error_rate")
    simulated = SimSettings(
        **settings,
        run_faults=FaultRates(error_rate=error_rate),
        models=list(models),
        model_accuracy=dict(_accuracy(text) for text in accuracies),
        answer_key={} if answer_key is None else _answer_key(Path(answer_key)),
    )
    with SimLLMServer(simulated, host=host, port=port) as server:
        click.echo(f"serving {server.base_url} (Ctrl-C to stop)")
        with contextlib.suppress(KeyboardInterrupt):
            server.wait()


def _accuracy(text: str) -> tuple[str, float]:
    name, _, share = text.rpartition("=")
    try:
        accuracy = float(share)
    except ValueError:
        accuracy = -1.0
    if not name or not 0 <= accuracy <= 1:
        raise click.BadParameter(f"{text!r} is not NAME=P with P in [0, 1]", param_hint="--model-accuracy")
    return name, accuracy


def _answer_key(path: Path) -> dict[str, str]:
    try:
        key = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise click.BadParameter(f"{path}: {exc}", param_hint="--answer-key") from None
    if not isinstance(key, dict):
        raise click.BadParameter(f"{path}: not a JSON object", param_hint="--answer-key")
    return {str(question): str(answer) for question, answer in key.items()}


@click.command()
def down() -> None:
    """Stop the local Ray head (and the embedded model on it) that fleet-dagster started."""
    from fleet_dagster.ray_cluster.local_head import stop_local_head
    from fleet_dagster.settings import fleet_home

    click.echo("stopped the local Ray head" if stop_local_head(fleet_home() / "ray") else "no local Ray head running")
