"""Tools around the fleet: `bench` a suite, serve a simulated model (`sim-llm`), stop the local Ray head (`down`)."""

import contextlib
import json
import sys

import click
from rich.console import Console

from fleet_dagster.benchmarks.suites import SUITE_CHOICES, SuiteChoice
from fleet_dagster.cli.console import ray_logs_to_file, stderr_console
from fleet_dagster.cli.options import llm_options, use_llm


@click.command()
@click.option("--suite", type=click.Choice(SUITE_CHOICES), default="speed", show_default=True)
@llm_options
@click.option("--tasks", "limit", type=click.IntRange(min=1), default=None, help="Only the first N tasks.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None, help="Also write the rows here.")
def bench(
    suite: SuiteChoice, llm_url: str | None, llm_model: str | None, limit: int | None, csv_path: str | None
) -> None:
    """Run a benchmark suite from the shell and print its table (no Dagster run is recorded)."""
    ray_logs_to_file()
    import dagster as dg
    from rich.progress import Progress

    from fleet_dagster.benchmarks.runner import run_suite
    from fleet_dagster.benchmarks.suites import suite_tasks
    from fleet_dagster.llm.preflight import PreflightError
    from fleet_dagster.llm.resources import LLMResource
    from fleet_dagster.ray_cluster.resources import RayClusterResource

    use_llm(llm_url, llm_model)
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
        stderr_console().print(f"Error: {exc}", markup=False)
        sys.exit(2)
    from fleet_dagster.benchmarks.quality_stats import markdown_table

    # Plain text, never wrapped to a terminal's width: the tables are read and kept.
    click.echo(frame.drop(columns=["suite"]).to_markdown(index=False))
    for table in (summary["methods"], summary["code_methods"]):
        if table:
            click.echo(markdown_table(table))
    click.echo(json.dumps(summary, indent=2))
    if csv_path is not None:
        frame.to_csv(csv_path, index=False)
    if summary["failure_rate"] in (None, 1.0):  # nothing was measured: say why, and fail the command
        stderr_console().print(f"Every agent call failed: {summary['call_errors']}", markup=False)
        sys.exit(1)


@click.command("sim-llm")
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


@click.command()
def down() -> None:
    """Stop the local Ray head (and the embedded model on it) that fleet-dagster started."""
    from fleet_dagster.ray_cluster.local_head import stop_local_head
    from fleet_dagster.settings import fleet_home

    click.echo("stopped the local Ray head" if stop_local_head(fleet_home() / "ray") else "no local Ray head running")
