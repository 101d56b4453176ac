"""A/B tests of benchmark arms: the arm spec, McNemar's exact test, pairing, the verdict and its error rates."""

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet_dagster.benchmarks.ab_runner import ab_tasks
from fleet_dagster.benchmarks.ab_test import (
    MAX_SPEC_CHARS,
    Arm,
    ab_markdown,
    ab_verdict,
    arm_task,
    mcnemar_exact,
)
from fleet_dagster.benchmarks.quality_stats import wilson_interval
from fleet_dagster.benchmarks.suites import EXECUTION_METHOD, quality_questions, quality_tasks


def rows(correct: list[bool | None], tokens: int = 100, cost: float | None = None) -> list[dict]:
    return [{"task": f"t{i}", "correct": right, "tokens": tokens, "cost": cost} for i, right in enumerate(correct)]


def test_mcnemar_exact_known_values():
    assert mcnemar_exact(10, 0) == pytest.approx(2 / 1024)  # 0.00195
    assert mcnemar_exact(0, 10) == mcnemar_exact(10, 0)
    assert mcnemar_exact(7, 7) == 1.0 and mcnemar_exact(0, 0) == 1.0
    # b=8, c=2: 2 * (1 + 10 + 45) / 1024, as scipy.stats.binomtest(2, 10).pvalue gives.
    assert mcnemar_exact(8, 2) == pytest.approx(0.109375)
    assert mcnemar_exact(1, 0) == 1.0


def test_verdict_pairs_tasks_and_tables_each_arm():
    a = rows([True] * 12 + [False] * 2 + [True], tokens=300, cost=0.5)
    b = rows([False] * 12 + [False, True] + [None], tokens=100)
    b.append({"task": "only-b", "correct": True, "tokens": 1, "cost": None})
    verdict = ab_verdict(a, b)
    # t14 ungraded in B and only-b missing in A: neither is paired, and neither counts in any figure.
    assert verdict["paired"] == 14 and verdict["unpaired"] == 2
    assert (verdict["b"], verdict["c"]) == (12, 1)
    assert verdict["p_value"] == pytest.approx(mcnemar_exact(12, 1)) and verdict["p_value"] < 0.05
    assert verdict["verdict"] == "A better"
    arm_a, arm_b = verdict["arms"]
    assert (arm_a["tasks"], arm_a["correct"], arm_a["accuracy"]) == (14, 12, 12 / 14)
    assert (arm_a["ci_low"], arm_a["ci_high"]) == wilson_interval(12, 14)
    assert arm_a["tokens_per_task"] == 300 and arm_a["cost_per_task"] == 0.5
    assert arm_b["correct"] == 1 and arm_b["cost_per_task"] is None  # B's calls had no price
    table = ab_markdown(verdict, ("models=strong", "models=weak|x"))
    assert "| A | models=strong | 14 | 12 | 85.7 % [60.1, 96.0] | 300 | 0.5 |" in table
    assert "models=weak\\|x" in table and "A better: 14 paired tasks (2 unpaired)" in table
    assert ab_verdict(b, a)["verdict"] == "B better"


def test_no_difference_when_the_discordant_pairs_balance_or_nothing_is_paired():
    assert ab_verdict(rows([True, False] * 10), rows([False, True] * 10))["verdict"] == "no difference at alpha=0.05"
    empty = ab_verdict([], rows([True]))
    assert empty["paired"] == 0 and empty["unpaired"] == 1 and empty["arms"][0]["accuracy"] is None
    assert "| A |  | 0 | 0 | - | - | - |" in ab_markdown(empty)


def test_arm_spec_parses_into_task_overrides():
    arm = Arm.parse("models=sim-strong+sim-weak, role=QA,selection=weighted-vote,agents=4,rounds=0")
    assert arm.models == ["sim-strong", "sim-weak"] and arm.role == "QA" and arm.selection == "weighted-vote"
    assert (arm.agents, arm.rounds) == (4, 0) and arm.label.startswith("models=sim-strong")
    task = next(t for t in quality_tasks() if t.mode == "deliberation")
    changed = arm_task(task, arm)
    assert changed.agent_models == ["sim-strong", "sim-weak"] and changed.roles == ["QA"]
    assert (changed.agents, changed.rounds, changed.selection) == (4, 0, "weighted-vote")
    assert arm_task(task, Arm.parse("")) == task  # an empty spec: the suite's own shape
    assert Arm.parse("agents=1", label="one").label == "one"


@pytest.mark.parametrize(
    ("spec", "key"),
    [
        ("temperature=1", "temperature"),
        ("agents=0", "agents"),
        ("agents=x", "agents"),
        ("rounds=9", "rounds"),
        ("selection=best", "selection"),
        ("role=NOBODY", "role"),
        ("models=", "models"),
        ("models=a b", "models"),
        ("models=" + "+".join(f"m{i}" for i in range(17)), "models"),
        ("agents=1,agents=2", "agents"),
        ("agents", "agents"),
        ("x" * (MAX_SPEC_CHARS + 1), "500 characters"),
    ],
)
def test_a_bad_spec_is_a_value_error_naming_the_key(spec, key):
    with pytest.raises(ValueError, match=key):
        Arm.parse(spec)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=600),
        st.lists(
            st.tuples(
                st.sampled_from(["models", "role", "selection", "agents", "rounds", "x", ""]),
                st.text(alphabet="+=,- 0123456789abcQADEV", max_size=20),
            ),
            max_size=6,
        ).map(lambda items: ",".join(f"{k}={v}" for k, v in items)),
    )
)
def test_any_spec_gives_an_arm_or_a_value_error(spec):
    try:
        arm = Arm.parse(spec)
    except ValueError as exc:
        assert str(exc)
    else:
        assert isinstance(arm, Arm) and len(arm.models) <= 16


def test_each_suite_compares_one_shape_per_task_and_more_tasks_keep_the_first():
    quality = ab_tasks("quality", served_model=True, count=60)
    assert len(quality) == 60 and {t.mode for t in quality} == {"deliberation"}
    assert len({t.name for t in quality}) == 60
    assert [t.name for t in ab_tasks("quality", served_model=True)] == [t.name for t in quality[:40]]
    assert [q.question for q in quality_questions(True)] == [q.question for q in quality_questions(True, 60)[:40]]
    code = ab_tasks("code", served_model=False, count=5)
    assert len(code) == 5 and {t.mode for t in code} == {EXECUTION_METHOD} and all(t.tests for t in code)


def simulated_verdicts(accuracy_a: float | None, accuracy_b: float | None, runs: int = 200, tasks: int = 60) -> list:
    """Verdicts over seeded simulations of paired tasks. None for both accuracies: identical arms, each task
    right with a probability of its own (drawn per task), the same for both arms."""
    rng = random.Random(2026)
    verdicts = []
    for _ in range(runs):
        if accuracy_a is None or accuracy_b is None:
            chances = [rng.random() for _ in range(tasks)]
            chances_a = chances_b = chances
        else:
            chances_a, chances_b = [accuracy_a] * tasks, [accuracy_b] * tasks
        a = rows([rng.random() < p for p in chances_a])
        b = rows([rng.random() < p for p in chances_b])
        verdicts.append(ab_verdict(a, b)["verdict"])
    return verdicts


def test_identical_arms_rarely_differ():
    verdicts = simulated_verdicts(None, None)
    assert sum(v != "no difference at alpha=0.05" for v in verdicts) / len(verdicts) <= 0.05


def test_eighty_against_forty_percent_is_found():
    verdicts = simulated_verdicts(0.8, 0.4)
    assert verdicts.count("A better") / len(verdicts) >= 0.95
    assert "B better" not in verdicts
