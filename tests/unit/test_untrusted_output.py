"""Property tests: whatever a model answers (deep, huge, binary or random text), reading and scoring it never
raises, keeps every number in range, and reads no more than the caps allow."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet_dagster.core.json_text import MAX_JSON_TEXT_CHARS, extract_json_object
from fleet_dagster.core.records import Proposal, Review
from fleet_dagster.core.reviews import parse_review
from fleet_dagster.core.scoring import CHECK_PLUGINS, MAX_CHECKED_BLOCKS, run_checks, score_proposal
from fleet_dagster.core.selection import parse_architect_choice

CRITERIA = ["correctness", "simplicity"]
FINALISTS = [
    Proposal(role="DEV", agent_id=f"agent-dev-00{i}", round=1, content="x", temperature=0.5, seed=1, score=5)
    for i in (1, 2)
]
# Modest counts keep the unit suite fast; no deadline, since the machine may be shared (no timing assertions).
PROPERTY = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

OPENERS = st.sampled_from(["[", "{", '{"a":', '{"scores": ', "(", "- ", "```json\n{", '"', "\\", "```"])
deep = st.builds(lambda opener, n, tail: opener * n + tail, OPENERS, st.integers(0, 3_000), st.text(max_size=40))
huge = st.builds(lambda chunk, n: chunk * n, st.text(min_size=1, max_size=8), st.integers(1, 60_000))
binary = st.binary(max_size=2_000).map(lambda b: b.decode("utf-8", "surrogateescape"))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=30,
)
json_like = json_values.map(json.dumps)
prose_around = st.builds(
    lambda before, body, after, fence: f"{before}\n```json\n{body}\n```\n{after}" if fence else before + body + after,
    st.text(max_size=60),
    json_like,
    st.text(max_size=60),
    st.booleans(),
)
untrusted = st.one_of(st.text(), deep, huge, binary, json_like, prose_around)

LANGUAGES = st.sampled_from([*CHECK_PLUGINS, "bash", "", "JSON"])
blocks = st.lists(st.tuples(LANGUAGES, st.one_of(st.text(max_size=200), deep, binary, json_like)), max_size=12)
proposals = st.one_of(
    untrusted, blocks.map(lambda bs: "".join(f"Plan.\n```{lang}\n{code}\n```\n" for lang, code in bs))
)


def parse(raw: str) -> Review:
    return parse_review(raw, CRITERIA, reviewer="r", author="a", round=1)


@PROPERTY
@given(untrusted)
def test_any_answer_is_a_review_or_unparsed(raw):
    review = parse(raw)
    assert review.raw == raw
    if review.parsed:
        assert review.scores and all(1 <= s <= 10 for s in review.scores.values())
        assert 1 <= review.mean_score <= 10
    else:
        assert review.scores == {} and review.parse_error and review.mean_score is None
    assert extract_json_object(raw) is None or isinstance(extract_json_object(raw), dict)
    choice = parse_architect_choice(raw, FINALISTS)
    assert choice is None or choice.winner in {f.agent_id for f in FINALISTS}


@PROPERTY
@given(untrusted, st.dictionaries(st.text(max_size=10), json_values, min_size=1).map(json.dumps))
def test_nothing_past_the_cap_is_read(raw, beyond):
    read = raw[:MAX_JSON_TEXT_CHARS]
    padded = read + "x" * (MAX_JSON_TEXT_CHARS - len(read)) + beyond
    assert extract_json_object(padded) == extract_json_object(padded[:MAX_JSON_TEXT_CHARS])


@PROPERTY
@given(
    st.dictionaries(st.sampled_from(CRITERIA), st.integers(1, 10), min_size=1),
    st.text(alphabet=st.characters(exclude_characters="{`"), max_size=80),
    st.booleans(),
)
def test_well_formed_reviews_are_read_exactly(scores, prose, fence):
    body = json.dumps({"scores": scores, "strengths": ["clear"]})
    review = parse(f"{prose}\n```json\n{body}\n```" if fence else f"{prose} {body}")
    assert review.parsed and review.scores == {c: float(s) for c, s in scores.items()}


@PROPERTY
@given(proposals, st.lists(untrusted, max_size=3))
def test_any_proposal_is_scored_in_range(content, answers):
    checks = run_checks(content)
    assert len(checks) <= MAX_CHECKED_BLOCKS and all(c.passed == (c.error is None) for c in checks)
    reviews = [parse(answer) for answer in answers]
    proposal = Proposal(role="DEV", agent_id="a", round=1, content=content, temperature=0.5, seed=1)
    scored = score_proposal(proposal, reviews, ["Limit each API key to 100 requests per minute"], [])
    assert 0 <= scored.score <= 10 and 0 <= scored.coverage <= 1
    assert scored.peer_score is None or 1 <= scored.peer_score <= 10
    assert scored.checks is None or 0 <= scored.checks <= 1
