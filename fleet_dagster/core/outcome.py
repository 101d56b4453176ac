"""What a deliberation came to, from its councils' results: the winners and the critical path."""

from collections import Counter
from typing import Any

from fleet_dagster.core.records import CouncilResult

# What the status document and the final event say of each winner; the asset's metadata keeps the rest.
BRIEF_WINNER_FIELDS = ("agent_id", "score", "selection", "decided_by", "fallback_reason", "answer", "votes")


def winners(councils: list[CouncilResult]) -> dict[str, dict[str, Any]]:
    """Each role's winner, for the roles that have one: the selection asked for, what decided (another method
    where the asked one could not, and why); by vote, its answer and every answer's votes."""
    return {
        c.role: {
            "agent_id": c.winner.agent_id,
            "score": c.winner.score,
            "selection": c.selection.asked,
            "decided_by": c.selection.method,
            "fallback_reason": c.selection.fallback_reason,
            "rationale": c.selection.rationale,
            "flags": c.winner.flags,
            **({"answer": c.selection.answer, "votes": c.selection.votes} if c.selection.method == "vote" else {}),
        }
        for c in councils
        if c.winner is not None
    }


def brief_winners(winners_by_role: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        role: {name: winner[name] for name in BRIEF_WINNER_FIELDS if name in winner}
        for role, winner in winners_by_role.items()
    }


def budget_summary(max_total_tokens: int | None, councils: list[CouncilResult]) -> dict[str, Any]:
    """The token budget and what it did: whether it left calls unmade, and how many."""
    return {
        "max_total_tokens": max_total_tokens,
        "total_tokens": sum(call.tokens for council in councils for call in council.calls),
        "exhausted": any(c.budget_exhausted for c in councils),
        "calls_not_made": sum(c.calls_not_made for c in councils),
    }


def early_stops(councils: list[CouncilResult]) -> dict[str, dict[str, Any]]:
    """The councils whose agents agreed before their last round: why, and the calls that saved."""
    return {c.role: {"reason": c.early_stop, "calls_saved": c.calls_saved} for c in councils if c.early_stop}


def critical_path_ms(councils: list[CouncilResult]) -> float:
    """Longest chain of dependent calls: per council, the slowest call of each phase, summed."""
    longest = 0.0
    for council in councils:
        slowest: dict[tuple[str, int], float] = {}
        for call in council.calls:
            key = (call.phase, call.round)
            slowest[key] = max(slowest.get(key, 0.0), call.latency_ms)
        longest = max(longest, sum(slowest.values()))
    return longest


def failed_calls_summary(councils: list[CouncilResult], shown: int = 3) -> str | None:
    """Why calls failed, in a line: the first distinct errors, each counted. None when none failed."""
    calls = [call for council in councils for call in council.calls]
    errors = Counter(call.error or "failed" for call in calls if not call.ok)
    if not errors:
        return None
    listed = "; ".join(f"{error} (x{count})" for error, count in list(errors.items())[:shown])
    more = f"; {len(errors) - shown} other errors" if len(errors) > shown else ""
    return f"{errors.total()} of {len(calls)} agent calls failed: {listed}{more}"
