"""Code tasks for the code benchmark: tiny Python functions generated from a seed, and the served models' tasks
(resources/benchmarks/code_served.yaml). Nothing is downloaded, so nothing has leaked into a model's training.

Each task has SHOWN tests (a request's `tests`, for the methods that show tests to the agents) and HIDDEN tests
(other inputs, never in a request) that alone decide whether the winner is correct. Its reference solution is
for the tests of this module only: it checks that the task's tests are right; no agent ever sees it.
"""

import random
from collections.abc import Callable
from typing import Any, NamedTuple

from fleet_dagster.core.request import DeliberationRequest

# The module a request's tests import the solution from (`from solution import add_7`): the request's default.
MODULE: str = DeliberationRequest.model_fields["module"].default
SHOWN_CASES = 2
HIDDEN_CASES = 4
# Short words for the string kind: common ones, which the model reads whole.
_WORDS = ("apple", "banana", "cherry", "garden", "letter", "pepper", "rocket", "silver", "tomato", "window")


class CodeTask(NamedTuple):
    name: str
    entry_point: str
    spec: str  # the task text: the signature and what it returns, in one line
    shown_tests: str
    hidden_tests: str
    reference: str


class Made(NamedTuple):
    """What a kind makes of its random operands: the function and its cases, (arguments, expected result)."""

    entry_point: str
    parameters: str
    returns: str  # what the spec says it returns
    expression: str  # the reference's return expression
    cases: list[tuple[tuple[Any, ...], Any]]


def _numbers(rng: random.Random, count: int) -> list[int]:
    return rng.sample(range(-9, 60), count)


def _lists(rng: random.Random, count: int) -> list[list[int]]:
    return [rng.sample(range(-9, 40), rng.randint(2, 5)) for _ in range(count)]


def _words(rng: random.Random, count: int) -> list[str]:
    return rng.sample(_WORDS, count)


def _add(rng: random.Random, count: int) -> Made:
    k = rng.randint(2, 19)
    return Made(f"add_{k}", "x", f"return x plus {k}", f"x + {k}", [((x,), x + k) for x in _numbers(rng, count)])


def _subtract(rng: random.Random, count: int) -> Made:
    k = rng.randint(2, 19)
    return Made(f"minus_{k}", "x", f"return x minus {k}", f"x - {k}", [((x,), x - k) for x in _numbers(rng, count)])


def _times(rng: random.Random, count: int) -> Made:
    k = rng.randint(2, 9)
    xs = _numbers(rng, count)
    return Made(f"times_{k}", "x", f"return x multiplied by {k}", f"x * {k}", [((x,), x * k) for x in xs])


def _power(rng: random.Random, count: int) -> Made:
    k = rng.randint(2, 3)
    xs = rng.sample(range(-6, 12), count)
    return Made(f"power_{k}", "x", f"return x raised to the power {k}", f"x ** {k}", [((x,), x**k) for x in xs])


def _multiple(rng: random.Random, count: int) -> Made:
    k = rng.randint(2, 9)
    # Half multiples, half not: a function that always answers the same fails its hidden tests.
    ns = [k * m + (0 if i % 2 == 0 else rng.randint(1, k - 1)) for i, m in enumerate(rng.sample(range(1, 13), count))]
    return Made(
        f"is_multiple_of_{k}",
        "n",
        f"return True if n is divisible by {k}, else False",
        f"n % {k} == 0",
        [((n,), n % k == 0) for n in ns],
    )


def _max(rng: random.Random, count: int) -> Made:
    xss = _lists(rng, count)
    return Made("max_of", "xs", "return the largest number in the list xs", "max(xs)", [((x,), max(x)) for x in xss])


def _min(rng: random.Random, count: int) -> Made:
    xss = _lists(rng, count)
    return Made("min_of", "xs", "return the smallest number in the list xs", "min(xs)", [((x,), min(x)) for x in xss])


def _total(rng: random.Random, count: int) -> Made:
    xss = _lists(rng, count)
    return Made("total", "xs", "return the sum of the numbers in the list xs", "sum(xs)", [((x,), sum(x)) for x in xss])


def _last(rng: random.Random, count: int) -> Made:
    xss = _lists(rng, count)
    return Made("last", "xs", "return the last element of the list xs", "xs[-1]", [((x,), x[-1]) for x in xss])


def _reverse(rng: random.Random, count: int) -> Made:
    words = _words(rng, count)
    return Made("reverse", "s", "return the string s reversed", "s[::-1]", [((w,), w[::-1]) for w in words])


def _greet(rng: random.Random, count: int) -> Made:
    greeting = rng.choice(("Hello", "Hi", "Welcome", "Good morning"))
    names = rng.sample(("Ada", "Bob", "Cleo", "Dan", "Eve", "Finn", "Gus", "Hana"), count)
    return Made(
        "greet",
        "name",
        f"return the string '{greeting}, ' followed by name",
        f"{greeting + ', '!r} + name",
        [((n,), f"{greeting}, {n}") for n in names],
    )


def _mean(rng: random.Random, count: int) -> Made:
    pairs = zip(_numbers(rng, count), _numbers(rng, count), strict=True)
    return Made(
        "mean_of",
        "a, b",
        "return the average of the numbers a and b",
        "(a + b) / 2",
        [((a, b), (a + b) / 2) for a, b in pairs],
    )


KINDS: dict[str, Callable[[random.Random, int], Made]] = {
    "add": _add,
    "subtract": _subtract,
    "times": _times,
    "power": _power,
    "multiple": _multiple,
    "max": _max,
    "min": _min,
    "total": _total,
    "last": _last,
    "reverse": _reverse,
    "greet": _greet,
    "mean": _mean,
}


def tests_source(entry_point: str, asserts: list[str], one_function: bool) -> str:
    """Pytest-style tests importing the entry point: the asserts in one test_ function, or one function each
    (hidden tests: the run then says how many of them a solution passed)."""
    header = f"from {MODULE} import {entry_point}\n"
    if one_function:
        return header + f"\n\ndef test_{entry_point}():\n" + "".join(f"    {line}\n" for line in asserts)
    return header + "".join(f"\n\ndef test_{entry_point}_{i + 1}():\n    {line}\n" for i, line in enumerate(asserts))


def _asserts(made: Made) -> list[str]:
    return [f"assert {made.entry_point}({', '.join(map(repr, args))}) == {expected!r}" for args, expected in made.cases]


def code_task(name: str, entry_point: str, spec: str, reference: str, shown: list[str], hidden: list[str]) -> CodeTask:
    return CodeTask(
        name=name,
        entry_point=entry_point,
        spec=spec,
        shown_tests=tests_source(entry_point, shown, one_function=True),
        hidden_tests=tests_source(entry_point, hidden, one_function=False),
        reference=reference,
    )


def generated_code_tasks(seed: int, count: int) -> list[CodeTask]:
    """The kinds in turn, so any prefix mixes them evenly; names are '<kind>-<n>'. Each task's cases are distinct
    inputs: the first SHOWN_CASES are shown, the next HIDDEN_CASES hidden.

    Calibrated on SmolLM2-135M through the DEV council's code prompt (no tests shown; 6 samples a task at
    temperatures 0.4-1.0, 128 tokens): a sample passes the hidden tests about half the time, from 11 % (greet)
    to 75 % (times) by kind, and one of six passes for 90 % of the tasks: room for choosing among samples to
    help. Kinds it (almost) never passed were left out: counting a letter, repeating a string, the first k
    items, ends-with, max(x, k), len.
    """
    rng = random.Random(seed)
    kinds = list(KINDS.items())
    tasks = []
    for i in range(count):
        kind, make = kinds[i % len(kinds)]
        made = make(rng, SHOWN_CASES + HIDDEN_CASES)
        asserts = _asserts(made)
        tasks.append(
            code_task(
                name=f"{kind}-{i // len(kinds) + 1}",
                entry_point=made.entry_point,
                spec=f"def {made.entry_point}({made.parameters}): {made.returns}",
                reference=f"def {made.entry_point}({made.parameters}):\n    return {made.expression}\n",
                shown=asserts[:SHOWN_CASES],
                hidden=asserts[SHOWN_CASES:],
            )
        )
    return tasks


def served_code_tasks(entries: list[dict[str, str]]) -> list[CodeTask]:
    """The tasks of code_served.yaml: their shown and hidden tests are asserts, one a line."""
    return [
        code_task(
            name=entry["name"],
            entry_point=entry["entry_point"],
            spec=entry["spec"],
            reference=entry["reference"],
            shown=entry["shown"].splitlines(),
            hidden=entry["hidden"].splitlines(),
        )
        for entry in entries
    ]
