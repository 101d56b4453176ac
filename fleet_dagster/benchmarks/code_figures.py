"""A code task's winner under each method, and its row once the hidden tests have graded that winner."""

import ast
from typing import Any

from fleet_dagster.benchmarks.figures import majority, task_row
from fleet_dagster.benchmarks.suites import BenchmarkTask
from fleet_dagster.core.code_task import written_solution
from fleet_dagster.core.execution import ExecutionResult
from fleet_dagster.core.outcome import DeliberationOutcome
from fleet_dagster.core.records import CouncilResult, Proposal


def normalized(code: str) -> str:
    """What two solutions share when they are the same program: the parsed code with layout and comments gone
    (`ast.dump`), or the text without its whitespace when it does not parse."""
    try:
        return ast.dump(ast.parse(code))
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # model text: any shape, nested any depth
        return "".join(code.split())


def solution_key(answer: str | None, entry_point: str) -> str | None:
    """The vote an answer casts: its solution (code_task.written_solution's rule), normalized; None without one."""
    code = written_solution(answer or "", entry_point)
    return None if code is None else normalized(code)


def code_winner(task: BenchmarkTask, councils: list[CouncilResult]) -> Proposal | None:
    """The method's winning solution: the solution council's winner; for `vote`, majority vote over the model's
    outputs: the solution most of its samples write, once normalized, a tie to the better-ranked sample's."""
    council = next((c for c in councils if c.role == task.roles[0]), None)
    if council is None:
        return None
    if task.mode == "vote":
        return majority(council.proposals, lambda answer: solution_key(answer, task.entry_point or ""))
    return council.winner


def code_row(task: BenchmarkTask, outcome: DeliberationOutcome, hidden: ExecutionResult) -> dict[str, Any]:
    """The method's row: correct when its winner passes every hidden test (not graded when no sandbox could run
    it); the tokens of all its calls, every council's."""
    return {
        **task_row(task, outcome),
        "method": task.mode,
        "tokens": outcome.total_tokens,
        "hidden": hidden.verdict,
        "hidden_passed": hidden.passed,
        "correct": None if hidden.verdict == "unavailable" else hidden.verdict == "passed",
    }
