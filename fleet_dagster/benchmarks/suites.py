"""Benchmark suites (`resources/benchmarks/*.yaml`) turned into tasks."""

import random
from functools import cache
from typing import Literal

import yaml
from pydantic import BaseModel, Field

from fleet_dagster.core.resource_files import resources_dir

SUITES = ("speed", "quality")
ANSWER_INSTRUCTION = "Work it out step by step, then end with a line 'Answer: <number>'."


class Shape(BaseModel):
    name: str
    roles: list[str]
    agents: int = Field(ge=1, le=16)
    rounds: int = Field(ge=0, le=5)
    max_tokens: int = Field(ge=16)


class BenchmarkTask(BaseModel):
    suite: Literal["speed", "quality"]
    name: str
    mode: Literal["deliberation", "single"]
    task: str
    roles: list[str]
    agents: int
    rounds: int
    max_tokens: int
    requirements: list[str] = Field(default_factory=list)
    expected: int | None = None


def arithmetic_problems(seed: int, count: int, terms: int) -> list[tuple[str, int]]:
    """Expressions a+b*c+d-e*f... with their values, reproducible from the seed."""
    rng = random.Random(seed)
    problems = []
    for _ in range(count):
        numbers = [rng.randint(0, 30) for _ in range(terms)]
        operators = [rng.choice(["+", "*", "-"]) for _ in range(terms - 1)]
        expression = str(numbers[0]) + "".join(f"{op}{n}" for op, n in zip(operators, numbers[1:], strict=True))
        problems.append((expression, eval(expression, {"__builtins__": {}})))  # noqa: S307 - digits and + - * only
    return problems


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


def quality_tasks() -> list[BenchmarkTask]:
    data = _load("quality")
    arithmetic = data["arithmetic"]
    questions = [
        (f"arith-{i + 1}", f"What is the result of {expression}?", answer)
        for i, (expression, answer) in enumerate(
            arithmetic_problems(arithmetic["seed"], arithmetic["count"], arithmetic["terms"])
        )
    ] + [(f"word-{i + 1}", p["question"], int(p["answer"])) for i, p in enumerate(data["word_problems"])]
    tasks = []
    for name, question, answer in questions:
        for mode, agents, rounds in (("single", 1, 0), ("deliberation", data["agents"], data["rounds"])):
            tasks.append(
                BenchmarkTask(
                    suite="quality",
                    name=name,
                    mode=mode,
                    task=f"{question}\n{ANSWER_INSTRUCTION}",
                    roles=[data["role"]],
                    agents=agents,
                    rounds=rounds,
                    max_tokens=data["max_tokens"],
                    expected=answer,
                )
            )
    return tasks


def suite_tasks(suite: str) -> list[BenchmarkTask]:
    if suite == "all":
        return speed_tasks() + quality_tasks()
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}; choose one of {', '.join(SUITES)} or all")
    return speed_tasks() if suite == "speed" else quality_tasks()
