"""Which deliberations retention archives, given what the instance says about each one and the time now.

Plain Python: the Dagster side (retention.py) gathers the facts and does the archiving.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import Field

from fleet_dagster.core.env_settings import DefaultStatus, EnvSettings

# The one default (from bench/partition_scale.py). Lookups (status, the sensor's prior use) and
# a retention run's cost per deliberation stay flat up to 50k partitions; the asset page's partition query grows
# with them: on Postgres 0.15 s warm (0.35 s first) and 0.5 MB at 10k, 0.6 s (1.5 s) and 2.5 MB at 50k. 14 days
# keeps one deliberation a minute around the clock (20k partitions) near 0.25 s and 1 MB, and is twice the NATS
# stream's 7 days, so a request still in the stream finds its run (duplicate or reused id). A busier deployment
# sets FLEET_RETENTION_DAYS to about 20,000 / its deliberations a day.
DEFAULT_MAX_AGE_DAYS = 14.0
# Per run: 70 ms a deliberation on SQLite, 135 ms on Postgres, so about a minute; hourly, 12,000 a day.
DEFAULT_BATCH = 500


class RetentionSettings(EnvSettings):
    max_age_days: float = Field(
        default=DEFAULT_MAX_AGE_DAYS,
        gt=0,
        validation_alias="FLEET_RETENTION_DAYS",
        description="Archive what is older than this.",
    )
    batch: int = Field(
        default=DEFAULT_BATCH,
        ge=1,
        validation_alias="FLEET_RETENTION_BATCH",
        description="At most this many deliberations per run.",
    )

    cron: str = Field("17 * * * *", validation_alias="FLEET_RETENTION_CRON")
    # STOPPED unless the deployment says otherwise: deleting runs is a decision (UI toggle or env).
    schedule_status: DefaultStatus = Field("STOPPED", validation_alias="FLEET_RETENTION_SCHEDULE_STATUS")

    @property
    def max_age_s(self) -> float:
        return self.max_age_days * 86400


@dataclass(frozen=True)
class Activity:
    """What the instance says about one deliberation."""

    deliberation_id: str
    materialized_at: float | None  # its latest materialization
    ended_at: float | None  # the end of its latest run
    in_progress: bool  # a run of it has not ended (queued, starting, running, canceling)
    # A run of it has events NATS has not acknowledged yet: they are kept with its runs, which archiving deletes.
    events_pending: bool = False

    @property
    def last_seen(self) -> float | None:
        """Its age counts from the latest of the two: a deliberation run again is as young as that run, and one
        whose runs all died before collecting (never materialized) is as old as their end."""
        times = [t for t in (self.materialized_at, self.ended_at) if t is not None]
        return max(times) if times else None


def due_for_archive(activities: Iterable[Activity], now: float, max_age_s: float, limit: int) -> list[str]:
    """The ids to archive, oldest first, at most `limit`. Never one with a run in progress or events still to
    publish, nor one the instance knows no time of (a partition without runs may be about to start one)."""
    cutoff = now - max_age_s
    aged = sorted(
        (seen, a.deliberation_id)
        for a in activities
        if not (a.in_progress or a.events_pending) and (seen := a.last_seen) is not None and seen < cutoff
    )
    return [deliberation_id for _, deliberation_id in aged[:limit]]
