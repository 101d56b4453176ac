"""Choosing a council's winner."""

import random
import string
from collections import Counter
from collections.abc import Callable
from typing import NamedTuple

from fleet_dagster.core.answers import calibrated_confidence
from fleet_dagster.core.json_text import extract_json_object
from fleet_dagster.core.records import Proposal, Selection, SelectionMethod


def passes_its_tests(proposal: Proposal) -> bool:
    return proposal.execution is not None and proposal.execution.verdict == "passed"


def rank(proposals: list[Proposal]) -> list[Proposal]:
    """Scored proposals best first: a solution that passes every test before any that does not (code tasks);
    then form before merit: every unflagged proposal before any flagged one; then the higher score, peer
    score, coverage, and agent id."""
    scored = [p for p in proposals if p.score is not None]
    return sorted(
        scored,
        key=lambda p: (
            not passes_its_tests(p),
            bool(p.flags),
            -(p.score or 0),
            -(p.peer_score or 0),
            -(p.coverage or 0),
            p.agent_id,
        ),
    )


def eligible(proposals: list[Proposal]) -> list[Proposal]:
    """The scored proposals that may win, best first: those that pass every test and the unflagged ones, or all
    when every one is flagged (a code's form flags never set aside a solution that its tests pass)."""
    ranked = rank(proposals)
    return [p for p in ranked if passes_its_tests(p) or not p.flags] or ranked


def form_note(proposals: list[Proposal], winner: Proposal) -> str:
    """What the form flags did to the selection, for its rationale."""
    flagged = [p for p in proposals if p.flags and p.score is not None and not passes_its_tests(p)]
    if winner.flags and not passes_its_tests(winner):
        return f"; every proposal is flagged, this one for {winner.flags[0]}"
    return f"; {len(flagged)} flagged proposal{'' if len(flagged) == 1 else 's'} set aside" if flagged else ""


def tests_note(winner: Proposal) -> str:
    """What the tests said of a code task's winner, for its rationale."""
    run = winner.execution
    return "" if run is None else f"{run.verdict}: {run.passed} of {run.total} tests passed; "


def fell_back(selection: Selection, reason: str) -> Selection:
    """`selection` standing in for the one asked for, which could not decide: why, also in its rationale."""
    return selection.model_copy(update={"rationale": f"{selection.rationale} ({reason})", "fallback_reason": reason})


def select_by_score(proposals: list[Proposal]) -> Selection:
    ranked = eligible(proposals)
    if not ranked:
        return Selection(winner=None, method="score", rationale="no proposal could be scored")
    best = ranked[0]
    rationale = f"{tests_note(best)}highest score {best.score:.2f}{form_note(proposals, best)}"
    return Selection(winner=best.agent_id, method="score", rationale=rationale)


class Tally(NamedTuple):
    """A vote among the proposals that may win: each final answer's count and summed weight, and the winner."""

    counts: Counter[str]
    weights: dict[str, float]
    winner: Proposal
    answer: str


def _vote(proposals: list[Proposal], weight: Callable[[Proposal], float]) -> Tally | None:
    """The final answers of the proposals that may win (see `eligible`), each proposal's vote weighing
    `weight(proposal)`; the winner is the best proposal of the answer with the most weight, a tie going to the
    answer whose best proposal ranks higher. None when no proposal states an answer."""
    answered = [(p, p.answer) for p in eligible(proposals) if p.answer is not None]
    if not answered:
        return None
    counts: Counter[str] = Counter()
    weights: dict[str, float] = {}
    best_of: dict[str, tuple[int, Proposal]] = {}
    for rank_index, (p, answer) in enumerate(answered):  # best first: an answer's first proposal is its best
        counts[answer] += 1
        weights[answer] = weights.get(answer, 0.0) + weight(p)
        best_of.setdefault(answer, (rank_index, p))
    answer = min(weights, key=lambda a: (-weights[a], best_of[a][0]))
    return Tally(counts, weights, best_of[answer][1], answer)


def select_by_vote(proposals: list[Proposal]) -> Selection:
    """The most frequent final answer; by score when no proposal states an answer (see `_vote`)."""
    tally = _vote(proposals, lambda _: 1.0)
    if tally is None:
        return fell_back(select_by_score(proposals), "no proposal states a final answer")
    winner, answer = tally.winner, tally.answer
    rationale = (
        f"{tally.counts[answer]} of {tally.counts.total()} final answers are {answer!r}; its best proposal scores "
        f"{winner.score:.2f}{form_note(proposals, winner)}"
    )
    votes = dict(tally.counts.most_common())
    return Selection(winner=winner.agent_id, method="vote", rationale=rationale, votes=votes, answer=answer)


def select_by_weighted_vote(proposals: list[Proposal]) -> Selection:
    """The final answer with the most calibrated confidence behind it (ReConcile): each proposal's vote weighs its
    stated confidence, recalibrated (core/answers.py); by score when no proposal states an answer."""
    tally = _vote(proposals, lambda p: calibrated_confidence(p.confidence))
    if tally is None:
        return fell_back(select_by_score(proposals), "no proposal states a final answer")
    winner, answer, counts, weights = tally.winner, tally.answer, tally.counts, tally.weights
    rationale = (
        f"{answer!r} weighs {weights[answer]:.2f} of {sum(weights.values()):.2f} (calibrated confidences of "
        f"{counts[answer]} of {counts.total()} final answers); its best proposal scores "
        f"{winner.score:.2f}{form_note(proposals, winner)}"
    )
    return Selection(
        winner=winner.agent_id,
        method="weighted-vote",
        rationale=rationale,
        votes=dict(counts.most_common()),
        weighted_votes={a: round(w, 4) for a, w in sorted(weights.items(), key=lambda item: -item[1])},
        answer=answer,
    )


# The selections made from the proposals alone. The architect's is a phase of its own (a model call, council.py),
# which falls back to the score; so does any selection that never came to decide.
SELECT_FROM_PROPOSALS: dict[SelectionMethod, Callable[[list[Proposal]], Selection]] = {
    "score": select_by_score,
    "vote": select_by_vote,
    "weighted-vote": select_by_weighted_vote,
}

# The architect names a winner and says why in a few sentences: the longest answer its schema admits,
# 600 characters (about 200 tokens), fits this budget.
ARCHITECT_MAX_TOKENS = 256


def blind_order(finalists: list[Proposal], seed: int) -> list[Proposal]:
    """The finalists in the order the architect sees them: shuffled by the seed, so that the best score is not
    always first (models favour a position)."""
    shown = list(finalists)
    random.Random(seed).shuffle(shown)
    return shown


def candidate_labels(count: int) -> list[str]:
    """How the architect names finalists: A, B, C... never their agent ids (select_top_k is at most 16)."""
    return list(string.ascii_uppercase[:count])


def architect_json_schema(candidates: list[Proposal]) -> dict:
    """Servers with structured output (vLLM, llama.cpp) can then only name a finalist."""
    return {
        "type": "object",
        "properties": {
            "winner": {"type": "string", "enum": candidate_labels(len(candidates))},
            "rationale": {"type": "string", "maxLength": 600},
        },
        "required": ["winner", "rationale"],
    }


def parse_architect_choice(raw: str, candidates: list[Proposal]) -> Selection | None:
    """The architect's pick among `candidates` (in the order shown, labelled A, B, ...), or None when its
    answer names no finalist (the caller falls back)."""
    data = extract_json_object(raw) or {}
    labels = dict(zip(candidate_labels(len(candidates)), candidates, strict=True))
    chosen = labels.get(str(data.get("winner", "")).strip().upper())
    if chosen is None:
        return None
    rationale = str(data.get("rationale") or "").strip() or "(no rationale given)"
    order = [c.agent_id for c in candidates]
    return Selection(winner=chosen.agent_id, method="architect", rationale=rationale, candidate_order=order)
