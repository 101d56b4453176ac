"""benchmark_results: a daily partition of speed, quality and code figures, its checks, job and schedule."""

import datetime
from typing import Any

import dagster as dg
from pydantic import Field

from fleet_dagster.benchmarks import regression
from fleet_dagster.benchmarks.history import BENCHMARK_ASSET_KEY, current_and_previous, summaries_by_partition
from fleet_dagster.benchmarks.quality_stats import markdown_table
from fleet_dagster.benchmarks.schedule_settings import BenchmarkScheduleSettings
from fleet_dagster.benchmarks.suites import SuiteChoice
from fleet_dagster.core.env_settings import DefaultStatus
from fleet_dagster.llm.resources import LLMResource
from fleet_dagster.ray_cluster.resources import RayClusterResource
from fleet_dagster.run_pods import RUN_POD_TAGS

daily_partitions = dg.DailyPartitionsDefinition(start_date="2026-11-01")


class BenchmarkConfig(dg.Config):
    suite: SuiteChoice = Field(default="all", description="Which suite(s) to run.")
    max_tasks: int | None = Field(default=None, description="Only the first N tasks (smoke runs).")


@dg.asset(
    key=BENCHMARK_ASSET_KEY,
    partitions_def=daily_partitions,
    description="Speed and quality of deliberations and of code by each method on the configured model, one "
    "partition per day.",
)
def benchmark_results(
    context: dg.AssetExecutionContext, config: BenchmarkConfig, ray_cluster: RayClusterResource, llm: LLMResource
) -> dg.Output[Any]:  # a pandas DataFrame: Dagster resolves the annotation where the definitions load
    # The runner (pandas) and the plots (matplotlib) are imported here, not with the definitions, which every
    # run process loads: a deliberation's run needs neither.
    from fleet_dagster.benchmarks import plots
    from fleet_dagster.benchmarks.runner import run_suite

    frame, summary = run_suite(
        config.suite,
        llm,
        limit=config.max_tasks,
        on_task=lambda task, row: context.log.info(f"{task.suite}/{task.name} ({task.mode}): {row['wall_s']} s"),
    )
    earlier = [(p, s) for p, s, _ in summaries_by_partition(context.instance) if p < context.partition_key]
    history = [*earlier[-29:], (context.partition_key, summary)]
    return dg.Output(
        frame,
        metadata={
            "summary": dg.MetadataValue.json(summary),
            "tasks": len(frame),
            "latency_p95_ms": summary["latency_p95_ms"],
            "failure_rate": summary["failure_rate"],
            "accuracy_single": summary["accuracy_single"],
            "accuracy_deliberation": summary["accuracy_deliberation"],
            "accuracy_vote": summary["accuracy_vote"],
            "accuracy_code_single": summary["accuracy_code_single"],
            "accuracy_code_execution": summary["accuracy_code_execution"],
            "backend": llm.description,
            "results": dg.MetadataValue.md(frame.to_markdown(index=False)),
            "latency_trend": dg.MetadataValue.md(plots.latency_trend(history)),
            "accuracy_trend": dg.MetadataValue.md(plots.accuracy_trend(history)),
            **(
                {
                    "quality": dg.MetadataValue.md(markdown_table(summary["methods"])),
                    "accuracy_vs_tokens": dg.MetadataValue.md(plots.accuracy_vs_tokens(summary["methods"])),
                }
                if summary["methods"]
                else {}
            ),
            **(
                {
                    "code": dg.MetadataValue.md(markdown_table(summary["code_methods"])),
                    "code_accuracy_vs_tokens": dg.MetadataValue.md(
                        plots.accuracy_vs_tokens(summary["code_methods"], "Code")
                    ),
                }
                if summary["code_methods"]
                else {}
            ),
        },
    )


def _result(verdict: regression.Verdict, partition: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=verdict.passed,
        severity=dg.AssetCheckSeverity.WARN if verdict.severity == "warn" else dg.AssetCheckSeverity.ERROR,
        description=verdict.description,
        metadata={**{k: v for k, v in verdict.figures.items() if v is not None}, "partition": partition},
    )


def check_latency(instance: dg.DagsterInstance) -> dg.AssetCheckResult:
    current, previous, partition = current_and_previous(instance)
    return _result(regression.latency_regression(current or {}, previous), partition)


def check_accuracy(instance: dg.DagsterInstance) -> dg.AssetCheckResult:
    current, _, partition = current_and_previous(instance)
    return _result(regression.deliberation_accuracy(current or {}), partition)


def check_against_vote(instance: dg.DagsterInstance) -> dg.AssetCheckResult:
    current, _, partition = current_and_previous(instance)
    return _result(regression.deliberation_vs_majority_vote(current or {}), partition)


def check_execution(instance: dg.DagsterInstance) -> dg.AssetCheckResult:
    current, _, partition = current_and_previous(instance)
    return _result(regression.execution_vs_single(current or {}), partition)


def check_failures(instance: dg.DagsterInstance) -> dg.AssetCheckResult:
    current, _, partition = current_and_previous(instance)
    return _result(regression.failure_rate(current or {}), partition)


@dg.asset_check(asset=BENCHMARK_ASSET_KEY, description="p95 latency at most 20% above the trailing 7-day median.")
def latency_within_trailing_median(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    return check_latency(context.instance)


@dg.asset_check(asset=BENCHMARK_ASSET_KEY, description="Deliberation accuracy at least single-agent accuracy.")
def deliberation_not_worse_than_single(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    return check_accuracy(context.instance)


@dg.asset_check(
    asset=BENCHMARK_ASSET_KEY,
    description="Deliberation at least as accurate as a majority vote of as many independent samples as it makes "
    "calls (warns within the 95% intervals, fails below them).",
)
def deliberation_not_worse_than_majority_vote(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    return check_against_vote(context.instance)


@dg.asset_check(
    asset=BENCHMARK_ASSET_KEY,
    description="Code suite: the solution chosen by execution against the request's tests passes the hidden tests "
    "more often than one agent's.",
)
def execution_better_than_single(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    return check_execution(context.instance)


@dg.asset_check(asset=BENCHMARK_ASSET_KEY, description="At most 5% of agent calls failed.")
def failure_rate_at_most_5_percent(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    return check_failures(context.instance)


benchmark_checks = [
    latency_within_trailing_median,
    deliberation_not_worse_than_single,
    deliberation_not_worse_than_majority_vote,
    execution_better_than_single,
    failure_rate_at_most_5_percent,
]


def daily_job(
    name: str, asset: dg.AssetsDefinition, checks: list[dg.AssetChecksDefinition]
) -> "dg.UnresolvedAssetJobDefinition":  # exported for type checkers only
    """A job of one daily-partitioned benchmark asset and its checks, in one process: its councils get their
    concurrency from Ray, and its run pod is shaped for a Ray client (RUN_POD_TAGS)."""
    return dg.define_asset_job(
        name,
        selection=dg.AssetSelection.assets(asset) | dg.AssetSelection.checks(*checks),
        partitions_def=daily_partitions,
        executor_def=dg.in_process_executor,
        tags=RUN_POD_TAGS,
    )


def day_that_ended(context: dg.ScheduleEvaluationContext) -> str:
    """The newest complete daily partition at the scheduled time."""
    return (context.scheduled_execution_time - datetime.timedelta(days=1)).strftime("%Y-%m-%d")


def daily_schedule(
    name: str,
    job: "dg.UnresolvedAssetJobDefinition",
    when: tuple[str, DefaultStatus],
    ops_config: dict[str, Any],
    run_key_prefix: str,
    description: str,
) -> dg.ScheduleDefinition:
    """Runs the job (`ops_config`: its assets' op config) on the day that ended; `when`: its cron, and whether it
    runs from the start. One run per scheduled time (its run key)."""

    @dg.schedule(name=name, job=job, cron_schedule=when[0], description=description,
                 default_status=dg.DefaultScheduleStatus(when[1]))  # fmt: skip
    def on_the_day_that_ended(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        partition = day_that_ended(context)
        return dg.RunRequest(
            run_key=f"{run_key_prefix}-{partition}-{context.scheduled_execution_time.isoformat()}",
            partition_key=partition,
            run_config={"ops": ops_config},
        )

    return on_the_day_that_ended


benchmark_job = daily_job("benchmark_job", benchmark_results, benchmark_checks)


def benchmark_schedule(settings: BenchmarkScheduleSettings) -> dg.ScheduleDefinition:
    return daily_schedule(
        "benchmark_schedule",
        benchmark_job,
        (settings.cron, settings.status),
        {"benchmark_results": {"config": {"suite": settings.suite}}},
        "benchmark",
        "Daily benchmark (FLEET_BENCHMARK_CRON, FLEET_BENCHMARK_SUITE) on the configured model backend.",
    )
