"""The rules behind the benchmark_results asset checks: plain functions of the history of summaries."""

import statistics
from dataclasses import dataclass
from typing import Any, Literal

from fleet_dagster.benchmarks.quality_stats import wilson_interval

LATENCY_TOLERANCE = 1.20
TRAILING_PARTITIONS = 7
MAX_FAILURE_RATE = 0.05


@dataclass
class Verdict:
    passed: bool
    description: str
    figures: dict[str, Any]
    # How a failed check is reported: "warn" for a difference within the noise, "error" for one beyond it.
    severity: Literal["error", "warn"] = "error"


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


def execution_vs_single(current: dict[str, Any]) -> Verdict:
    """Is running the code worth it? On the code suite, the winner chosen by running the solutions against the
    request's tests must pass the hidden tests more often than one agent's solution."""
    single, execution = current.get("accuracy_code_single"), current.get("accuracy_code_execution")
    figures = {"accuracy_code_single": single, "accuracy_code_execution": execution}
    if single is None or execution is None:
        return Verdict(True, "the code suite did not run in this partition", figures)
    if execution <= single:
        return Verdict(False, f"selection by execution {execution:.2%} is not above single-agent {single:.2%}", figures)
    return Verdict(True, f"selection by execution {execution:.2%} > single-agent {single:.2%}", figures)


def failure_rate(current: dict[str, Any]) -> Verdict:
    rate = current.get("failure_rate")
    figures = {"failure_rate": rate, "limit": MAX_FAILURE_RATE}
    if rate is None:
        return Verdict(False, "no agent call was made", figures)
    if rate > MAX_FAILURE_RATE:
        return Verdict(False, f"failure rate {rate:.2%} is above {MAX_FAILURE_RATE:.0%}", figures)
    return Verdict(True, f"failure rate {rate:.2%} within {MAX_FAILURE_RATE:.0%}", figures)


def deliberation_vs_majority_vote(current: dict[str, Any]) -> Verdict:
    """Is a council worth its tokens over self-consistency, which spends tokens on the same model without any
    talking? Below vote within the noise (the 95% Wilson intervals overlap) warns; entirely below fails."""
    keys = (
        "accuracy_deliberation",
        "accuracy_vote",
        "tokens_deliberation",
        "tokens_vote",
        "tasks_deliberation",
        "tasks_vote",
    )
    figures: dict[str, Any] = {key: current.get(key) for key in keys}
    if any(value is None for value in figures.values()):
        return Verdict(True, "the quality suite did not run in this partition", figures)
    deliberation, vote = figures["accuracy_deliberation"], figures["accuracy_vote"]
    # The summary keeps accuracies, not counts; accuracy x tasks gives the counts back, up to rounding.
    low, high = wilson_interval(round(deliberation * figures["tasks_deliberation"]), figures["tasks_deliberation"])
    vote_low, vote_high = wilson_interval(round(vote * figures["tasks_vote"]), figures["tasks_vote"])
    tokens_ratio = figures["tokens_deliberation"] / figures["tokens_vote"] if figures["tokens_vote"] else None
    figures |= {
        "ci_deliberation": [round(low, 4), round(high, 4)],
        "ci_vote": [round(vote_low, 4), round(vote_high, 4)],
        "tokens_ratio": round(tokens_ratio, 3) if tokens_ratio is not None else None,
    }
    comparison = (
        f"deliberation {deliberation:.1%} at {figures['tokens_deliberation']} tokens per task vs majority vote "
        f"{vote:.1%} at {figures['tokens_vote']} ("
        + (f"{tokens_ratio:.2f}x the tokens)" if tokens_ratio is not None else "vote spent no tokens)")
    )
    if deliberation >= vote:
        return Verdict(True, f"{comparison}: deliberation at least as accurate", figures)
    if high < vote_low:
        return Verdict(False, f"{comparison}: deliberation's 95% interval lies entirely below vote's", figures)
    return Verdict(False, f"{comparison}: below vote, within the noise (the 95% intervals overlap)", figures, "warn")
