"""Runs a suite's tasks one after another (each deliberation is concurrent inside) and tabulates them."""

import time
import uuid
from collections.abc import Callable
from typing import Any

import pandas as pd

from fleet_dagster.benchmarks.figures import method_rows, ok_latencies, summary
from fleet_dagster.benchmarks.suites import BenchmarkTask, SuiteChoice, suite_tasks
from fleet_dagster.core.outcome import deliberation_outcome, failed_calls_summary
from fleet_dagster.core.request import parse_request
from fleet_dagster.llm.resources import LLMResource
from fleet_dagster.ray_cluster.deliberate import deliberate_on_ray
from fleet_dagster.ray_cluster.model_endpoint import checked_model_endpoint


def run_suite(
    suite: SuiteChoice,
    llm: LLMResource,
    *,
    limit: int | None = None,
    on_task: Callable[[BenchmarkTask, dict[str, Any]], None] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Returns one row per task and method, and the run's summary (pooled call latencies, failure rate, the
    quality table). A served model (--llm-url) gets the quality questions meant for real models."""
    tasks = suite_tasks(suite, served_model=llm.served_endpoint() is not None)[:limit]
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
                "selection": task.selection,
                "deliberation_id": f"bench-{task.name}-{uuid.uuid4().hex[:8]}",
            }
        )
        # Streaming measures the time to first token.
        cap = min(task.max_tokens, endpoint.max_tokens_cap or task.max_tokens)
        task_endpoint = endpoint.model_copy(update={"stream": True, "max_tokens_cap": cap})
        started = time.perf_counter()
        councils = deliberate_on_ray(request, task_endpoint, llm.call_timeout_s)
        outcome = deliberation_outcome(request, councils, (time.perf_counter() - started) * 1000, llm.prices())
        task_rows = method_rows(task, outcome, councils)
        latencies += ok_latencies(councils)
        all_councils += councils
        rows += task_rows
        if on_task is not None:
            on_task(task, task_rows[0])
    figures = {**summary(rows, latencies), "call_errors": failed_calls_summary(all_councils), "model_notes": notes}
    return pd.DataFrame(rows), figures
