import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet_dagster.benchmarks import regression
from fleet_dagster.benchmarks.plots import accuracy_vs_tokens
from fleet_dagster.benchmarks.quality_stats import markdown_table, method_table, wilson_interval
from fleet_dagster.benchmarks.quality_tasks import KINDS, calibrated_questions, du_arithmetic_questions


def test_wilson_interval_matches_the_textbook_values():
    assert wilson_interval(9, 20) == pytest.approx((0.2582, 0.6579), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


@given(st.integers(1, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_interval_holds_the_observed_share_and_mirrors(counts):
    successes, trials = counts
    low, high = wilson_interval(successes, trials)
    assert 0.0 <= low <= successes / trials <= high <= 1.0
    mirrored_low, mirrored_high = wilson_interval(trials - successes, trials)
    assert (low, high) == pytest.approx((1 - mirrored_high, 1 - mirrored_low))


def row(method, correct, tokens=100, task="t"):
    return {"method": method, "task": task, "correct": correct, "tokens": tokens}


def test_method_table_keeps_first_appearance_order_and_skips_ungraded_rows():
    rows = [
        row("single", True, 100),
        row("vote@3", False, 300),
        row("single", False, 101),
        row("single", None, 10_000),  # not graded: neither counted nor costed
        row("vote@3", True, 301),
        row("vote@3", True, 302),
    ]
    single, vote = method_table(rows)
    assert single == {
        "method": "single",
        "tasks": 2,
        "correct": 1,
        "accuracy": 0.5,
        "ci_low": pytest.approx(wilson_interval(1, 2)[0]),
        "ci_high": pytest.approx(wilson_interval(1, 2)[1]),
        "tokens_per_task": 100,  # 100.5 rounds to even
    }
    assert (vote["method"], vote["tasks"], vote["correct"], vote["tokens_per_task"]) == ("vote@3", 3, 2, 301)
    assert method_table([row("single", None)]) == []


@given(st.lists(st.tuples(st.sampled_from(["single", "vote@3", "deliberation"]), st.sampled_from([True, False, None]))))
def test_method_table_counts_every_graded_row_once(pairs):
    table = method_table([row(method, correct) for method, correct in pairs])
    assert sum(r["tasks"] for r in table) == sum(correct is not None for _, correct in pairs)
    assert sum(r["correct"] for r in table) == sum(correct is True for _, correct in pairs)
    assert all(r["ci_low"] <= r["accuracy"] <= r["ci_high"] for r in table)


def test_markdown_table_shows_accuracy_with_its_interval():
    text = markdown_table(method_table([row("vote@9", i < 18, 900) for i in range(40)]))
    assert text.splitlines()[2] == "| vote@9 | 40 | 18 | 45.0 % [30.7, 60.2] | 900 |"


def test_accuracy_vs_tokens_is_an_embedded_png():
    table = method_table([row("single", True, 150), row("single", False, 150), row("deliberation", True, 2000)])
    assert accuracy_vs_tokens(table).startswith("![accuracy vs tokens](data:image/png;base64,iVBOR")


def quality_summary(deliberation=0.5, vote=0.5, tasks=40, tokens_deliberation=2000, tokens_vote=1500):
    return {
        "accuracy_deliberation": deliberation,
        "accuracy_vote": vote,
        "tokens_deliberation": tokens_deliberation,
        "tokens_vote": tokens_vote,
        "tasks_deliberation": tasks,
        "tasks_vote": tasks,
    }


def test_deliberation_vs_majority_vote():
    assert regression.deliberation_vs_majority_vote({}).passed
    assert regression.deliberation_vs_majority_vote(quality_summary(vote=None)).passed

    level = regression.deliberation_vs_majority_vote(quality_summary(deliberation=0.5, vote=0.5))
    assert level.passed and "50.0%" in level.description and "1.33x the tokens" in level.description
    assert level.figures["tokens_ratio"] == pytest.approx(1.333, abs=1e-3)
    assert level.figures["ci_vote"] == pytest.approx(list(wilson_interval(20, 40)), abs=1e-4)

    within_noise = regression.deliberation_vs_majority_vote(quality_summary(deliberation=0.45, vote=0.55))
    assert not within_noise.passed and within_noise.severity == "warn"

    beyond_noise = regression.deliberation_vs_majority_vote(quality_summary(deliberation=0.2, vote=0.7))
    assert not beyond_noise.passed and beyond_noise.severity == "error"
    assert beyond_noise.figures["ci_deliberation"][1] < beyond_noise.figures["ci_vote"][0]

    free_vote = regression.deliberation_vs_majority_vote(quality_summary(tokens_vote=0))
    assert free_vote.passed and free_vote.figures["tokens_ratio"] is None


def test_du_arithmetic_questions():
    questions = du_arithmetic_questions(seed=3, count=25)
    assert questions == du_arithmetic_questions(seed=3, count=25)
    assert questions != du_arithmetic_questions(seed=4, count=25)
    for question in questions:
        a, b, c, d, e, f = map(int, re.findall(r"\d+", question.question))
        assert all(0 <= n <= 29 for n in (a, b, c, d, e, f))
        assert question.answer == a + b * c + d - e * f


def grade_by_reading(text: str) -> int:
    """The answer worked out again from the text, independently of how the generator computed it."""
    numbers = [int(n) for n in re.findall(r"\d+", text)]
    if text.startswith("Which is larger"):
        return max(numbers)
    if text.startswith("How many"):
        return len(text.split(":", 1)[1].split(","))
    signs = re.findall(r"[+-]", text)
    return numbers[0] + sum(n if sign == "+" else -n for sign, n in zip(signs, numbers[1:], strict=True))


@given(st.integers(0, 2**32), st.integers(0, 60))
def test_calibrated_questions_mix_the_kinds_and_hold_their_answers(seed, count):
    questions = calibrated_questions(seed, count)
    assert questions == calibrated_questions(seed, count)
    assert len(questions) == count and len({q.name for q in questions}) == count
    kinds = [q.name.rsplit("-", 1)[0] for q in questions]
    assert kinds == [list(KINDS)[i % len(KINDS)] for i in range(count)]
    for question in questions:
        assert "answer" not in question.question.lower()  # the caller appends the instruction
        assert question.answer == grade_by_reading(question.question) >= 0
