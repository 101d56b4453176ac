"""How the NATS sensors take requests in and deliver the outbox: read once where the code location loads."""

from pydantic import Field

from fleet_dagster.core.env_settings import DefaultStatus, EnvSettings
from fleet_dagster.deliberation.tick_budget import DEFAULT_TICK_BUDGET_S, MAX_TICK_BUDGET_S


class IntakeSettings(EnvSettings):
    interval_s: int = Field(5, ge=1, validation_alias="FLEET_NATS_SENSOR_INTERVAL", description="Between ticks.")
    batch: int = Field(100, ge=1, validation_alias="FLEET_NATS_SENSOR_BATCH", description="Requests a tick reads.")
    # STOPPED unless the deployment says otherwise: turning the bridge on is a decision (UI toggle or env).
    status: DefaultStatus = Field("STOPPED", validation_alias="FLEET_NATS_SENSOR_STATUS")
    tick_budget_s: float = Field(
        DEFAULT_TICK_BUDGET_S,
        gt=0,
        le=MAX_TICK_BUDGET_S,
        validation_alias="FLEET_NATS_SENSOR_BUDGET_S",
        description="What one evaluation may take, within Dagster's 60 s (see tick_budget.py).",
    )
    start_on_arrival: bool = Field(
        True,
        validation_alias="FLEET_NATS_START_ON_ARRIVAL",
        description="Start a request's councils when it arrives; false: they wait for its run (see arrival.py).",
    )
