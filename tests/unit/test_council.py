"""The council's phases with a scripted model: a pure unit test of the orchestration."""

import asyncio
import json
import threading
import time

from fleet_dagster.core import council as council_module
from fleet_dagster.core.agent_mix import agent_temperature
from fleet_dagster.core.budget import LocalTokenBudget, TokenLedger, bounded_prompt_tokens
from fleet_dagster.core.council import Council, agent_seed, run_council
from fleet_dagster.core.profiles import load_profile
from fleet_dagster.core.records import ChatRequest, ChatResult
from fleet_dagster.core.request import parse_request


class ScriptedModel:
    """Answers after `delay_s`; reviews are valid JSON; agents listed in `failing` fail every call; proposals end
    with `appendix`. Every call uses 10 + 5 tokens and 1 ms."""

    def __init__(
        self,
        failing: set[str] = frozenset(),
        delay_s: float = 0.0,
        architect_answer: str | None = None,
        appendix: str = "",
    ):
        self.failing = failing
        self.appendix = appendix
        self.delay_s = delay_s
        self.architect_answer = architect_answer
        self.requests: list[ChatRequest] = []

    async def complete(self, request: ChatRequest) -> ChatResult:
        self.requests.append(request)
        await asyncio.sleep(self.delay_s)
        if request.agent_id in self.failing:
            return ChatResult(error="HTTP 500: boom", latency_ms=1)
        if request.phase == "review":
            criteria = request.json_schema["properties"]["scores"]["required"]
            content = json.dumps({"scores": {c: 7 for c in criteria}})
        elif request.phase == "select":
            content = self.architect_answer
        else:
            content = f"{request.phase} by {request.agent_id}: rate limiter with redis{self.appendix}"
        return ChatResult(content=content, prompt_tokens=10, completion_tokens=5, latency_ms=1, model="m")

    async def prompt_tokens(self, request: ChatRequest) -> int:
        return bounded_prompt_tokens(request.messages)


def make(model, architect=None, **fields):
    request = parse_request({"task": "Design a rate limiter", "roles": ["DEV"], "agents_per_role": 3, **fields})
    deadline_at = time.time() + request.deadline_s
    return Council(request, load_profile("DEV"), model, deadline_at=deadline_at, call_timeout_s=5, architect=architect)


def test_full_council_runs_every_phase():
    model = ScriptedModel()
    result = asyncio.run(run_council(make(model, rounds=2)))
    phases = [(r.phase, r.round) for r in model.requests]
    assert phases.count(("propose", 0)) == 3 and phases.count(("review", 1)) == 3 and phases.count(("revise", 2)) == 3
    assert len(result.calls) == 3 * 5 and all(c.ok for c in result.calls)
    assert all(p.round == 2 and p.content.startswith("revise") for p in result.proposals)
    assert all(p.peer_score == 7.0 for p in result.proposals)
    assert result.selection.winner is not None and sum(p.is_winner for p in result.proposals) == 1
    assert result.proposals[0].tokens == 5 * 15  # propose + 2 reviews + 2 revisions


def test_ring_reviewers_review_their_next_peer():
    result = asyncio.run(run_council(make(ScriptedModel())))
    reviews = {c.agent_id: c.target_agent_id for c in result.calls if c.phase == "review"}
    assert reviews == {
        "agent-dev-001": "agent-dev-002",
        "agent-dev-002": "agent-dev-003",
        "agent-dev-003": "agent-dev-001",
    }


def test_agents_differ_in_seed_and_temperature():
    model = ScriptedModel()
    asyncio.run(run_council(make(model, rounds=0)))
    proposes = [r for r in model.requests if r.phase == "propose"]
    assert len({r.seed for r in proposes}) == 3 and len({r.temperature for r in proposes}) == 3
    profile = load_profile("DEV")
    assert agent_temperature(profile, 0, 3) < profile.temperature < agent_temperature(profile, 2, 3)
    assert agent_seed("d", "DEV", 0) == agent_seed("d", "DEV", 0) != agent_seed("d", "DEV", 1)


def test_calls_of_a_phase_run_concurrently():
    started = time.perf_counter()
    asyncio.run(run_council(make(ScriptedModel(delay_s=0.2), agents_per_role=8)))
    assert time.perf_counter() - started < 0.2 * 3 * 3  # 3 phases; sequential would be 0.2 * 24


def test_failing_agent_is_recorded_and_others_carry_on():
    result = asyncio.run(run_council(make(ScriptedModel(failing={"agent-dev-002"}))))
    failed = next(p for p in result.proposals if p.agent_id == "agent-dev-002")
    assert failed.content is None and "HTTP 500" in failed.error and failed.score is None
    assert len(result.scored_proposals) == 2
    assert any(not c.ok for c in result.calls)


def test_deadline_keeps_what_finished():
    council = make(ScriptedModel(delay_s=0.3), deadline_s=0.5)
    result = asyncio.run(run_council(council))
    assert result.timed_out
    assert all(p.content for p in result.proposals)  # proposals finished before the deadline
    assert result.selection.winner is not None


def test_architect_selection_and_its_fallback():
    chosen = asyncio.run(
        run_council(
            make(ScriptedModel(architect_answer='{"winner": "C", "rationale": "clearest"}'), selection="architect")
        )
    )
    assert chosen.selection.method == "architect" and chosen.selection.winner == chosen.selection.candidate_order[2]
    model = ScriptedModel(architect_answer='{"winner": "A", "rationale": "r"}')
    architect = load_profile("ARCHITECT").model_copy(update={"model": "architect-model"})
    asyncio.run(run_council(make(model, architect, selection="architect", select_top_k=2)))
    select = next(r for r in model.requests if r.phase == "select")
    assert len(select.json_schema["properties"]["winner"]["enum"]) == 2  # only the top k can be named
    assert select.model == "architect-model" and {r.model for r in model.requests if r.phase != "select"} == {
        load_profile("DEV").model
    }
    fallback = asyncio.run(run_council(make(ScriptedModel(architect_answer="no idea"), selection="architect")))
    assert fallback.selection.method == "score" and "named no finalist" in fallback.selection.rationale


def test_judging_is_blind():
    """Reviewers never see whose proposal they judge, nor the architect whose finalists it picks among."""
    model = ScriptedModel(architect_answer='{"winner": "A", "rationale": "r"}')
    result = asyncio.run(run_council(make(model, selection="architect", review_mode="all", rounds=2)))
    ids = {f"agent-dev-{i:03d}" for i in (1, 2, 3)}
    for request in model.requests:
        prompt = "\n".join(m["content"] for m in request.messages)
        seen = {aid for aid in ids if aid in prompt}
        if request.phase == "review":
            assert seen <= {request.agent_id}, "a review prompt names another agent"
        if request.phase == "select":
            assert seen == set() and set(request.json_schema["properties"]["winner"]["enum"]) == {"A", "B", "C"}
    assert sorted(result.selection.candidate_order) == sorted(ids)
    assert all(r.reviewer != r.author for r in result.reviews) and len(result.reviews) == 2 * 6
    assert result.judging_seed is not None


def test_tokens_of_concurrent_calls_by_one_agent_all_count():
    # In "all" mode an agent's reviews run at once: each must add to its proposal's sums, none overwrite another.
    result = asyncio.run(run_council(make(ScriptedModel(delay_s=0.01), agents_per_role=4, review_mode="all")))
    for p in result.proposals:
        calls = [c for c in result.calls if c.agent_id == p.agent_id]
        assert len(calls) == 1 + 3 + 1  # propose, review 3 peers, revise
        assert p.tokens == sum(c.tokens for c in calls) == 5 * 15
        assert p.latency_ms == sum(c.latency_ms for c in calls) == 5


def test_hostile_code_block_fails_a_check_not_the_council():
    fence = "\n```json\n" + "[" * 1200 + "\n```\n"
    result = asyncio.run(run_council(make(ScriptedModel(appendix=fence))))
    assert result.error is None and len(result.scored_proposals) == 3
    assert all([c.passed for c in p.check_results] == [False] for p in result.proposals)


def test_run_council_returns_what_it_kept_when_scoring_breaks(monkeypatch):
    def broken(proposal, reviews, items, sources):  # fault injection: scoring with a bug
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(council_module, "score_proposal", broken)
    for selection in ("score", "architect"):
        result = asyncio.run(run_council(make(ScriptedModel(architect_answer="{}"), selection=selection)))
        assert "RecursionError" in result.error and result.selection.winner is None
        assert len(result.calls) == 9 and len(result.reviews) == 3  # nothing that finished is lost
        assert all(p.content and p.score is None for p in result.proposals)


class AnsweringModel(ScriptedModel):
    """Proposals and revisions end with `Answer: <answers[agent]>`; revisions repeat the proposal when `steady`."""

    def __init__(self, answers: dict[str, str], steady: bool = False, tokens: int = 15):
        super().__init__()
        self.answers, self.steady, self.tokens = answers, steady, tokens

    async def complete(self, request: ChatRequest) -> ChatResult:
        result = await super().complete(request)
        if request.phase in ("propose", "revise"):
            phase = "propose" if self.steady else request.phase
            content = f"{phase} of {request.agent_id}: the sum.\nAnswer: {self.answers[request.agent_id]}"
            result = result.model_copy(update={"content": content})
        return result.model_copy(update={"prompt_tokens": self.tokens - 5, "completion_tokens": 5})


def test_vote_selection_through_the_council():
    model = AnsweringModel({"agent-dev-001": "7", "agent-dev-002": "9", "agent-dev-003": "7"})
    result = asyncio.run(run_council(make(model, selection="vote", rounds=1)))
    assert result.selection.method == "vote" and result.selection.votes == {"7": 2, "9": 1}
    assert result.winner.agent_id in {"agent-dev-001", "agent-dev-003"} and result.winner.answer == "7"


def test_agents_that_agree_skip_the_remaining_rounds():
    model = AnsweringModel(dict.fromkeys(("agent-dev-001", "agent-dev-002", "agent-dev-003"), "7"))
    result = asyncio.run(run_council(make(model, rounds=3)))
    assert {c.phase for c in result.calls} == {"propose"} and len(result.calls) == 3
    assert "agree on the final answer '7'" in result.early_stop and "rounds 1-3 skipped" in result.early_stop
    assert result.calls_saved == 3 * (3 + 3)  # each round: 3 ring reviews and 3 revisions


def test_a_round_that_changes_nothing_ends_the_rounds():
    model = AnsweringModel({"agent-dev-001": "1", "agent-dev-002": "2", "agent-dev-003": "3"}, steady=True)
    result = asyncio.run(run_council(make(model, rounds=3)))
    assert {c.round for c in result.calls} == {0, 1}
    assert result.early_stop == "round 1 changed no proposal: rounds 2-3 skipped" and result.calls_saved == 12


def test_the_token_budget_is_shared_and_never_passed():
    """Two councils on one ledger: calls that could pass it are not made; what finished is scored."""
    ledger = TokenLedger(limit=2500)
    answers = {f"agent-dev-00{i}": str(i) for i in (1, 2, 3)}
    councils = [make(AnsweringModel(answers, tokens=400), deliberation_id=f"budget-{i}") for i in (1, 2)]
    for council in councils:
        council.budget = LocalTokenBudget(ledger)
    results = [asyncio.run(run_council(c)) for c in councils]
    spent = sum(call.tokens for r in results for call in r.calls)
    assert spent == ledger.used <= 2500 and ledger.held == 0
    assert any(r.budget_exhausted for r in results) and sum(r.calls_not_made for r in results) > 0
    assert all(r.proposals_done >= 1 for r in results[:1])  # the first council's proposals are kept and scored
    assert results[0].winner is not None and results[0].winner.score is not None


def test_each_call_carries_its_profiles_repetition_controls():
    model = ScriptedModel(architect_answer='{"winner": "A", "rationale": "r"}')
    architect = load_profile("ARCHITECT").model_copy(update={"frequency_penalty": 0.1, "repetition_penalty": None})
    council = make(model, architect, selection="architect")
    council.profile = council.profile.model_copy(update={"frequency_penalty": 0.4, "repetition_penalty": 1.1})
    asyncio.run(run_council(council))
    agents = [r for r in model.requests if r.phase != "select"]
    assert agents and all(r.frequency_penalty == 0.4 and r.repetition_penalty == 1.1 for r in agents)
    select = next(r for r in model.requests if r.phase == "select")  # the architect's profile: its own controls
    assert (select.frequency_penalty, select.repetition_penalty) == (0.1, None)


def test_scoring_leaves_the_event_loop_free(monkeypatch):
    """Scoring is CPU work over untrusted text: done on the loop, it would stall every other council of the
    runner (and its progress answers) until it ends. The stub asks the loop to run a callback and waits for it,
    which only a loop that is not busy scoring can do."""
    loop_answered: list[bool] = []
    real = council_module.score_proposal

    def asks_the_loop(*args):  # fault injection: scoring that needs the loop to turn while it runs
        ran = threading.Event()
        loop.call_soon_threadsafe(ran.set)
        loop_answered.append(ran.wait(timeout=30 if all(loop_answered) else 0))
        return real(*args)

    async def council_on_this_loop():
        nonlocal loop
        loop = asyncio.get_running_loop()
        return await run_council(make(ScriptedModel()))

    loop: asyncio.AbstractEventLoop
    monkeypatch.setattr(council_module, "score_proposal", asks_the_loop)
    result = asyncio.run(council_on_this_loop())
    assert result.error is None and len(result.scored_proposals) == 3
    assert loop_answered and all(loop_answered), loop_answered


def test_the_selection_says_what_was_asked_what_decided_and_why_it_fell_back():
    by_vote = asyncio.run(run_council(make(ScriptedModel(), selection="vote"))).selection  # no proposal answers
    assert (by_vote.asked, by_vote.method) == ("vote", "score")
    assert by_vote.fallback_reason == "no proposal states a final answer"
    unnamed = asyncio.run(run_council(make(ScriptedModel(architect_answer="no idea"), selection="architect")))
    assert (unnamed.selection.asked, unnamed.selection.method) == ("architect", "score")
    assert "named no finalist" in unnamed.selection.fallback_reason
    alone = asyncio.run(
        run_council(make(ScriptedModel(failing={"agent-dev-001", "agent-dev-002"}), selection="architect"))
    )
    assert (alone.selection.asked, alone.selection.method) == ("architect", "score")
    assert "1 proposal" in alone.selection.fallback_reason
    voted = asyncio.run(
        run_council(
            make(
                AnsweringModel(dict.fromkeys(("agent-dev-001", "agent-dev-002", "agent-dev-003"), "7")),
                selection="vote",
            )
        )
    )
    assert (voted.selection.asked, voted.selection.method, voted.selection.fallback_reason) == ("vote", "vote", None)
