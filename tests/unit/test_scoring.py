import random

import pytest

from fleet_dagster.core import scoring
from fleet_dagster.core.records import Proposal, Review
from fleet_dagster.core.scoring import (
    MAX_CHECK_CHARS,
    MAX_CHECK_DEPTH,
    MAX_CHECKED_BLOCKS,
    addresses,
    coverage_items,
    run_checks,
    score_proposal,
)

REQUIREMENTS = [
    "Limit each API key to 100 requests per minute",
    "Return HTTP 429 with a Retry-After header when the limit is exceeded",
    "Store counters in Redis so that all gateway replicas share them",
]
MEETS = """We use a token bucket per API key, 100 requests per minute, kept in Redis so every gateway
replica shares the counters. When the limit is exceeded the gateway returns HTTP 429 and a
Retry-After header with the seconds until the bucket refills.
```python
def allow(bucket, now):
    return bucket.take(now)
```"""
IGNORES = """Rate limiting is important for many systems. Teams should think carefully about fairness and
choose an approach that suits their organisation and culture."""


def proposal(content: str | None, agent: str = "agent-dev-001") -> Proposal:
    return Proposal(role="DEV", agent_id=agent, round=1, content=content, temperature=0.7, seed=1)


def review(author: str, *scores: float) -> Review:
    return Review(reviewer="x", author=author, round=1, parsed=True, scores={f"c{i}": s for i, s in enumerate(scores)})


def test_addresses_matches_content_words_with_crude_stemming():
    assert addresses("requests are limited per minute for each key", "Limit each API key to 100 requests per minute")
    assert not addresses("nothing relevant here", "Limit each API key to 100 requests per minute")


def test_proposal_that_meets_requirements_beats_one_that_ignores_them():
    good = score_proposal(proposal(MEETS), [], REQUIREMENTS, REQUIREMENTS)
    bad = score_proposal(proposal(IGNORES), [], REQUIREMENTS, REQUIREMENTS)
    assert good.coverage == 1.0 and bad.coverage == 0.0
    assert good.score > bad.score
    assert bad.missed == REQUIREMENTS


def test_requirements_outweigh_equal_peer_reviews():
    good = score_proposal(proposal(MEETS), [review("agent-dev-001", 6, 6)], REQUIREMENTS, REQUIREMENTS)
    bad = score_proposal(proposal(IGNORES), [review("agent-dev-001", 6, 6)], REQUIREMENTS, REQUIREMENTS)
    assert good.peer_score == bad.peer_score == 6.0
    assert good.score > bad.score


def test_components_are_reported():
    scored = score_proposal(proposal(MEETS), [review("a", 8, 6), review("a", 4)], REQUIREMENTS, REQUIREMENTS)
    assert scored.peer_score == (7 + 4) / 2
    assert scored.coverage == 1.0 and scored.checks == 1.0
    assert 0 <= scored.score <= 10


def test_unparsed_reviews_give_no_peer_score():
    unparsed = Review(reviewer="x", author="a", round=1, parsed=False, raw="?")
    scored = score_proposal(proposal(MEETS), [unparsed], REQUIREMENTS, REQUIREMENTS)
    assert scored.peer_score is None and scored.score is not None


def test_failed_proposal_is_not_scored():
    assert score_proposal(proposal(None), [], REQUIREMENTS, REQUIREMENTS).score is None


def test_check_plugins():
    text = (
        '```python\ndef f(:\n```\n```json\n{"a": 1}\n```\n```yaml\na: [1\n```\n```python\nx = 1\n```\n```bash\nls\n```'
    )
    results = run_checks(text)
    assert [(r.language, r.passed) for r in results] == [
        ("python", False),
        ("json", True),
        ("yaml", False),
        ("python", True),
    ]
    assert "SyntaxError" in results[0].error


def test_broken_code_lowers_the_score():
    broken = MEETS.replace("return bucket.take(now)", "return bucket.take(now")
    assert (
        score_proposal(proposal(broken), [], REQUIREMENTS, REQUIREMENTS).score
        < score_proposal(proposal(MEETS), [], REQUIREMENTS, REQUIREMENTS).score
    )


def test_coverage_items_fall_back_to_the_task():
    assert coverage_items("Design a rate limiter. Keep it simple", [], "") == [
        "Design a rate limiter",
        "Keep it simple",
    ]
    assert coverage_items("T", ["r1"], "- rubric line\n\n* another") == ["r1", "rubric line", "another"]


def fenced(language: str, code: str) -> str:
    return f"```{language}\n{code}\n```\n"


HOSTILE = {
    "json": "[" * 1200,
    "yaml": "[" * 1200,
    "yml": "- " * 5000 + "x",
    "python": "(" * 1200,
    "py": "x" + ".a" * 5000,
}


@pytest.mark.parametrize("language", HOSTILE)
def test_hostile_block_fails_its_own_check(language):
    results = run_checks(fenced(language, HOSTILE[language]) + fenced("python", "x = 1"))
    assert [(r.language, r.passed) for r in results] == [(language, False), ("python", True)]
    assert results[0].error


def test_too_deep_is_reported_before_the_parser_sees_it():
    (result,) = run_checks(fenced("json", "[" * (MAX_CHECK_DEPTH + 1) + "]" * (MAX_CHECK_DEPTH + 1)))
    assert not result.passed and f"nested deeper than {MAX_CHECK_DEPTH}" in result.error
    (result,) = run_checks(fenced("json", "[" * MAX_CHECK_DEPTH + "]" * MAX_CHECK_DEPTH))
    assert result.passed


def test_oversized_block_fails_its_check_unread():
    (result,) = run_checks(fenced("json", "[" + "1," * MAX_CHECK_CHARS + "1]"))
    assert not result.passed and f"{MAX_CHECK_CHARS:,} characters" in result.error


def test_only_the_first_blocks_are_checked():
    results = run_checks(fenced("json", "{}") * (MAX_CHECKED_BLOCKS + 5))
    assert len(results) == MAX_CHECKED_BLOCKS and all(r.passed for r in results)


def test_a_check_plugin_that_raises_fails_only_its_check(monkeypatch):
    def broken(code: str) -> str | None:  # fault injection: a plugin with a bug
        raise RuntimeError("plugin bug")

    monkeypatch.setitem(scoring.CHECK_PLUGINS, "json", broken)
    results = run_checks(fenced("json", "{}") + fenced("python", "x = 1"))
    assert [(r.language, r.passed) for r in results] == [("json", False), ("python", True)]
    assert "RuntimeError: plugin bug" in results[0].error


def test_proposal_with_hostile_blocks_is_still_scored():
    content = MEETS + "".join(fenced(language, code) for language, code in HOSTILE.items())
    scored = score_proposal(proposal(content), [review("agent-dev-001", 7)], REQUIREMENTS, REQUIREMENTS)
    assert scored.checks == 1 / 6 and scored.coverage == 1.0 and 0 <= scored.score <= 10


def salad(seed: int) -> str:
    """The requirements' words shuffled: every word is there, no requirement is stated."""
    requirement_words = " ".join(REQUIREMENTS).split()
    random.Random(seed).shuffle(requirement_words)
    return " ".join(requirement_words)


def test_requirement_words_shuffled_into_salad_do_not_cover_the_requirements():
    honest = score_proposal(proposal(MEETS), [], REQUIREMENTS, [])
    salads = [score_proposal(proposal(salad(seed)), [], REQUIREMENTS, []) for seed in range(100)]
    assert honest.coverage == 1.0
    # A few words of a requirement can still fall together by chance: most salads cover little, on average.
    assert sum(s.coverage for s in salads) / len(salads) < 0.4
    assert sum(s.coverage == 1.0 for s in salads) <= 5
    assert sum(s.score for s in salads) / len(salads) < honest.score / 2


@pytest.mark.parametrize("prose", ["This is a sentence about rate limits.", "42", "", "- just\n  text: [ok"])
def test_a_yaml_block_must_be_a_mapping_or_a_list(prose):
    (result,) = run_checks(fenced("yaml", prose))
    assert not result.passed and result.error
    assert all(r.passed for r in run_checks(fenced("yaml", "limit: 100\nwindow: 60s") + fenced("yml", "- a\n- b")))
