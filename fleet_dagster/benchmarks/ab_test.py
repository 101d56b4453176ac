"""A/B tests of two arms of a benchmark suite: the same seeded tasks run two ways (models, role, selection,
council size), paired task by task and compared by McNemar's exact test on the tasks one arm got right and the
other wrong."""

import math
from collections.abc import Iterable
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from fleet_dagster.benchmarks.quality_stats import wilson_interval
from fleet_dagster.benchmarks.suites import EXECUTION_METHOD, BenchmarkTask
from fleet_dagster.core.profiles import MODEL_NAME_PATTERN, available_roles
from fleet_dagster.core.records import SelectionMethod
from fleet_dagster.core.request import MAX_AGENTS_PER_ROLE, MAX_ROUNDS

ABSuite = Literal["quality", "code"]
AB_SUITES: tuple[str, ...] = get_args(ABSuite)
# Which task shape of each suite the arms change, and the row that grades it: the quality suite's deliberation,
# graded on the council's own winner (its "deliberation+vote" row: the winner by the request's selection, which an
# arm may set); the code suite's selection by execution against the request's tests.
AB_SHAPES: dict[str, tuple[str, str]] = {
    "quality": ("deliberation", "deliberation+vote"),
    "code": (EXECUTION_METHOD, EXECUTION_METHOD),
}
# A spec comes from a shell or a schedule's environment: a line, a few model names (at most the request's, one per
# agent).
MAX_SPEC_CHARS = 500
ARM_KEYS = ("models", "role", "selection", "agents", "rounds")
DEFAULT_ALPHA = 0.05

ModelName = Annotated[str, StringConstraints(pattern=MODEL_NAME_PATTERN)]


class Arm(BaseModel):
    """One way to run a suite's tasks: what it changes of each task (None or no models: the suite's own)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str = Field(default="", max_length=MAX_SPEC_CHARS)
    # A spec joins the names with '+': a model whose name holds one cannot be named in a spec.
    models: list[ModelName] = Field(default_factory=list, max_length=MAX_AGENTS_PER_ROLE)
    role: str | None = None
    selection: SelectionMethod | None = None
    agents: int | None = Field(default=None, ge=1, le=MAX_AGENTS_PER_ROLE)
    rounds: int | None = Field(default=None, ge=0, le=MAX_ROUNDS)

    @field_validator("role")
    @classmethod
    def _known_role(cls, role: str | None) -> str | None:
        if role is not None and role not in available_roles():
            raise ValueError(f"unknown role profile; known: {', '.join(available_roles())}")
        return role

    @classmethod
    def parse(cls, spec: str, label: str | None = None) -> "Arm":
        """`key=value,key=value` with keys ARM_KEYS; `models` joins names with '+'. The label defaults to the spec.
        Raises ValueError naming the key at fault."""
        if len(spec) > MAX_SPEC_CHARS:
            raise ValueError(f"an arm spec is at most {MAX_SPEC_CHARS} characters, not {len(spec)}")
        values: dict[str, Any] = {}
        for item in filter(None, (part.strip() for part in spec.split(","))):
            key, equals, value = (text.strip() for text in item.partition("="))
            if not equals:
                raise ValueError(f"{item!r} in arm spec is not key=value (keys: {', '.join(ARM_KEYS)})")
            if key not in ARM_KEYS:
                raise ValueError(f"unknown arm key {key!r}; known: {', '.join(ARM_KEYS)}")
            if key in values:
                raise ValueError(f"arm key {key!r} given twice")
            values[key] = [name.strip() for name in value.split("+")] if key == "models" else value
        try:
            return cls.model_validate({**values, "label": spec.strip() if label is None else label})
        except ValidationError as exc:
            error = exc.errors()[0]
            key = ".".join(str(part) for part in error["loc"][:1]) or "spec"
            raise ValueError(f"arm key {key!r}: {error['msg']}") from None


def arm_task(task: BenchmarkTask, arm: Arm) -> BenchmarkTask:
    overrides = {
        "agent_models": arm.models or None,
        "roles": [arm.role] if arm.role else None,
        "selection": arm.selection,
        "agents": arm.agents,
        "rounds": arm.rounds,
    }
    return task.model_copy(update={key: value for key, value in overrides.items() if value is not None})


def mcnemar_exact(b: int, c: int) -> float:
    """McNemar's exact two-sided p-value: under no difference, each discordant pair is A's or B's with p = 1/2, so
    the smaller count is a binomial(b + c, 1/2) tail, doubled. Exact sums with math.comb: scipy is no dependency,
    and a few dozen tasks are too few for the chi-squared approximation."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2**n)


def _arm_figures(arm: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    correct = sum(bool(row["correct"]) for row in rows)
    low, high = wilson_interval(correct, len(rows))
    priced = [row["cost"] for row in rows if row.get("cost") is not None]
    return {
        "arm": arm,
        "tasks": len(rows),
        "correct": correct,
        "accuracy": correct / len(rows) if rows else None,
        "ci_low": low,
        "ci_high": high,
        "tokens_per_task": round(sum(row["tokens"] for row in rows) / len(rows)) if rows else None,
        # A cost only where every call had a price (None: the deployment sets none).
        "cost_per_task": sum(priced) / len(rows) if rows and len(priced) == len(rows) else None,
    }


def _graded_by_task(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["task"]: row for row in rows if row.get("correct") is not None}


def ab_verdict(
    rows_a: list[dict[str, Any]], rows_b: list[dict[str, Any]], alpha: float = DEFAULT_ALPHA
) -> dict[str, Any]:
    """Each arm's figures over the paired tasks (graded in both arms), the discordant pairs (b: A right and B
    wrong; c: the other way), McNemar's p-value and the verdict. A task missing or ungraded in either arm is
    left out of every figure and counted as unpaired."""
    graded_a, graded_b = _graded_by_task(rows_a), _graded_by_task(rows_b)
    paired = [task for task in graded_a if task in graded_b]
    every_task = {row["task"] for row in [*rows_a, *rows_b]}
    b = sum(bool(graded_a[t]["correct"]) and not graded_b[t]["correct"] for t in paired)
    c = sum(not graded_a[t]["correct"] and bool(graded_b[t]["correct"]) for t in paired)
    p_value = mcnemar_exact(b, c)
    verdict = ("A better" if b > c else "B better") if p_value < alpha else f"no difference at alpha={alpha:g}"
    return {
        "arms": [
            _arm_figures("A", [graded_a[t] for t in paired]),
            _arm_figures("B", [graded_b[t] for t in paired]),
        ],
        "paired": len(paired),
        "unpaired": len(every_task) - len(paired),
        "b": b,
        "c": c,
        "p_value": p_value,
        "alpha": alpha,
        "verdict": verdict,
    }


def ab_markdown(verdict: dict[str, Any], specs: tuple[str, str] = ("", "")) -> str:
    """The arms' table, and the test's line under it."""
    lines = [
        "| arm | spec | tasks | correct | accuracy [95 % CI] | tokens per task | cost per task |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for arm, spec in zip(verdict["arms"], specs, strict=True):
        accuracy = (
            "-"
            if arm["accuracy"] is None
            else f"{100 * arm['accuracy']:.1f} % [{100 * arm['ci_low']:.1f}, {100 * arm['ci_high']:.1f}]"
        )
        cost = "-" if arm["cost_per_task"] is None else f"{arm['cost_per_task']:.4g}"
        tokens = "-" if arm["tokens_per_task"] is None else arm["tokens_per_task"]
        spec_cell = spec.replace("|", r"\|")  # a spec is free text: no column breaks out of its cell
        lines.append(
            f"| {arm['arm']} | {spec_cell} | {arm['tasks']} | {arm['correct']} | {accuracy} | {tokens} | {cost} |"
        )
    lines.append("")
    lines.append(
        f"{verdict['verdict']}: {verdict['paired']} paired tasks ({verdict['unpaired']} unpaired), "
        f"A right and B wrong {verdict['b']}, B right and A wrong {verdict['c']}, "
        f"McNemar exact p = {verdict['p_value']:.4g}"
    )
    return "\n".join(lines)
