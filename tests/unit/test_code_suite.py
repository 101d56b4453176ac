"""The code benchmark without a model or a sandbox: its generated and served tasks, the suite's five methods, the
vote over solutions, the rows and the regression verdict. The tasks' own tests are run against their reference
solutions in the real sandbox in tests/sandbox/test_code_suite_tasks.py."""

import ast

import pytest

from fleet_dagster.benchmarks import regression
from fleet_dagster.benchmarks.code_figures import code_row, code_winner, normalized, solution_key
from fleet_dagster.benchmarks.code_tasks import KINDS, MODULE, generated_code_tasks
from fleet_dagster.benchmarks.figures import summary
from fleet_dagster.benchmarks.suites import CODE_METHODS, EXECUTION_METHOD, code_task_set, suite_tasks
from fleet_dagster.core.execution import ExecutionResult, TestOutcome
from fleet_dagster.core.outcome import deliberation_outcome
from fleet_dagster.core.records import AgentCall, CouncilResult, Proposal, Selection
from fleet_dagster.core.request import parse_request


def test_generated_tasks_are_seeded_and_take_the_kinds_in_turn():
    tasks = generated_code_tasks(2026, 40)
    assert tasks == generated_code_tasks(2026, 40) and tasks != generated_code_tasks(2027, 40)
    assert [t.name.rsplit("-", 1)[0] for t in tasks[: len(KINDS)]] == list(KINDS)
    assert len({t.name for t in tasks}) == 40
    # Random operands: the 40 tasks are 40 different pairs of spec and tests.
    assert len({(t.spec, t.hidden_tests) for t in tasks}) == 40
    assert len(KINDS) >= 12


def calls(tests: str) -> list[tuple[str, list[str]]]:
    """(test function, the source of the arguments of every call its asserts make)."""
    module = ast.parse(tests)
    return [
        (
            function.name,
            [
                ast.unparse(node.test.left)
                for node in ast.walk(function)
                if isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare)
            ],
        )
        for function in module.body
        if isinstance(function, ast.FunctionDef)
    ]


@pytest.mark.parametrize("served", [False, True], ids=["generated", "served"])
def test_hidden_tests_ask_other_inputs_than_the_shown(served: bool):
    tasks = code_task_set(served_model=served)
    assert len(tasks) >= (24 if served else 40) and len({t.name for t in tasks}) == len(tasks)
    for task in tasks:
        (shown,), hidden = calls(task.shown_tests), calls(task.hidden_tests)
        assert 1 <= len(shown[1]) <= 2 and 3 <= len(hidden) <= 5, task.name
        assert all(name.startswith("test_") and len(asserts) == 1 for name, asserts in hidden), task.name
        assert set(shown[1]).isdisjoint(call for _, (call,) in hidden), task.name
        for tests in (task.shown_tests, task.hidden_tests):
            assert tests.startswith(f"from {MODULE} import {task.entry_point}\n")
        assert task.spec.startswith(f"def {task.entry_point}(") and f"def {task.entry_point}(" in task.reference


def test_the_code_suite_is_each_task_by_each_method():
    tasks = suite_tasks("code")
    assert len(tasks) == 40 * len(CODE_METHODS) and [t.mode for t in tasks[:5]] == list(CODE_METHODS)
    by_method = {t.mode: t for t in tasks[:5]}
    assert by_method["single"].agents == 1 and by_method["single"].rounds == 0
    assert by_method["vote"].agents == 3 and by_method["vote"].rounds == 0
    deliberations = [by_method[m] for m in ("deliberation-score", "execution-request-tests", "execution-qa-tests")]
    assert (
        len({(t.agents, t.rounds) for t in deliberations}) == 1 and by_method["deliberation-score"].selection == "score"
    )
    qa_tests = by_method["execution-qa-tests"]
    assert qa_tests.roles == ["DEV", "QA"] and qa_tests.selection == "execution"
    assert by_method[EXECUTION_METHOD].roles == ["DEV"] and by_method[EXECUTION_METHOD].tests
    # Only the request-tests method shows tests, and only the shown ones: hidden tests stay with the benchmark.
    assert [m for m, t in by_method.items() if t.tests] == ["execution-request-tests"]
    assert all(t.hidden_tests and t.hidden_tests != t.tests and t.entry_point for t in tasks)
    assert len({t.task for t in tasks[:5]}) == 1
    assert suite_tasks("all")[-len(tasks) :] == tasks
    assert len(suite_tasks("code", served_model=True)) >= 24 * len(CODE_METHODS)


def proposal(index: int, content: str | None, score: float) -> Proposal:
    return Proposal(
        role="DEV",
        agent_id=f"agent-dev-{index:03d}",
        round=0,
        content=content,
        temperature=0.7,
        seed=index,
        score=score,
    )


def test_normalized_code_ignores_layout_and_comments():
    assert normalized("def f(x):\n    return x+1  # one more\n") == normalized("def f(x): return x + 1")
    assert normalized("def f(x): return x + 1") != normalized("def f(x): return x + 2")
    assert normalized("def f(x) return x") == normalized("def f(x)\n  return   x")  # no parse: text sans spaces
    assert normalized("(" * 10_000) == "(" * 10_000  # too deep for the parser: still a key, never a crash
    assert solution_key("no code here", "f") is None
    assert solution_key("```python\ndef f(x):\n    return x\n```", "f") == normalized("def f(x): return x")


SOLUTION = "```python\ndef f(x):\n    return x * 2\n```"


def council(proposals: list[Proposal], winner: str, role: str = "DEV") -> CouncilResult:
    return CouncilResult(
        role=role,
        expected_agents=len(proposals),
        proposals=proposals,
        reviews=[],
        calls=[
            AgentCall(agent_id=p.agent_id, role=role, phase="propose", round=0, ok=True, tokens=10) for p in proposals
        ],
        selection=Selection(winner=winner, method="score", rationale=""),
        started_at=0,
        finished_at=1,
    )


def test_the_vote_takes_the_most_common_solution_ties_to_the_better_ranked():
    task = next(t for t in suite_tasks("code") if t.mode == "vote").model_copy(update={"entry_point": "f"})
    samples = [
        proposal(1, "```python\ndef f(x):\n    return x + x\n```", 9.0),
        proposal(2, "def f(x): return x*2", 5.0),  # the same program as the third, laid out otherwise
        proposal(3, SOLUTION, 4.0),
        proposal(4, "I cannot write that.", 8.0),
    ]
    assert code_winner(task, [council(samples, "agent-dev-001")]).agent_id == "agent-dev-002"
    tie = [samples[0], samples[2]]  # one vote each: the better-ranked sample's solution
    assert code_winner(task, [council(tie, "agent-dev-003")]).agent_id == "agent-dev-001"
    no_code = [proposal(1, "no", 1.0), proposal(2, "none", 3.0)]
    assert code_winner(task, [council(no_code, "agent-dev-001")]).agent_id == "agent-dev-002"


def test_other_methods_take_the_solution_councils_winner():
    task = next(t for t in suite_tasks("code") if t.mode == "execution-qa-tests")
    dev = council([proposal(1, SOLUTION, 1.0), proposal(2, SOLUTION, 2.0)], "agent-dev-001")
    qa = council([proposal(1, "def test_f(): pass", 1.0)], "agent-dev-001", role="QA")
    assert code_winner(task, [qa, dev]).agent_id == "agent-dev-001"
    assert code_winner(task, [qa]) is None


def rows(task, verdicts: list[str]) -> list[dict]:
    request = parse_request({"task": task.task, "roles": task.roles, "agents_per_role": 1})
    dev = council([proposal(1, SOLUTION, 1.0)], "agent-dev-001")
    outcome = deliberation_outcome(request, [dev], wall_ms=1500.0, prices={})
    hidden = [
        ExecutionResult(verdict=v, tests=[TestOutcome(name="test_f_1", outcome="passed")] if v == "passed" else [])
        for v in verdicts
    ]
    return [code_row(task, outcome, result) for result in hidden]


def test_the_hidden_verdict_grades_the_row_and_the_summary_tables_the_methods():
    tasks = {t.mode: t for t in suite_tasks("code")[:5]}
    graded = [
        *rows(tasks["single"], ["passed", "failed", "failed", "errored"]),
        *rows(tasks[EXECUTION_METHOD], ["passed", "passed", "failed", "unavailable"]),
    ]
    assert graded[0]["method"] == "single" and graded[0]["correct"] and graded[0]["hidden_passed"] == 1
    assert graded[0]["tokens"] == 10 and graded[0]["wall_s"] == 1.5 and graded[1]["hidden"] == "failed"
    assert graded[-1]["correct"] is None  # no sandbox ran it: not graded, never counted wrong
    figures = summary(graded, [])
    assert figures["accuracy_code_single"] == 0.25 and figures["accuracy_code_execution"] == 2 / 3
    assert [(m["method"], m["tasks"]) for m in figures["code_methods"]] == [("single", 4), (EXECUTION_METHOD, 3)]
    assert figures["methods"] == [] and figures["accuracy_single"] is None


def test_execution_must_beat_a_single_agent():
    def code(single, execution):
        return {"accuracy_code_single": single, "accuracy_code_execution": execution}

    assert regression.execution_vs_single(code(0.5, 0.6)).passed
    tied = regression.execution_vs_single(code(0.5, 0.5))
    assert not tied.passed and "not above" in tied.description
    assert not regression.execution_vs_single(code(0.5, 0.4)).passed
    skipped = regression.execution_vs_single({"accuracy_single": 0.3})
    assert skipped.passed and "did not run" in skipped.description
