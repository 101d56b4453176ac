"""The code benchmark's own tests, checked in the real bubblewrap sandbox (no mocks): every task's reference
solution passes its shown and its hidden tests, and a solution that only memorized the shown tests fails the
hidden ones: they grade what the agents could not have seen."""

import ast
import asyncio
import shutil

import pytest

from fleet_dagster.benchmarks.code_tasks import MODULE, CodeTask
from fleet_dagster.benchmarks.suites import code_task_set
from fleet_dagster.core.execution import ExecutionJob, ExecutionResult
from fleet_dagster.sandbox.runner import BubblewrapRunner

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")


def memorized(task: CodeTask) -> str:
    """A solution that answers exactly the calls of the shown asserts, from a table, and None to anything else."""
    cases = [
        node.test
        for node in ast.walk(ast.parse(task.shown_tests))
        if isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare)
    ]
    table = "".join(
        f"    if list(args) == [{', '.join(ast.unparse(a) for a in case.left.args)}]:\n"
        f"        return {ast.unparse(case.comparators[0])}\n"
        for case in cases
        if isinstance(case.left, ast.Call)
    )
    return f"def {task.entry_point}(*args):\n{table}    return None\n"


def run_all(jobs: list[tuple[str, str]]) -> list[ExecutionResult]:
    async def run() -> list[ExecutionResult]:
        runner = BubblewrapRunner(max_concurrent=2)
        return await asyncio.gather(
            *(runner.run(ExecutionJob(module=MODULE, solution=solution, tests=tests)) for solution, tests in jobs)
        )

    return asyncio.run(run())


@pytest.mark.parametrize("served", [False, True], ids=["generated", "served"])
def test_references_pass_and_memorized_answers_fail_the_hidden_tests(served: bool):
    tasks = code_task_set(served_model=served)
    jobs = [
        job
        for task in tasks
        for job in (
            (task.reference, task.shown_tests),
            (task.reference, task.hidden_tests),
            (memorized(task), task.shown_tests),
            (memorized(task), task.hidden_tests),
        )
    ]
    results = iter(run_all(jobs))
    for task in tasks:
        shown, hidden, memorized_shown, memorized_hidden = (next(results) for _ in range(4))
        assert (shown.verdict, shown.total) == ("passed", 1), (task.name, shown)
        assert hidden.verdict == "passed" and 3 <= hidden.total <= 5, (task.name, hidden)
        assert memorized_shown.verdict == "passed", (task.name, memorized_shown)
        assert memorized_hidden.verdict in ("failed", "errored"), (task.name, memorized_hidden)
