"""What a deliberation came to, from its councils' results: the winners and the critical path."""

from typing import Any

from fleet_dagster.core.records import CouncilResult


def winners(councils: list[CouncilResult]) -> dict[str, dict[str, Any]]:
    """Each role's winner, for the roles that have one."""
    return {
        c.role: {
            "agent_id": c.winner.agent_id,
            "score": c.winner.score,
            "method": c.selection.method,
            "rationale": c.selection.rationale,
        }
        for c in councils
        if c.winner is not None
    }


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
