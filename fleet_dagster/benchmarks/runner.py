"""Runs a suite's tasks one after another (each deliberation is concurrent inside) and tabulates them."""

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import pandas as pd

from fleet_dagster.benchmarks.code_figures import code_row, code_winner
from fleet_dagster.benchmarks.figures import method_rows, ok_latencies, summary
from fleet_dagster.benchmarks.suites import BenchmarkTask, SuiteChoice, suite_tasks
from fleet_dagster.core.code_task import no_code, run_of, written_solution
from fleet_dagster.core.execution import ExecutionResult
from fleet_dagster.core.outcome import DeliberationOutcome, deliberation_outcome, failed_calls_summary
from fleet_dagster.core.records import CouncilResult
from fleet_dagster.core.request import DeliberationRequest, parse_request
from fleet_dagster.llm.endpoint import LLMEndpoint
from fleet_dagster.llm.preflight import served_roles_endpoint
from fleet_dagster.llm.resources import LLMResource
from fleet_dagster.ray_cluster.deliberate import deliberate_on_ray
from fleet_dagster.ray_cluster.model_endpoint import checked_model_endpoint
from fleet_dagster.ray_cluster.sandbox_runs import SandboxRuns


def hidden_run(task: BenchmarkTask, request: DeliberationRequest, councils: list[CouncilResult]) -> ExecutionResult:
    """The method's winning solution run against the task's hidden tests on a sandbox node, as every run of model
    code is: never in this process."""
    winner = code_winner(task, councils)
    code = written_solution(winner.content or "", task.entry_point or "") if winner else None
    if code is None:
        return no_code(f"the winner defines no {task.entry_point}")
    return asyncio.run(SandboxRuns().run(run_of(request, code, task.hidden_tests)))


def task_rows(
    task: BenchmarkTask, request: DeliberationRequest, outcome: DeliberationOutcome, councils: list[CouncilResult]
) -> list[dict[str, Any]]:
    if task.entry_point is None:
        return method_rows(task, outcome, councils)
    return [code_row(task, outcome, hidden_run(task, request, councils))]


def checked_endpoints(
    llm: LLMResource, tasks: list[BenchmarkTask]
) -> tuple[dict[tuple[str, ...], LLMEndpoint], list[str]]:
    """Where the calls of tasks that name the same agent models go (none named: each role profile's), decided once
    per such group as for any deliberation, and the notes of what was decided. A model a task names must be served
    as named (the one-model fallback stands in for a profile's model only). Raises PreflightError."""
    endpoints: dict[tuple[str, ...], LLMEndpoint] = {}
    notes: list[str] = []
    served = llm.served_endpoint()
    for models in dict.fromkeys(tuple(task.agent_models) for task in tasks):
        roles = sorted({role for task in tasks if tuple(task.agent_models) == models for role in task.roles})
        if models and served is not None:
            endpoints[models], decided = served_roles_endpoint(served, roles, agent_models=list(models))
        else:
            endpoints[models], decided = checked_model_endpoint(llm, roles)
        notes += [note for note in decided if note not in notes]
    return endpoints, notes


def task_request(task: BenchmarkTask) -> DeliberationRequest:
    return parse_request(
        {
            "task": task.task,
            "roles": task.roles,
            "agents_per_role": task.agents,
            "rounds": task.rounds,
            "requirements": task.requirements,
            "selection": task.selection,
            "deliberation_id": f"bench-{task.name}-{uuid.uuid4().hex[:8]}",
            # A code task: the hidden tests stay here, only the tests the method shows go out.
            **({"entry_point": task.entry_point, "tests": task.tests} if task.entry_point else {}),
            "agent_models": task.agent_models,
        }
    )


def measure_task(
    task: BenchmarkTask, endpoint: LLMEndpoint, llm: LLMResource
) -> tuple[list[dict[str, Any]], DeliberationOutcome, list[CouncilResult]]:
    """One task deliberated on Ray and graded: its rows (task_rows), its outcome and its councils."""
    request = task_request(task)
    # Streaming measures the time to first token.
    cap = min(task.max_tokens, endpoint.max_tokens_cap or task.max_tokens)
    task_endpoint = endpoint.model_copy(update={"stream": True, "max_tokens_cap": cap})
    started = time.perf_counter()
    councils = deliberate_on_ray(request, task_endpoint, llm.call_timeout_s)
    outcome = deliberation_outcome(request, councils, (time.perf_counter() - started) * 1000, llm.prices())
    return task_rows(task, request, outcome, councils), outcome, councils


def run_suite(
    suite: SuiteChoice,
    llm: LLMResource,
    *,
    limit: int | None = None,
    on_task: Callable[[BenchmarkTask, dict[str, Any]], None] | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Returns one row per task and method, and the run's summary (pooled call latencies, failure rate, the
    quality and code tables). A served model (--llm-url) gets the quality questions and code tasks meant for real
    models."""
    tasks = suite_tasks(suite, served_model=llm.served_endpoint() is not None)[:limit]
    endpoints, notes = checked_endpoints(llm, tasks)
    rows, latencies, all_councils = [], [], []
    for task in tasks:
        measured, _, councils = measure_task(task, endpoints[tuple(task.agent_models)], llm)
        latencies += ok_latencies(councils)
        all_councils += councils
        rows += measured
        if on_task is not None:
            on_task(task, measured[0])
    figures = {**summary(rows, latencies), "call_errors": failed_calls_summary(all_councils), "model_notes": notes}
    return pd.DataFrame(rows), figures
