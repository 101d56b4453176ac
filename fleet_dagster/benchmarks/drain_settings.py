"""When the intake drain benchmark runs, and with how many requests: read where the code location loads
(fleet_settings.py)."""

from pydantic import Field

from fleet_dagster.benchmarks.drain import DrainShape
from fleet_dagster.core.env_settings import DefaultStatus, EnvSettings


class DrainScheduleSettings(EnvSettings):
    cron: str = Field("0 8 * * *", validation_alias="FLEET_DRAIN_CRON")
    requests: int = Field(
        DrainShape.model_fields["requests"].default,
        ge=1,
        le=2000,
        validation_alias="FLEET_DRAIN_REQUESTS",
        description="Requests published at once (2 s a call, 2 agents, 1 round, as bench/nats_drain.py).",
    )
    status: DefaultStatus = Field("STOPPED", validation_alias="FLEET_DRAIN_SCHEDULE_STATUS")
