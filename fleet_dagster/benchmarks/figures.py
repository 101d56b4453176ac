"""What one benchmark task measured, as one table row."""

import statistics
from collections import Counter
from collections.abc import Callable, Hashable
from typing import Any

from fleet_dagster.benchmarks.grading import extract_answer
from fleet_dagster.benchmarks.quality_stats import method_table
from fleet_dagster.benchmarks.suites import EXECUTION_METHOD, BenchmarkTask
from fleet_dagster.core.outcome import DeliberationOutcome, percentile
from fleet_dagster.core.records import AgentCall, CouncilResult, Proposal
from fleet_dagster.core.selection import rank, select_by_score

# A vote of this many samples is read from the first ones of every larger vote: the smallest self-consistency.
SMALL_VOTE = 3


def ok_latencies(councils: list[CouncilResult]) -> list[float]:
    return [call.latency_ms for council in councils for call in council.calls if call.ok]


def task_row(task: BenchmarkTask, outcome: DeliberationOutcome) -> dict[str, Any]:
    winner = outcome.winning_content(outcome.roles[0]) if outcome.roles else None
    answer = extract_answer(winner) if task.expected is not None else None
    return {
        "suite": task.suite,
        "task": task.name,
        "mode": task.mode,
        "shape": f"{len(task.roles)}x{task.agents}x{task.rounds}",
        "wall_s": outcome.wall_time_s,
        "calls": outcome.agent_calls,
        "failures": outcome.failed_calls,
        "failure_rate": round(outcome.failed_calls / outcome.agent_calls, 4) if outcome.agent_calls else 1.0,
        "latency_p50_ms": outcome.latency_p50_ms,
        "latency_p95_ms": outcome.latency_p95_ms,
        "ttft_p50_ms": outcome.ttft_p50_ms,
        "tokens_per_s": outcome.tokens_per_s,
        "parallel_efficiency": outcome.parallel_efficiency if outcome.wall_time_s else None,
        "expected": task.expected,
        "answer": answer,
        "correct": None if task.expected is None else answer == task.expected,
    }


def _graded(row: dict[str, Any], method: str, winner: Proposal | None, calls: list[AgentCall]) -> dict[str, Any]:
    """The task's row as one method answered it: its winner's answer, and the tokens that method spent."""
    answer = extract_answer(winner.content if winner else None)
    return {
        **row,
        "method": method,
        "tokens": sum(call.tokens for call in calls),
        "answer": answer,
        "correct": answer == row["expected"],
    }


def majority(
    samples: list[Proposal], read: Callable[[str | None], Hashable | None] = extract_answer
) -> Proposal | None:
    """Self-consistency as Wang et al. 2022 read it: the answer most samples give, read the way every method is
    graded (`extract_answer`, or for code the normalized solution); a tie goes to the answer of the better-ranked
    sample, which is returned. A sample with no answer (None) is no vote; with none, the best-ranked wins."""
    ranked = rank(samples)
    answers = [read(p.content) for p in ranked]
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return ranked[0] if ranked else None
    best = max(counts, key=lambda a: (counts[a], -answers.index(a)))
    return ranked[answers.index(best)]


def method_rows(
    task: BenchmarkTask, outcome: DeliberationOutcome, councils: list[CouncilResult]
) -> list[dict[str, Any]]:
    """One row per method the task measures, of the task's outcome. A vote of N samples also gives the vote of
    its first SMALL_VOTE; a deliberation gives its winner by score and by vote (the same councils: selection is
    read, not rerun)."""
    row = task_row(task, outcome)
    if task.expected is None or not councils:
        return [{**row, "method": task.mode, "tokens": outcome.total_tokens}]
    council = councils[0]
    proposals = {p.agent_id: p for p in council.proposals}
    if task.mode == "single":
        return [_graded(row, "single", council.winner, council.calls)]
    if task.mode == "vote":
        rows = []
        for samples in sorted({min(SMALL_VOTE, task.agents), task.agents}):
            agents = sorted(proposals)[:samples]
            calls = [call for call in council.calls if call.agent_id in agents]
            rows.append(_graded(row, f"vote@{samples}", majority([proposals[a] for a in agents]), calls))
        return rows
    by_score = select_by_score(council.proposals)
    return [
        _graded(row, "deliberation", proposals.get(by_score.winner or ""), council.calls),
        _graded(row, "deliberation+vote", council.winner, council.calls),
    ]


def _largest_vote(methods: list[str]) -> str | None:
    votes = [m for m in methods if m.startswith("vote@")]
    return max(votes, key=lambda m: int(m.removeprefix("vote@")), default=None)


def summary(rows: list[dict[str, Any]], call_latencies_ms: list[float]) -> dict[str, Any]:
    """Run-level figures the asset checks compare across partitions; `methods`: the quality table,
    `code_methods`: the code suite's."""
    table = method_table([r for r in rows if r["suite"] == "quality"])
    by_method = {entry["method"]: entry for entry in table}
    code_table = method_table([r for r in rows if r["suite"] == "code"])
    by_code_method = {entry["method"]: entry for entry in code_table}
    vote = by_method.get(_largest_vote(list(by_method)) or "", {})
    deliberation, single = by_method.get("deliberation", {}), by_method.get("single", {})
    calls = sum(r["calls"] for r in rows)
    return {
        "latency_p50_ms": percentile(call_latencies_ms, 0.5),
        "latency_p95_ms": percentile(call_latencies_ms, 0.95),
        "failure_rate": round(sum(r["failures"] for r in rows) / calls, 4) if calls else None,
        "accuracy_single": single.get("accuracy"),
        "accuracy_deliberation": deliberation.get("accuracy"),
        "accuracy_vote": vote.get("accuracy"),
        "tokens_deliberation": deliberation.get("tokens_per_task"),
        "tokens_vote": vote.get("tokens_per_task"),
        "tasks_deliberation": deliberation.get("tasks"),
        "tasks_vote": vote.get("tasks"),
        "vote_method": vote.get("method"),
        "methods": table,
        "accuracy_code_single": by_code_method.get("single", {}).get("accuracy"),
        "accuracy_code_execution": by_code_method.get(EXECUTION_METHOD, {}).get("accuracy"),
        "code_methods": code_table,
        "median_wall_s": statistics.median(r["wall_s"] for r in rows) if rows else None,
    }
