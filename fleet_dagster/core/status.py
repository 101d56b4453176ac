"""Status rules of a deliberation."""

from enum import StrEnum

from fleet_dagster.core.records import CouncilResult


class DeliberationStatus(StrEnum):
    UNKNOWN = "UNKNOWN"
    PENDING = "PENDING"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    PARTIAL = "PARTIAL"
    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"


def final_status(roles: list[str], councils: list[CouncilResult]) -> DeliberationStatus:
    """TIMEOUT if the deadline cut any council short (what finished is kept); FAILED if a role has no
    scored proposal (or no council); PARTIAL if some agent call failed, the token budget left calls unmade or
    a council reported an error; COMPLETED when every call made succeeded and none was left unmade (calls that
    agreeing agents saved were never needed). A council's error alone never fails a role that has
    a scored proposal: that proposal is still a result."""
    by_role = {c.role: c for c in councils}
    if any(c.timed_out for c in councils):
        return DeliberationStatus.TIMEOUT
    if any(role not in by_role or not by_role[role].scored_proposals for role in roles):
        return DeliberationStatus.FAILED
    if any(c.error or c.budget_exhausted for c in councils) or any(not call.ok for c in councils for call in c.calls):
        return DeliberationStatus.PARTIAL
    return DeliberationStatus.COMPLETED
