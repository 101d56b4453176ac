"""What a deliberation came to, from its councils' results: the winners and the critical path."""

from collections import Counter
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


def failed_calls_summary(councils: list[CouncilResult], shown: int = 3) -> str | None:
    """Why calls failed, in a line: the first distinct errors, each counted. None when none failed."""
    calls = [call for council in councils for call in council.calls]
    errors = Counter(call.error or "failed" for call in calls if not call.ok)
    if not errors:
        return None
    listed = "; ".join(f"{error} (x{count})" for error, count in list(errors.items())[:shown])
    more = f"; {len(errors) - shown} other errors" if len(errors) > shown else ""
    return f"{errors.total()} of {len(calls)} agent calls failed: {listed}{more}"
