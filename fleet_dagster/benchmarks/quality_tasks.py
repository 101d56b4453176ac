"""Question sets for the quality benchmark, generated from a seed: nothing to download, nothing to leak.

The question text never carries the answer instruction; the caller appends it.
"""

import random
from collections.abc import Callable
from typing import NamedTuple


class Question(NamedTuple):
    name: str
    question: str
    answer: int


# Item words for the counting kind: short, common, one token each, so the list length is what's hard.
_ITEMS = ("apple", "pear", "plum", "lemon", "grape", "melon", "peach", "cherry", "mango", "orange")


def _addition(rng: random.Random) -> tuple[str, int]:
    a, b = rng.randint(1, 9), rng.randint(1, 9)
    return f"What is {a} + {b}?", a + b


def _subtraction(rng: random.Random) -> tuple[str, int]:
    a = rng.randint(3, 9)
    b = rng.randint(1, a - 1)  # a positive result: a tiny model handles no negatives
    return f"What is {a} - {b}?", a - b


def _two_step(rng: random.Random) -> tuple[str, int]:
    a, b = rng.randint(1, 6), rng.randint(1, 6)
    c = rng.randint(1, a + b - 1)
    return f"What is {a} + {b} - {c}?", a + b - c


def _comparison(rng: random.Random) -> tuple[str, int]:
    a, b = rng.sample(range(10, 100), 2)
    return f"Which is larger, {a} or {b}?", max(a, b)


def _counting(rng: random.Random) -> tuple[str, int]:
    items = rng.sample(_ITEMS, rng.randint(3, 5))
    return f"How many fruits are in this list: {', '.join(items)}?", len(items)


KINDS: dict[str, Callable[[random.Random], tuple[str, int]]] = {
    "add": _addition,
    "sub": _subtraction,
    "two-step": _two_step,
    "compare": _comparison,
    "count": _counting,
}


def calibrated_questions(seed: int, count: int) -> list[Question]:
    """The kinds in turn, so any prefix mixes them evenly; names are '<kind>-<n>'.

    Calibrated on SmolLM2-135M (one sample, temperature 0.7) to land between easy and hopeless, where
    self-consistency and deliberation have room to help or hurt.
    """
    rng = random.Random(seed)
    kinds = list(KINDS.items())
    questions = []
    for i in range(count):
        kind, make = kinds[i % len(kinds)]
        question, answer = make(rng)
        questions.append(Question(f"{kind}-{i // len(kinds) + 1}", question, answer))
    return questions


def du_arithmetic_questions(seed: int, count: int) -> list[Question]:
    """Du et al. 2023's arithmetic task: a+b*c+d-e*f, each operand 0..29."""
    rng = random.Random(seed)
    questions = []
    for i in range(count):
        a, b, c, d, e, f = (rng.randint(0, 29) for _ in range(6))
        questions.append(
            Question(f"du-{i + 1}", f"What is the result of {a}+{b}*{c}+{d}-{e}*{f}?", a + b * c + d - e * f)
        )
    return questions
