"""Mixed councils through the council's phases, with a scripted model per name: each agent's calls go to its model,
reviews can stay between models, and a vote can weigh each answer by its agent's calibrated confidence."""

import asyncio
import json
import time

import pytest

from fleet_dagster.core.answers import calibrated_confidence, stated_confidence
from fleet_dagster.core.budget import bounded_prompt_tokens
from fleet_dagster.core.council import Council, run_council
from fleet_dagster.core.profiles import load_profile
from fleet_dagster.core.records import ChatRequest, ChatResult, Proposal
from fleet_dagster.core.request import parse_request
from fleet_dagster.core.selection import select_by_vote, select_by_weighted_vote


class ModelPerName:
    """Answers as the model named in the call: `answers[model]` is its proposal text; reviews are valid JSON."""

    def __init__(self, answers: dict[str, str]):
        self.answers = answers
        self.requests: list[ChatRequest] = []

    async def complete(self, request: ChatRequest) -> ChatResult:
        self.requests.append(request)
        if request.phase == "review":
            criteria = request.json_schema["properties"]["scores"]["required"]
            content = json.dumps({"scores": {c: 7 for c in criteria}})
        else:
            content = self.answers[request.model]
        return ChatResult(content=content, prompt_tokens=10, completion_tokens=5, latency_ms=1, model=request.model)

    async def prompt_tokens(self, request: ChatRequest) -> int:
        return bounded_prompt_tokens(request.messages)


def council(model: ModelPerName, **fields) -> Council:
    request = parse_request({"task": "What is 6 * 7?", "roles": ["DEV"], "agents_per_role": 3, **fields})
    return Council(request, load_profile("DEV"), model, deadline_at=time.time() + 60, call_timeout_s=5)


def test_each_agents_calls_go_to_its_model_and_its_proposal_says_which():
    model = ModelPerName({"a": "Answer: 42", "b": "Answer: 41"})
    result = asyncio.run(run_council(council(model, agent_models=["a", "b"], rounds=1)))
    called = {(r.agent_id, r.model) for r in model.requests}
    assert called == {("agent-dev-001", "a"), ("agent-dev-002", "b"), ("agent-dev-003", "a")}
    assert [p.model for p in result.proposals] == ["a", "b", "a"]
    assert {(c.agent_id, c.model) for c in result.calls} == called


def test_cross_model_reviews_never_let_a_model_judge_its_own():
    model = ModelPerName({"a": "Answer: 42", "b": "Answer: 41"})
    result = asyncio.run(
        run_council(council(model, agent_models=["a", "b"], rounds=1, review_mode="all", cross_model_reviews=True))
    )
    models = {p.agent_id: p.model for p in result.proposals}
    pairs = [(c.agent_id, c.target_agent_id) for c in result.calls if c.phase == "review"]
    assert sorted(pairs) == [
        ("agent-dev-001", "agent-dev-002"),
        ("agent-dev-002", "agent-dev-001"),
        ("agent-dev-002", "agent-dev-003"),
        ("agent-dev-003", "agent-dev-002"),
    ]
    assert all(models[reviewer] != models[author] for reviewer, author in pairs)


def test_a_ring_of_cross_model_reviews_skips_to_the_next_other_model():
    model = ModelPerName({"a": "x", "b": "y"})
    result = asyncio.run(
        run_council(council(model, agent_models=["a", "b"], agents_per_role=4, rounds=1, cross_model_reviews=True))
    )
    pairs = {c.agent_id: c.target_agent_id for c in result.calls if c.phase == "review"}
    assert pairs == {
        "agent-dev-001": "agent-dev-002",
        "agent-dev-002": "agent-dev-003",
        "agent-dev-003": "agent-dev-004",
        "agent-dev-004": "agent-dev-001",
    }
    lone = asyncio.run(run_council(council(model, agent_models=["a"], rounds=1, cross_model_reviews=True)))
    assert not [c for c in lone.calls if c.phase == "review"]  # every peer shares its model


def test_weighted_vote_lets_the_sure_minority_win_and_asks_for_confidence():
    model = ModelPerName({"a": "Answer: 41\nConfidence: 0.5", "b": "Answer: 42\nConfidence: 1.0"})
    result = asyncio.run(run_council(council(model, agent_models=["a", "b"], rounds=1, selection="weighted-vote")))
    selection = result.selection
    assert selection.method == "weighted-vote" and selection.answer == "42" and selection.winner == "agent-dev-002"
    assert selection.votes == {"41": 2, "42": 1} and selection.weighted_votes == {"42": 1.0, "41": 0.2}
    assert [p.confidence for p in result.proposals] == [0.5, 1.0, 0.5]
    written = [r for r in model.requests if r.phase in ("propose", "revise")]
    assert len(written) == 6 and all("Confidence:" in r.messages[-1]["content"] for r in written)
    plain = asyncio.run(run_council(council(model, agent_models=["a", "b"], rounds=0, selection="vote")))
    assert plain.selection.answer == "41"  # counted once each, the majority wins
    assert not any("Confidence:" in r.messages[-1]["content"] for r in model.requests[-3:])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Answer: 4\nConfidence: 0.85", 0.85),
        ("**Confidence:** 90%", 0.9),
        ("confidence = 75", 0.75),
        ("Confidence: 0.2\nConfidence: 1", 1.0),
        ("I have no Confidence: 0.9 line", None),
        ('{"answer": "4", "confidence": 0.6}', 0.6),
        ("Confidence: 170", None),
        ('{"confidence": true}', None),
        ("Confidence: high", None),
        ("", None),
        (None, None),
    ],
)
def test_a_stated_confidence_is_read_bounded(text, expected):
    assert stated_confidence(text) == expected


def test_calibration_weighs_certainty_most_and_silence_least():
    assert [calibrated_confidence(c) for c in (1.0, 0.95, 0.85, 0.7, 0.3, None)] == [1.0, 0.8, 0.5, 0.3, 0.1, 0.1]


def proposal(aid: str, answer: str | None, confidence: float | None, score: float = 5.0) -> Proposal:
    return Proposal(
        role="DEV", agent_id=aid, round=0, temperature=0.7, seed=1, score=score, answer=answer, confidence=confidence
    )


def test_weighted_vote_without_answers_falls_back_to_the_score_as_vote_does():
    proposals = [proposal("x", None, 1.0, 6.0), proposal("y", None, None, 7.0)]
    for select in (select_by_vote, select_by_weighted_vote):
        chosen = select(proposals)
        assert chosen.winner == "y" and chosen.fallback_reason == "no proposal states a final answer"
