import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet_dagster.core.json_text import MAX_JSON_TEXT_CHARS, extract_json_object
from fleet_dagster.core.reviews import parse_review, redact_ids, review_assignments

CRITERIA = ["correctness", "simplicity"]


def parse(raw: str):
    return parse_review(raw, CRITERIA, reviewer="r", author="a", round=1)


def test_ring_assignment():
    assert review_assignments(["a", "b", "c"], "ring", seed=1) == [("a", "b"), ("b", "c"), ("c", "a")]


def test_all_assignment_skips_self():
    pairs = review_assignments(["a", "b", "c"], "all", seed=1)
    assert len(pairs) == 6 and all(r != a for r, a in pairs)


def test_single_agent_has_nobody_to_review():
    assert review_assignments(["a"], "ring", seed=1) == [] and review_assignments(["a"], "all", seed=1) == []


@given(st.integers(0, 16), st.sampled_from(["ring", "all"]), st.integers(0, 2**31))
def test_nobody_reviews_itself_and_everyone_is_reviewed_fairly(agents: int, mode, seed: int):
    ids = [f"agent-{i}" for i in range(agents)]
    pairs = review_assignments(ids, mode, seed=seed)
    assert all(reviewer != author for reviewer, author in pairs)
    assert len(set(pairs)) == len(pairs)
    if agents < 2:
        assert pairs == []
    elif mode == "ring":  # each agent reviews one peer and is reviewed by one
        assert sorted(r for r, _ in pairs) == sorted(ids) == sorted(a for _, a in pairs)
    else:  # every ordered pair of peers once
        assert len(pairs) == agents * (agents - 1)
    assert review_assignments(ids, mode, seed=seed) == pairs  # the order is the seed's: reproducible


def test_all_mode_shuffles_the_order_by_seed():
    ids = [f"agent-{i}" for i in range(5)]
    orders = {tuple(review_assignments(ids, "all", seed=seed)) for seed in range(5)}
    assert len(orders) > 1


def test_valid_json():
    review = parse(
        '{"scores": {"correctness": 8, "simplicity": 6}, "strengths": ["s"], "weaknesses": ["w"], "suggestions": ["x"]}'
    )
    assert review.parsed and review.scores == {"correctness": 8.0, "simplicity": 6.0}
    assert review.mean_score == 7.0 and review.weaknesses == ["w"]


def test_json_in_prose_and_fences():
    review = parse('Sure! Here is my review:\n```json\n{"scores": {"Correctness": "9", "simplicity": 5}}\n```\nBye')
    assert review.parsed and review.scores == {"correctness": 9.0, "simplicity": 5.0}
    review = parse('I think {"scores": {"correctness": 7}} is fair')
    assert review.parsed and review.scores == {"correctness": 7.0}


@pytest.mark.parametrize("raw", ["", "great work!", "{not json", '{"scores": "high"}', "[1, 2]"])
def test_garbage_is_recorded_unparsed(raw):
    review = parse(raw)
    assert not review.parsed and review.scores == {} and review.mean_score is None
    assert review.parse_error and review.raw == raw


def test_out_of_range_scores_are_never_used():
    review = parse('{"scores": {"correctness": 42, "simplicity": 0}}')
    assert not review.parsed and "out of range" in review.parse_error
    review = parse('{"scores": {"correctness": 42, "simplicity": 7}}')
    assert not review.parsed and "correctness=42" in review.parse_error
    review = parse('{"scores": {"simplicity": 7}}')  # a criterion left out is no invalid score
    assert review.parsed and review.scores == {"simplicity": 7.0}


def test_booleans_are_not_scores():
    assert not parse('{"scores": {"correctness": true}}').parsed


def test_overall_score_is_accepted_when_no_criterion_is():
    review = parse('{"overall": 6, "strengths": "fine"}')
    assert review.parsed and review.scores == {"overall": 6.0} and review.strengths == ["fine"]


def test_extract_prefers_the_first_object():
    assert extract_json_object('x {"a": 1} y {"b": 2}') == {"a": 1}


DEEP = ['{"scores": ' + "[" * 1000, "[" * 1000, '{"a":' * 1000, "```json\n" + '{"a":' * 1000 + "\n```"]


@pytest.mark.parametrize("raw", DEEP, ids=["scores-list", "list", "object", "fenced"])
def test_deeply_nested_answer_is_unparsed_not_raised(raw):
    review = parse(raw)
    assert not review.parsed and "nested deeper than" in review.parse_error
    assert extract_json_object(raw) is None


def test_deep_garbage_does_not_hide_a_later_review():
    review = parse("[" * 1000 + ' then {"scores": {"correctness": 7}}')
    assert review.parsed and review.scores == {"correctness": 7.0}


def test_only_the_start_of_a_huge_answer_is_read():
    valid = '{"scores": {"correctness": 7}}'
    assert parse("x" * (MAX_JSON_TEXT_CHARS - len(valid)) + valid).parsed
    late = parse("x" * MAX_JSON_TEXT_CHARS + valid)
    assert not late.parsed and f"first {MAX_JSON_TEXT_CHARS:,} characters" in late.parse_error
    assert late.raw.endswith(valid)  # the record keeps the whole answer


@pytest.mark.parametrize(
    "raw",
    ["{" * 200_000, '"\\"' * 100_000, "```" * 100_000, "```json\n{" * 50_000, '{"a": "' + "\\" * 100_000],
    ids=["braces", "escaped-quotes", "fences", "open-fences", "unterminated-string"],
)
def test_pathological_answers_are_unparsed(raw):
    assert not parse(raw).parsed


def test_numbers_json_refuses_are_unparsed_not_raised():
    assert not parse('{"scores": {"correctness": ' + "9" * 5000 + "}}").parsed


def test_a_review_with_any_unusable_score_is_unparsed():
    """The README: a review whose scores are out of range is unparsed; one usable 9 among two 0s is no 9."""
    review = parse_review(
        '{"scores": {"correctness": 0, "simplicity": 9, "security": 0}}',
        [*CRITERIA, "security"],
        reviewer="r",
        author="a",
        round=1,
    )
    assert not review.parsed and review.mean_score is None
    assert "correctness=0" in review.parse_error and "security=0" in review.parse_error
    assert not parse('{"scores": {"correctness": "high", "simplicity": 9}}').parsed


@pytest.mark.parametrize(
    "written", ["Agent-Dev-001", "AGENT-DEV-001", "agent_dev_001", "agent dev 001", "agent-dev-001"]
)
def test_agent_ids_are_redacted_whatever_their_case_and_separators(written):
    text = redact_ids(f"Signed, {written}. See also agent-dev-002.", ["agent-dev-001", "agent-dev-002"])
    assert text == "Signed, [agent]. See also [agent]."


@given(
    st.text(st.characters(categories=["P", "Z", "S"]), max_size=100),
    st.sampled_from(["agent-dev-001", "Agent-Dev-001", "AGENT_DEV_001", "agent dev 001", "agent.dev-001"]),
)
def test_any_spelling_of_an_id_is_redacted_amid_any_punctuation(around, written):
    assert redact_ids(f"{around}{written}{around}", ["agent-dev-001"]) == f"{around}[agent]{around}"
