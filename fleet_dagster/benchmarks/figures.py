"""What one benchmark task measured, as one table row."""

import statistics
from typing import Any

from fleet_dagster.benchmarks.grading import extract_answer
from fleet_dagster.benchmarks.suites import BenchmarkTask
from fleet_dagster.core.outcome import critical_path_ms
from fleet_dagster.core.records import CouncilResult


def _percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def ok_latencies(councils: list[CouncilResult]) -> list[float]:
    return [call.latency_ms for council in councils for call in council.calls if call.ok]


def task_row(task: BenchmarkTask, councils: list[CouncilResult], wall_s: float) -> dict[str, Any]:
    calls = [call for council in councils for call in council.calls]
    latencies = ok_latencies(councils)
    failures = sum(not call.ok for call in calls)
    first_tokens = [call.first_token_ms for call in calls if call.first_token_ms is not None]
    generated = sum(call.completion_tokens for call in calls if call.ok)
    busy_s = sum(latencies) / 1000
    winner = councils[0].winner if councils else None
    answer = extract_answer(winner.content if winner else None) if task.expected is not None else None
    return {
        "suite": task.suite,
        "task": task.name,
        "mode": task.mode,
        "shape": f"{len(task.roles)}x{task.agents}x{task.rounds}",
        "wall_s": round(wall_s, 3),
        "calls": len(calls),
        "failures": failures,
        "failure_rate": round(failures / len(calls), 4) if calls else 1.0,
        "latency_p50_ms": _percentile(latencies, 0.5),
        "latency_p95_ms": _percentile(latencies, 0.95),
        "ttft_p50_ms": _percentile(first_tokens, 0.5),
        "tokens_per_s": round(generated / busy_s, 2) if busy_s else None,
        "parallel_efficiency": round(critical_path_ms(councils) / (wall_s * 1000), 3) if wall_s else None,
        "expected": task.expected,
        "answer": answer,
        "correct": None if task.expected is None else answer == task.expected,
    }


def summary(rows: list[dict[str, Any]], call_latencies_ms: list[float]) -> dict[str, float | None]:
    """Run-level figures the asset checks compare across partitions."""
    quality = [r for r in rows if r["suite"] == "quality"]

    def accuracy(mode: str) -> float | None:
        graded = [r["correct"] for r in quality if r["mode"] == mode]
        return round(sum(graded) / len(graded), 4) if graded else None

    calls = sum(r["calls"] for r in rows)
    return {
        "latency_p50_ms": _percentile(call_latencies_ms, 0.5),
        "latency_p95_ms": _percentile(call_latencies_ms, 0.95),
        "failure_rate": round(sum(r["failures"] for r in rows) / calls, 4) if calls else None,
        "accuracy_single": accuracy("single"),
        "accuracy_deliberation": accuracy("deliberation"),
        "median_wall_s": statistics.median(r["wall_s"] for r in rows) if rows else None,
    }
