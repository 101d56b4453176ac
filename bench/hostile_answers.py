"""Seconds to read a final answer, score a proposal, parse a review and grade a benchmark answer out of hostile
model text: the shapes that made backtracking regexes quadratic or worse (many newlines, many spaces, long
lines). Run it on two commits to compare; no threshold is asserted anywhere (the machine may be shared).
Before issue 23, at the default size: final_answer 3-7 s on newlines, trailing spaces and prefix marks;
grading "answer" and spaces took 5 s at 200 spaces and 48 s at 400 (it never ends at 24,000).

    python bench/hostile_answers.py [--size 24000]
"""

import argparse
import time
from collections.abc import Callable

from fleet_dagster.benchmarks.grading import extract_answer
from fleet_dagster.core.answers import final_answer
from fleet_dagster.core.records import Proposal
from fleet_dagster.core.reviews import parse_review
from fleet_dagster.core.scoring import score_proposal


def shapes(size: int) -> dict[str, str]:
    return {
        "newlines": "\n" * size + "x",
        "newlines-then-answer": "\n" * size + "Answer: 7",
        "trailing-spaces": "Answer: 7" + " " * size + "x",
        "answer-lines": "answer:\n" * size,
        "prefix-marks": ">" * size + "\n" * size,
        "answer-spaces": "answer" + " " * size + "x",
    }


def scored(text: str) -> None:
    proposal = Proposal(role="DEV", agent_id="agent-dev-001", round=1, content=text, temperature=0.5, seed=1)
    score_proposal(proposal, [], ["Limit each API key to 100 requests per minute"], [])


def reviewed(text: str) -> None:
    parse_review(text, ["correctness"], reviewer="r", author="a", round=1)


def seconds(work: Callable[[str], object], text: str) -> float:
    start = time.perf_counter()
    work(text)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=24_000, help="repetitions of each hostile shape")
    size = parser.parse_args().size
    works: dict[str, Callable[[str], object]] = {
        "final_answer": final_answer,
        "score": scored,
        "review": reviewed,
        "grade": extract_answer,
    }
    print(f"{'shape':<22}" + "".join(f"{name:>14}" for name in works))
    for shape, text in shapes(size).items():
        print(f"{shape:<22}" + "".join(f"{seconds(work, text):>13.3f}s" for work in works.values()))


if __name__ == "__main__":
    main()
