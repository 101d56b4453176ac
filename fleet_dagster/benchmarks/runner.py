"""Runs a suite's tasks one after another (each deliberation is concurrent inside) and tabulates them."""

import time
import uuid
from collections.abc import Callable
from typing import Any

import pandas as pd

from fleet_dagster.benchmarks.figures import ok_latencies, summary, task_row
from fleet_dagster.benchmarks.suites import BenchmarkTask, suite_tasks
from fleet_dagster.core.outcome import failed_calls_summary
from fleet_dagster.core.request import parse_request
from fleet_dagster.llm.resources import LLMResource
from fleet_dagster.ray_cluster.deliberate import deliberate_on_ray
from fleet_dagster.ray_cluster.model_endpoint import checked_model_endpoint


def run_suite(
    suite: str,
    llm: LLMResource,
    *,
    limit: int | None = None,
    on_task: Callable[[BenchmarkTask, dict[str, Any]], None] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Returns one row per task and the run's summary (pooled call latencies, failure rate, accuracy)."""
    tasks = suite_tasks(suite)[:limit]
    # The model of each role decided once, as for any deliberation (raises PreflightError when not served).
    endpoint, notes = checked_model_endpoint(llm, sorted({role for task in tasks for role in task.roles}))
    rows, latencies, all_councils = [], [], []
    for task in tasks:
        request = parse_request(
            {
                "task": task.task,
                "roles": task.roles,
                "agents_per_role": task.agents,
                "rounds": task.rounds,
                "requirements": task.requirements,
                "deliberation_id": f"bench-{task.name}-{uuid.uuid4().hex[:8]}",
            }
        )
        # Streaming measures the time to first token.
        cap = min(task.max_tokens, endpoint.max_tokens_cap or task.max_tokens)
        task_endpoint = endpoint.model_copy(update={"stream": True, "max_tokens_cap": cap})
        started = time.perf_counter()
        councils = deliberate_on_ray(request, task_endpoint, llm.call_timeout_s)
        row = task_row(task, councils, time.perf_counter() - started)
        latencies += ok_latencies(councils)
        all_councils += councils
        rows.append(row)
        if on_task is not None:
            on_task(task, row)
    figures = {**summary(rows, latencies), "call_errors": failed_calls_summary(all_councils), "model_notes": notes}
    return pd.DataFrame(rows), figures
