import pytest

from fleet_dagster.benchmarks import figures, regression
from fleet_dagster.benchmarks.figures import method_rows
from fleet_dagster.benchmarks.grading import extract_answer
from fleet_dagster.benchmarks.suites import quality_tasks, speed_tasks, suite_tasks
from fleet_dagster.core.outcome import deliberation_outcome
from fleet_dagster.core.records import AgentCall, CouncilResult, Proposal, Selection
from fleet_dagster.core.request import parse_request


def test_suites_load():
    assert all(task.mode == "deliberation" and task.expected is None for task in speed_tasks())
    quality = quality_tasks()
    assert {t.mode for t in quality} == {"single", "vote", "deliberation"} and len(quality) == 3 * 40
    singles = [t for t in quality if t.mode == "single"]
    assert all(t.agents == 1 and t.rounds == 0 and t.expected is not None for t in singles)
    votes = [t for t in quality if t.mode == "vote"]
    assert all(t.agents == 9 and t.rounds == 0 and t.selection == "vote" for t in votes)
    assert len(suite_tasks("all")) == len(speed_tasks()) + len(quality) + len(suite_tasks("code"))
    # A served model gets Du et al.'s arithmetic; the embedded one the calibrated questions.
    assert "*" in quality_tasks(served_model=True)[0].task and quality_tasks()[0].name.startswith("add-")
    with pytest.raises(ValueError, match="unknown suite"):
        suite_tasks("fast")


def council_of(answers: list[str], scores: list[float], selection: Selection) -> CouncilResult:
    proposals = [
        Proposal(
            role="DEV",
            agent_id=f"agent-dev-{i + 1:03d}",
            round=0,
            content=f"I think so.\nAnswer: {a}",
            temperature=0.7,
            seed=i,
            score=score,
            answer=a,
        )
        for i, (a, score) in enumerate(zip(answers, scores, strict=True))
    ]
    calls = [
        AgentCall(agent_id=p.agent_id, role="DEV", phase="propose", round=0, ok=True, tokens=100 + i)
        for i, p in enumerate(proposals)
    ]
    return CouncilResult(
        role="DEV",
        expected_agents=len(proposals),
        proposals=proposals,
        reviews=[],
        calls=calls,
        selection=selection,
        started_at=0,
        finished_at=1,
    )


def rows_of(task, council: CouncilResult) -> dict[str, dict]:
    request = parse_request({"task": task.task, "roles": ["DEV"], "agents_per_role": len(council.proposals)})
    outcome = deliberation_outcome(request, [council], wall_ms=1000.0, prices={})
    return {row["method"]: row for row in method_rows(task, outcome, [council])}


def test_a_vote_of_nine_also_gives_the_vote_of_its_first_three():
    task = next(t for t in quality_tasks() if t.mode == "vote").model_copy(update={"expected": 5})
    answers = ["4", "4", "5", "5", "5", "5", "5", "1", "2"]
    council = council_of(answers, [5.0] * 9, Selection(winner="agent-dev-003", method="vote", rationale=""))
    rows = rows_of(task, council)
    assert rows["vote@3"]["answer"] == 4 and not rows["vote@3"]["correct"]
    assert rows["vote@9"]["answer"] == 5 and rows["vote@9"]["correct"]
    assert rows["vote@3"]["tokens"] == 100 + 101 + 102 and rows["vote@9"]["tokens"] == sum(range(100, 109))


def test_a_deliberation_is_read_by_score_and_by_vote():
    task = next(t for t in quality_tasks() if t.mode == "deliberation").model_copy(update={"expected": 7})
    council = council_of(
        ["3", "7", "7"], [9.0, 4.0, 5.0], Selection(winner="agent-dev-003", method="vote", rationale="")
    )
    rows = rows_of(task, council)
    assert rows["deliberation"]["answer"] == 3 and rows["deliberation+vote"]["answer"] == 7
    assert rows["deliberation"]["tokens"] == rows["deliberation+vote"]["tokens"] == 303
    quality = figures.summary(list(rows.values()), [])
    assert quality["accuracy_deliberation"] == 0.0 and quality["methods"][1]["method"] == "deliberation+vote"


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


def test_extract_answer_reads_past_a_run_of_spaces():
    """Three adjacent optional whitespace runs once made a failed match retry every split of the spaces
    (cubic: minutes on 2,000 spaces); a graded answer is model text, any shape."""
    assert extract_answer("answer" + " " * 24_000 + "x\nAnswer: 5") == 5
    assert extract_answer("answer is" + " \t" * 12_000 + "=" + " " * 12_000 + "** 12") == 12
