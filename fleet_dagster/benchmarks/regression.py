"""The rules behind the benchmark_results asset checks: plain functions of the history of summaries."""

import statistics
from dataclasses import dataclass
from typing import Any

LATENCY_TOLERANCE = 1.20
TRAILING_PARTITIONS = 7
MAX_FAILURE_RATE = 0.05


@dataclass
class Verdict:
    passed: bool
    description: str
    figures: dict[str, Any]


def latency_regression(current: dict[str, Any], previous: list[dict[str, Any]]) -> Verdict:
    """`previous`: the summaries of earlier partitions, oldest first."""
    p95 = current.get("latency_p95_ms")
    trailing = [s["latency_p95_ms"] for s in previous[-TRAILING_PARTITIONS:] if s.get("latency_p95_ms") is not None]
    if p95 is None or not trailing:
        return Verdict(True, "no earlier partitions to compare with", {"latency_p95_ms": p95})
    median = statistics.median(trailing)
    limit = median * LATENCY_TOLERANCE
    figures = {
        "latency_p95_ms": p95,
        "trailing_median_p95_ms": median,
        "limit_ms": round(limit, 3),
        "ratio": round(p95 / median, 4) if median else None,
        "partitions_compared": len(trailing),
    }
    if p95 > limit:
        return Verdict(False, f"p95 latency {p95:.0f} ms is over 120% of the trailing median {median:.0f} ms", figures)
    return Verdict(True, f"p95 latency {p95:.0f} ms within 120% of the trailing median {median:.0f} ms", figures)


def deliberation_accuracy(current: dict[str, Any]) -> Verdict:
    single, deliberation = current.get("accuracy_single"), current.get("accuracy_deliberation")
    figures = {"accuracy_single": single, "accuracy_deliberation": deliberation}
    if single is None or deliberation is None:
        return Verdict(True, "the quality suite did not run in this partition", figures)
    if deliberation < single:
        return Verdict(False, f"deliberation accuracy {deliberation:.2%} is below single-agent {single:.2%}", figures)
    return Verdict(True, f"deliberation accuracy {deliberation:.2%} >= single-agent {single:.2%}", figures)


def failure_rate(current: dict[str, Any]) -> Verdict:
    rate = current.get("failure_rate")
    figures = {"failure_rate": rate, "limit": MAX_FAILURE_RATE}
    if rate is None:
        return Verdict(False, "no agent call was made", figures)
    if rate > MAX_FAILURE_RATE:
        return Verdict(False, f"failure rate {rate:.2%} is above {MAX_FAILURE_RATE:.0%}", figures)
    return Verdict(True, f"failure rate {rate:.2%} within {MAX_FAILURE_RATE:.0%}", figures)
