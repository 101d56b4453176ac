"""intake_drain: a daily run of the intake drain benchmark (drain.py), its check, job and schedule."""

import logging
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import dagster as dg

from fleet_dagster.benchmarks.assets import daily_job, daily_partitions, daily_schedule
from fleet_dagster.benchmarks.drain import DrainFigures, DrainShape, drain_lines
from fleet_dagster.benchmarks.drain_settings import DrainScheduleSettings
from fleet_dagster.benchmarks.drain_verdicts import drain_verdict
from fleet_dagster.benchmarks.history import summaries_by_partition

DRAIN_ASSET_KEY = dg.AssetKey("intake_drain")
HARNESS = "fleet_dagster.cli.drain"


class DrainConfig(dg.Config):
    requests: int = DrainShape.model_fields["requests"].default
    latency_s: float = DrainShape.model_fields["latency_s"].default


def drain_history(instance: dg.DagsterInstance) -> list[tuple[str, dict[str, Any], int]]:
    return summaries_by_partition(instance, DRAIN_ASSET_KEY)


def history_table(history: list[tuple[str, dict[str, Any]]]) -> str:
    """One line per partition: how fast requests got councils and answers, and how busy the model was."""
    lines = [
        "| partition | requests | councils p95 s | final p50 s | final p95 s | per minute | model busy |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for partition, summary in history:
        figures = DrainFigures.model_validate(summary)
        lines.append(
            f"| {partition} | {figures.shape.requests} | {figures.request_to_councils_s.p95} "
            f"| {figures.request_to_final_s.p50} | {figures.request_to_final_s.p95} "
            f"| {figures.deliberations_per_minute} | {figures.model_busy_share} |"
        )
    return "\n".join(lines)


@dg.asset(
    key=DRAIN_ASSET_KEY,
    partitions_def=daily_partitions,
    description="N requests at once through NATS, the request sensor, admission, Ray and runs, on a simulated model "
    "(its own daemon, NATS and Ray head): request -> councils running and -> final event, deliberations per minute "
    "and the model's busy share, one partition per day.",
)
def intake_drain(context: dg.AssetExecutionContext, config: DrainConfig) -> dg.MaterializeResult:
    shape = DrainShape(requests=config.requests, latency_s=config.latency_s)
    figures = _measured(shape, context.log)
    summary = figures.model_dump(mode="json")
    earlier = [(p, s) for p, s, _ in drain_history(context.instance) if p < context.partition_key]
    return dg.MaterializeResult(
        metadata={
            "summary": dg.MetadataValue.json(summary),
            "request_to_councils_p95_s": figures.request_to_councils_s.p95,
            "request_to_final_p95_s": figures.request_to_final_s.p95,
            "deliberations_per_minute": figures.deliberations_per_minute,
            "model_busy_share": figures.model_busy_share,
            "report": dg.MetadataValue.md("```\n" + "\n".join(drain_lines(figures)) + "\n```"),
            "history": dg.MetadataValue.md(history_table([*earlier[-29:], (context.partition_key, summary)])),
        }
    )


def _measured(shape: DrainShape, log: logging.Logger) -> DrainFigures:
    """The harness (cli/drain.py) in a process of its own: it measures the whole fleet from outside (its own
    daemon, NATS server and Ray head), never from inside this run's connections."""
    with tempfile.TemporaryDirectory(prefix="fleet-drain-") as home:
        figures_file = Path(home) / "figures.json"
        command = [sys.executable, "-m", HARNESS, shape.model_dump_json(), str(figures_file)]
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as harness:
            assert harness.stdout is not None
            for line in harness.stdout:
                log.info(line.rstrip())
        if harness.returncode != 0 or not figures_file.exists():
            raise dg.Failure(f"the drain harness exited with {harness.returncode}; its output is in this step's logs")
        return DrainFigures.model_validate_json(figures_file.read_text())


@dg.asset_check(
    asset=DRAIN_ASSET_KEY,
    description="Every request ran once and answered, status agreed with each final event, runs stayed within "
    "max_concurrent_runs; warns when councils started later than the sensor interval + 1 s at p95.",
)
def intake_keeps_up(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    history = drain_history(context.instance)
    if not history:
        return dg.AssetCheckResult(passed=False, description="no drain materialized")
    verdict = drain_verdict(DrainFigures.model_validate(max(history, key=lambda item: item[2])[1]))
    severity = dg.AssetCheckSeverity.WARN if verdict.warn_only else dg.AssetCheckSeverity.ERROR
    return dg.AssetCheckResult(passed=verdict.passed, severity=severity, description=verdict.description)


drain_checks = [intake_keeps_up]

drain_job = daily_job("intake_drain_job", intake_drain, drain_checks)


def drain_schedule(settings: DrainScheduleSettings) -> dg.ScheduleDefinition:
    return daily_schedule(
        "intake_drain_schedule",
        drain_job,
        (settings.cron, settings.status),
        {"intake_drain": {"config": {"requests": settings.requests}}},
        "intake-drain",
        "Daily intake drain benchmark (FLEET_DRAIN_CRON, FLEET_DRAIN_REQUESTS).",
    )
