"""Choosing a council's winner."""

from fleet_dagster.core.records import Proposal, Selection
from fleet_dagster.core.reviews import extract_json_object


def rank(proposals: list[Proposal]) -> list[Proposal]:
    """Scored proposals best first; ties go to the higher peer score, then coverage, then agent id."""
    scored = [p for p in proposals if p.score is not None]
    return sorted(scored, key=lambda p: (-(p.score or 0), -(p.peer_score or 0), -(p.coverage or 0), p.agent_id))


def select_by_score(proposals: list[Proposal]) -> Selection:
    ranked = rank(proposals)
    if not ranked:
        return Selection(winner=None, method="score", rationale="no proposal could be scored")
    best = ranked[0]
    return Selection(winner=best.agent_id, method="score", rationale=f"highest score {best.score:.2f}")


# The architect names a winner and says why in a few sentences: the longest answer its schema admits,
# 600 characters (about 200 tokens), fits this budget.
ARCHITECT_MAX_TOKENS = 256


def architect_json_schema(candidates: list[Proposal]) -> dict:
    """Servers with structured output (vLLM, llama.cpp) can then only name a finalist."""
    return {
        "type": "object",
        "properties": {
            "winner": {"type": "string", "enum": [c.agent_id for c in candidates]},
            "rationale": {"type": "string", "maxLength": 600},
        },
        "required": ["winner", "rationale"],
    }


def parse_architect_choice(raw: str, candidates: list[Proposal]) -> Selection | None:
    """The architect's pick, or None when its answer names no finalist (the caller falls back)."""
    data = extract_json_object(raw) or {}
    winner = str(data.get("winner", "")).strip()
    if winner not in {c.agent_id for c in candidates}:
        return None
    rationale = str(data.get("rationale") or "").strip() or "(no rationale given)"
    return Selection(winner=winner, method="architect", rationale=rationale)
