import pytest

from fleet_dagster.benchmarks import regression
from fleet_dagster.benchmarks.grading import extract_answer
from fleet_dagster.benchmarks.suites import arithmetic_problems, quality_tasks, speed_tasks, suite_tasks


def test_arithmetic_is_reproducible_and_correct():
    problems = arithmetic_problems(seed=5, count=4, terms=6)
    assert problems == arithmetic_problems(seed=5, count=4, terms=6)
    assert problems != arithmetic_problems(seed=6, count=4, terms=6)
    for expression, answer in problems:
        assert answer == eval(expression)  # noqa: S307 - the test's own expressions


def test_suites_load():
    assert all(task.mode == "deliberation" and task.expected is None for task in speed_tasks())
    quality = quality_tasks()
    assert {t.mode for t in quality} == {"single", "deliberation"}
    singles = [t for t in quality if t.mode == "single"]
    assert all(t.agents == 1 and t.rounds == 0 and t.expected is not None for t in singles)
    assert len(suite_tasks("all")) == len(speed_tasks()) + len(quality)
    with pytest.raises(ValueError, match="unknown suite"):
        suite_tasks("fast")


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("so 3 + 4 = 7.\nAnswer: 7", 7),
        ("The answer is **1,250**.", 1250),
        ("Answer: -12 (after 3 steps)", -12),
        ("first 3, then 5, finally 42", 42),
        ("no digits here", None),
        (None, None),
    ],
)
def test_extract_answer(text, answer):
    assert extract_answer(text) == answer


def summary(p95=None, single=None, deliberation=None, failure=0.0):
    return {
        "latency_p95_ms": p95,
        "accuracy_single": single,
        "accuracy_deliberation": deliberation,
        "failure_rate": failure,
    }


def test_latency_regression_against_trailing_median():
    history = [summary(p95=v) for v in (900, 100, 100, 110, 90, 100, 105, 95)]  # the 900 is older than 7
    assert regression.latency_regression(summary(p95=119), history).passed
    failed = regression.latency_regression(summary(p95=121), history)
    assert not failed.passed and failed.figures["trailing_median_p95_ms"] == 100
    assert failed.figures["partitions_compared"] == 7
    assert regression.latency_regression(summary(p95=500), []).passed  # nothing to compare with


def test_accuracy_and_failure_rules():
    assert not regression.deliberation_accuracy(summary(single=0.5, deliberation=0.4)).passed
    assert regression.deliberation_accuracy(summary(single=0.5, deliberation=0.5)).passed
    assert regression.deliberation_accuracy(summary()).passed
    assert regression.failure_rate(summary(failure=0.05)).passed
    assert not regression.failure_rate(summary(failure=0.051)).passed
