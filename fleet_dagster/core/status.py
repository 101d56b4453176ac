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

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {DeliberationStatus.COMPLETED, DeliberationStatus.PARTIAL, DeliberationStatus.FAILED, DeliberationStatus.TIMEOUT}
)


def final_status(roles: list[str], councils: list[CouncilResult]) -> DeliberationStatus:
    """TIMEOUT if the deadline cut any council short (what finished is kept); FAILED if a role has no
    scored proposal; PARTIAL if some agent call failed; COMPLETED when every expected call succeeded."""
    by_role = {c.role: c for c in councils}
    if any(c.timed_out for c in councils):
        return DeliberationStatus.TIMEOUT
    if any(role not in by_role or not by_role[role].scored_proposals or by_role[role].error for role in roles):
        return DeliberationStatus.FAILED
    if any(not call.ok for c in councils for call in c.calls):
        return DeliberationStatus.PARTIAL
    return DeliberationStatus.COMPLETED
