"""ab_test_results: a daily A/B test of two arms on the quality or code suite, its check, job and schedule."""

from typing import Any

import dagster as dg
from pydantic import Field

from fleet_dagster.benchmarks.ab_settings import ABScheduleSettings
from fleet_dagster.benchmarks.ab_test import ABSuite, Arm, ab_markdown
from fleet_dagster.benchmarks.assets import daily_job, daily_partitions, daily_schedule
from fleet_dagster.benchmarks.history import summaries_by_partition
from fleet_dagster.llm.resources import LLMResource
from fleet_dagster.ray_cluster.resources import RayClusterResource

AB_ASSET_KEY = dg.AssetKey("ab_test_results")


class ABTestConfig(dg.Config):
    suite: ABSuite = Field(default="quality", description="Which suite's tasks the arms run.")
    arm_a: str = Field(default="", description="Arm A: 'key=value,...' of models (joined by +), role, selection, "
                       "agents, rounds; empty: the suite's own shape.")  # fmt: skip
    arm_b: str = Field(default="", description="Arm B, as arm A.")
    max_tasks: int | None = Field(default=None, description="Only the first N tasks (default: the suite's count).")


def ab_history(instance: dg.DagsterInstance) -> list[tuple[str, dict[str, Any], int]]:
    """(partition, summary, storage id) of each materialized partition, the latest of each, oldest partition first."""
    return summaries_by_partition(instance, AB_ASSET_KEY)


def history_table(history: list[tuple[str, dict[str, Any]]]) -> str:
    """One line per partition: the arms, their accuracies and the verdict."""
    lines = [
        "| partition | suite | A | B | accuracy A | accuracy B | tasks | p | verdict |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for partition, summary in history:
        a, b = (arm["accuracy"] for arm in summary["arms"])
        accuracies = ["-" if x is None else f"{100 * x:.1f} %" for x in (a, b)]
        specs = [spec.replace("|", r"\|") or "-" for spec in (summary["spec_a"], summary["spec_b"])]
        lines.append(
            f"| {partition} | {summary['suite']} | {specs[0]} | {specs[1]} | {accuracies[0]} | {accuracies[1]} "
            f"| {summary['paired']} | {summary['p_value']:.3g} | {summary['verdict']} |"
        )
    return "\n".join(lines)


@dg.asset(
    key=AB_ASSET_KEY,
    partitions_def=daily_partitions,
    description="Two arms (models, role, selection, council size) on the same seeded tasks of a suite, paired "
    "task by task: each arm's accuracy and McNemar's exact test of the difference, one partition per day.",
)
def ab_test_results(
    context: dg.AssetExecutionContext, config: ABTestConfig, ray_cluster: RayClusterResource, llm: LLMResource
) -> dg.Output[Any]:  # a pandas DataFrame: Dagster resolves the annotation where the definitions load
    # The runner (pandas) and the plot (matplotlib) are imported here, not with the definitions, which every
    # run process loads: a deliberation's run needs neither.
    from fleet_dagster.benchmarks.ab_plots import ab_accuracy
    from fleet_dagster.benchmarks.ab_runner import run_ab

    arm_a, arm_b = Arm.parse(config.arm_a), Arm.parse(config.arm_b)
    frame, summary = run_ab(
        config.suite,
        arm_a,
        arm_b,
        llm,
        limit=config.max_tasks,
        on_task=lambda task, row: context.log.info(f"{task.name} ({row['arm']}): correct {row['correct']}"),
    )
    specs = (arm_a.label, arm_b.label)
    earlier = [(p, s) for p, s, _ in ab_history(context.instance) if p < context.partition_key]
    return dg.Output(
        frame,
        metadata={
            "summary": dg.MetadataValue.json(summary),
            "verdict": summary["verdict"],
            "p_value": summary["p_value"],
            "accuracy_a": summary["arms"][0]["accuracy"],
            "accuracy_b": summary["arms"][1]["accuracy"],
            "paired": summary["paired"],
            "unpaired": summary["unpaired"],
            "backend": llm.description,
            "ab_test": dg.MetadataValue.md(ab_markdown(summary, specs)),
            "accuracy_by_arm": dg.MetadataValue.md(ab_accuracy(summary, specs)),
            "history": dg.MetadataValue.md(history_table([*earlier[-29:], (context.partition_key, summary)])),
            "results": dg.MetadataValue.md(frame.to_markdown(index=False)),
        },
    )


def check_ab(instance: dg.DagsterInstance) -> dg.AssetCheckResult:
    """The newest partition's test: fails when a task went unpaired or ungraded (the test compared fewer tasks
    than it ran); warns, with the verdict, when B is significantly worse than A."""
    history = ab_history(instance)
    if not history:
        return dg.AssetCheckResult(passed=False, description="no A/B test materialized")
    partition, summary, _ = max(history, key=lambda item: item[2])
    figures = {key: summary[key] for key in ("paired", "unpaired", "b", "c", "p_value", "verdict")}
    metadata = {**figures, "partition": partition}
    if summary["unpaired"] or not summary["paired"]:
        return dg.AssetCheckResult(
            passed=False,
            metadata=metadata,
            description=f"{summary['unpaired']} tasks not graded in both arms ({summary['paired']} paired)",
        )
    if summary["verdict"] == "A better":
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            metadata=metadata,
            description=f"B is significantly worse than A: {summary['verdict']} (p = {summary['p_value']:.3g})",
        )
    return dg.AssetCheckResult(passed=True, metadata=metadata, description=summary["verdict"])


@dg.asset_check(
    asset=AB_ASSET_KEY,
    description="Every task paired and graded in both arms; warns when B is significantly worse than A.",
)
def ab_test_sound(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    return check_ab(context.instance)


ab_test_checks = [ab_test_sound]

ab_test_job = daily_job("ab_test_job", ab_test_results, ab_test_checks)


def ab_test_schedule(settings: ABScheduleSettings) -> dg.ScheduleDefinition:
    config = settings.model_dump(include={"suite", "arm_a", "arm_b", "max_tasks"})
    return daily_schedule(
        "ab_test_schedule",
        ab_test_job,
        (settings.cron, settings.status),
        {"ab_test_results": {"config": config}},
        "ab-test",
        "Daily A/B test (FLEET_AB_CRON, FLEET_AB_SUITE, FLEET_AB_ARM_A, FLEET_AB_ARM_B).",
    )
