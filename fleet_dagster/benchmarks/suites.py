"""Benchmark suites (`resources/benchmarks/*.yaml`) turned into tasks."""

from functools import cache
from typing import Literal, get_args

import yaml
from pydantic import BaseModel, Field

from fleet_dagster.benchmarks.quality_tasks import calibrated_questions, du_arithmetic_questions
from fleet_dagster.core.resource_files import resources_dir

Suite = Literal["speed", "quality"]
SuiteChoice = Literal[Suite, "all"]  # "all": every suite, one after another
SUITES: tuple[str, ...] = get_args(Suite)
SUITE_CHOICES: tuple[str, ...] = get_args(SuiteChoice)
ANSWER_INSTRUCTION = "Work it out step by step, then end with a line 'Answer: <number>'."


class Shape(BaseModel):
    name: str
    roles: list[str]
    agents: int = Field(ge=1, le=16)
    rounds: int = Field(ge=0, le=5)
    max_tokens: int = Field(ge=16)


class BenchmarkTask(BaseModel):
    suite: Suite
    name: str
    # single: one agent; vote: `agents` independent samples, the most frequent answer wins; deliberation.
    mode: Literal["deliberation", "single", "vote"]
    task: str
    roles: list[str]
    agents: int
    rounds: int
    max_tokens: int
    selection: Literal["score", "vote"] = "score"
    requirements: list[str] = Field(default_factory=list)
    expected: int | None = None


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


def quality_tasks(served_model: bool = False) -> list[BenchmarkTask]:
    """Each question three times: one agent, a vote of `vote_samples` samples, a deliberation (whose winner is
    read both by score and by vote). The embedded model gets the calibrated questions, a served one Du et al.'s."""
    data = _load("quality")
    make_questions = du_arithmetic_questions if served_model else calibrated_questions
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
        for question in make_questions(data["seed"], data["count"])
        for mode, agents, rounds, selection in shapes
    ]


def suite_tasks(suite: SuiteChoice, served_model: bool = False) -> list[BenchmarkTask]:
    if suite == "all":
        return speed_tasks() + quality_tasks(served_model)
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}; choose one of {', '.join(SUITES)} or all")
    return speed_tasks() if suite == "speed" else quality_tasks(served_model)
