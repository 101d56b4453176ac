"""Benchmark suites (`resources/benchmarks/*.yaml`) turned into tasks."""

from collections.abc import Callable
from functools import cache
from typing import Literal, get_args

import yaml
from pydantic import BaseModel, Field

from fleet_dagster.benchmarks.code_tasks import CodeTask, generated_code_tasks, served_code_tasks
from fleet_dagster.benchmarks.quality_tasks import Question, calibrated_questions, du_arithmetic_questions
from fleet_dagster.core.records import SelectionMethod
from fleet_dagster.core.resource_files import resources_dir

Suite = Literal["speed", "quality", "code"]
SuiteChoice = Literal[Suite, "all"]  # "all": every suite, one after another
SUITES: tuple[str, ...] = get_args(Suite)
SUITE_CHOICES: tuple[str, ...] = get_args(SuiteChoice)
ANSWER_INSTRUCTION = "Work it out step by step, then end with a line 'Answer: <number>'."

# How the code suite picks a task's winning solution (resources/benchmarks/code.yaml says why each).
CodeMethod = Literal["single", "vote", "deliberation-score", "execution-request-tests", "execution-qa-tests"]
CODE_METHODS: tuple[str, ...] = get_args(CodeMethod)
# Selection by execution against the request's tests: what the execution_better_than_single check compares with one
# agent (the done criterion of code that runs). The QA-written tests' method is tabled beside it: the embedded model
# writes no usable tests (README, "Code benchmark"), so a check on it would fail every day for the model's sake.
EXECUTION_METHOD: CodeMethod = "execution-request-tests"


class Shape(BaseModel):
    name: str
    roles: list[str]
    agents: int = Field(ge=1, le=16)
    rounds: int = Field(ge=0, le=5)
    max_tokens: int = Field(ge=16)


class BenchmarkTask(BaseModel):
    suite: Suite
    name: str
    # single: one agent; vote: `agents` independent samples, the most frequent answer wins; deliberation; or the
    # code suite's other methods (CodeMethod).
    mode: Literal["deliberation", CodeMethod]
    task: str
    roles: list[str]
    agents: int
    rounds: int
    max_tokens: int
    selection: SelectionMethod = "score"
    # The models the agents take in turn (the request's agent_models); none: each role's own.
    agent_models: list[str] = Field(default_factory=list)
    requirements: list[str] = Field(default_factory=list)
    expected: int | None = None
    # A code task: the function, the tests shown to the agents (the request's tests; none for a method that
    # shows none) and the hidden tests that grade the winner, which no request carries.
    entry_point: str | None = None
    tests: str = ""
    hidden_tests: str = ""


@cache
def _load(name: str) -> dict:
    return yaml.safe_load((resources_dir() / "benchmarks" / f"{name}.yaml").read_text())


def speed_tasks() -> list[BenchmarkTask]:
    data = _load("speed")
    return [
        BenchmarkTask(
            suite="speed",
            name=shape.name,
            mode="deliberation",
            task=data["task"],
            roles=shape.roles,
            agents=shape.agents,
            rounds=shape.rounds,
            max_tokens=shape.max_tokens,
            requirements=data.get("requirements", []),
        )
        for shape in (Shape.model_validate(s) for s in data["shapes"])
    ]


def quality_questions(served_model: bool = False, count: int | None = None) -> list[Question]:
    """The embedded model gets the calibrated questions, a served one Du et al.'s; `count` of them (default: the
    suite's), the first ones the same whatever the count."""
    data = _load("quality")
    make_questions = du_arithmetic_questions if served_model else calibrated_questions
    return make_questions(data["seed"], data["count"] if count is None else count)


def quality_tasks(served_model: bool = False, count: int | None = None) -> list[BenchmarkTask]:
    """Each question three times: one agent, a vote of `vote_samples` samples, a deliberation (whose winner is
    read both by score and by vote)."""
    data = _load("quality")
    shapes = (
        ("single", 1, 0, "score"),
        ("vote", data["vote_samples"], 0, "vote"),
        ("deliberation", data["agents"], data["rounds"], "vote"),
    )
    return [
        BenchmarkTask(
            suite="quality",
            name=question.name,
            mode=mode,
            task=f"{question.question}\n{ANSWER_INSTRUCTION}",
            roles=[data["role"]],
            agents=agents,
            rounds=rounds,
            max_tokens=data["max_tokens"],
            selection=selection,
            expected=question.answer,
        )
        for question in quality_questions(served_model, count)
        for mode, agents, rounds, selection in shapes
    ]


def _code_method_tasks(code: CodeTask, data: dict) -> list[BenchmarkTask]:
    dev, qa = data["solution_role"], data["tests_role"]
    agents, rounds = data["agents"], data["rounds"]
    # method: roles, agents per role, rounds, selection, whether the request shows the tests
    shapes: dict[CodeMethod, tuple[list[str], int, int, SelectionMethod, bool]] = {
        "single": ([dev], 1, 0, "score", False),
        # The council's own winner is not read: the most common solution is (code_figures.code_winner).
        "vote": ([dev], data["vote_samples"], 0, "score", False),
        "deliberation-score": ([dev], agents, rounds, "score", False),
        "execution-request-tests": ([dev], agents, rounds, "score", True),
        "execution-qa-tests": ([dev, qa], agents, rounds, "execution", False),
    }
    return [
        BenchmarkTask(
            suite="code",
            name=code.name,
            mode=method,
            task=code.spec,
            roles=roles,
            agents=method_agents,
            rounds=method_rounds,
            max_tokens=data["max_tokens"],
            selection=selection,
            entry_point=code.entry_point,
            tests=code.shown_tests if shows_tests else "",
            hidden_tests=code.hidden_tests,
        )
        for method, (roles, method_agents, method_rounds, selection, shows_tests) in shapes.items()
    ]


def code_task_set(served_model: bool = False, count: int | None = None) -> list[CodeTask]:
    """The code suite's tasks: the generated tiny functions for the embedded model, `count` of them (default: the
    suite's); code_served.yaml's for a served one, at most `count`."""
    if served_model:
        return served_code_tasks(_load("code_served")["tasks"])[:count]
    data = _load("code")
    return generated_code_tasks(data["seed"], data["count"] if count is None else count)


def code_suite_tasks(served_model: bool = False, count: int | None = None) -> list[BenchmarkTask]:
    """Each code task once per method (CodeMethod), graded by its hidden tests."""
    data = _load("code")
    return [task for code in code_task_set(served_model, count) for task in _code_method_tasks(code, data)]


# Each suite's tasks, for a served model or the embedded one: "all" runs them in the order of Suite.
_SUITE_TASKS: dict[str, Callable[[bool], list[BenchmarkTask]]] = {
    "speed": lambda _served_model: speed_tasks(),
    "quality": quality_tasks,
    "code": code_suite_tasks,
}


def suite_tasks(suite: SuiteChoice, served_model: bool = False) -> list[BenchmarkTask]:
    if suite not in SUITE_CHOICES:
        raise ValueError(f"unknown suite {suite!r}; choose one of {', '.join(SUITES)} or all")
    return [task for name in (SUITES if suite == "all" else (suite,)) for task in _SUITE_TASKS[name](served_model)]
