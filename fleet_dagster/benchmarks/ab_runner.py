"""Runs an A/B test of two arms on a suite's tasks, through the suites' own machinery (runner.measure_task)."""

from collections.abc import Callable
from typing import Any

import pandas as pd

from fleet_dagster.benchmarks.ab_test import AB_SHAPES, ABSuite, Arm, ab_verdict, arm_task
from fleet_dagster.benchmarks.figures import ok_latencies
from fleet_dagster.benchmarks.runner import checked_endpoints, measure_task
from fleet_dagster.benchmarks.suites import BenchmarkTask, code_suite_tasks, quality_tasks
from fleet_dagster.core.outcome import failed_calls_summary, percentile
from fleet_dagster.llm.resources import LLMResource


def ab_tasks(suite: ABSuite, served_model: bool, count: int | None = None) -> list[BenchmarkTask]:
    """The suite's tasks of the shape an A/B test compares (AB_SHAPES), one per question or code task: `count` of
    them (default: the suite's), generated afresh past the suite's own count where the suite generates them."""
    mode, _ = AB_SHAPES[suite]
    tasks = quality_tasks(served_model, count) if suite == "quality" else code_suite_tasks(served_model, count)
    return [task for task in tasks if task.mode == mode]


def _arm_row(suite: ABSuite, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The row that grades the arm; a deliberation with no council left measures only the task's own row."""
    _, method = AB_SHAPES[suite]
    return next((row for row in rows if row["method"] == method), rows[0])


def run_ab(
    suite: ABSuite,
    arm_a: Arm,
    arm_b: Arm,
    llm: LLMResource,
    *,
    limit: int | None = None,
    on_task: Callable[[BenchmarkTask, dict[str, Any]], None] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Both arms on the same seeded tasks (`limit` of them, default the suite's count), task by task, A then B:
    whatever drifts during the run (the server's load, a cache) hits both arms alike. Returns one row per task and
    arm, and the summary: ab_test.ab_verdict's figures, the arms' specs, call latencies and why calls failed."""
    served = llm.served_endpoint() is not None
    runs = [(label, arm, arm_task(task, arm)) for task in ab_tasks(suite, served, limit) for label, arm in
            (("A", arm_a), ("B", arm_b))]  # fmt: skip
    endpoints, notes = checked_endpoints(llm, [task for _, _, task in runs])
    rows: list[dict[str, Any]] = []
    latencies: list[float] = []
    all_councils = []
    for label, arm, task in runs:
        measured, outcome, councils = measure_task(task, endpoints[tuple(task.agent_models)], llm)
        row = {**_arm_row(suite, measured), "arm": label, "spec": arm.label, "cost": outcome.estimated_cost}
        rows.append(row)
        latencies += ok_latencies(councils)
        all_councils += councils
        if on_task is not None:
            on_task(task, row)
    calls = sum(row["calls"] for row in rows)
    summary = {
        "suite": suite,
        "spec_a": arm_a.label,
        "spec_b": arm_b.label,
        **ab_verdict([r for r in rows if r["arm"] == "A"], [r for r in rows if r["arm"] == "B"]),
        "latency_p50_ms": percentile(latencies, 0.5),
        "latency_p95_ms": percentile(latencies, 0.95),
        "failure_rate": round(sum(row["failures"] for row in rows) / calls, 4) if calls else None,
        "call_errors": failed_calls_summary(all_councils),
        "model_notes": notes,
    }
    return pd.DataFrame(rows), summary
