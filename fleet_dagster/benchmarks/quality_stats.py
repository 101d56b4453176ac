"""Accuracy per method with its uncertainty, from the quality benchmark's rows."""

import math
from typing import Any


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95 % by default): unlike p ± z·se it stays inside [0, 1] and is
    honest at 0 or all correct, which a few dozen tasks hit often."""
    if trials == 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half_width = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    # At none or all correct the bound is exactly 0 or 1; floating point lands a hair inside (1 - 1e-16).
    low = 0.0 if successes == 0 else centre - half_width
    high = 1.0 if successes == trials else centre + half_width
    return low, high


def method_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per method, in the order methods first appear; rows not graded (`correct` None) are left out."""
    by_method: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("correct") is not None:
            by_method.setdefault(row["method"], []).append(row)
    table = []
    for method, graded in by_method.items():
        tasks, correct = len(graded), sum(bool(row["correct"]) for row in graded)
        low, high = wilson_interval(correct, tasks)
        table.append(
            {
                "method": method,
                "tasks": tasks,
                "correct": correct,
                "accuracy": correct / tasks,
                "ci_low": low,
                "ci_high": high,
                "tokens_per_task": round(sum(row["tokens"] for row in graded) / tasks),
            }
        )
    return table


def markdown_table(table: list[dict[str, Any]]) -> str:
    lines = [
        "| method | tasks | correct | accuracy [95 % CI] | tokens per task |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for row in table:
        accuracy = f"{100 * row['accuracy']:.1f} % [{100 * row['ci_low']:.1f}, {100 * row['ci_high']:.1f}]"
        lines.append(f"| {row['method']} | {row['tasks']} | {row['correct']} | {accuracy} | {row['tokens_per_task']} |")
    return "\n".join(lines)
