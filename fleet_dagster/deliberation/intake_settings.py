"""How the NATS sensors take requests in and deliver the outbox: read once where the code location loads."""

from pydantic import Field

from fleet_dagster.core.env_settings import DefaultStatus, EnvSettings
from fleet_dagster.deliberation.tick_budget import DEFAULT_TICK_BUDGET_S, MAX_TICK_BUDGET_S


class IntakeSettings(EnvSettings):
    # Dagster's sensor daemon evaluates sensors at most once per loop of 5 s (SENSOR_DAEMON_LOOP_S in
    # benchmarks/drain.py), whatever a shorter minimum interval; one of 5 s or more skips a loop whenever the last
    # tick started a few milliseconds less than 5 s before (measured: 10 s apart in 4 to 5 of 8 to 10 gaps).
    interval_s: int = Field(
        1, ge=1, validation_alias="FLEET_NATS_SENSOR_INTERVAL", description="Between ticks, within the daemon's loop."
    )
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
    listen_s: float = Field(
        4.0,  # of the daemon's 5 s loop; the rest is Dagster's: run requests submitted, the other sensors
        ge=0,
        le=MAX_TICK_BUDGET_S / 2,
        validation_alias="FLEET_NATS_SENSOR_LISTEN_S",
        description="How long a tick that has accepted nothing goes on reading requests as they arrive; 0: it reads "
        "what is stored (see request_intake.py).",
    )
    listen_between_ticks: bool = Field(
        True,
        validation_alias="FLEET_NATS_LISTEN_BETWEEN_TICKS",
        description="While councils start on arrival, a thread of the code location's process starts those of "
        "requests stored between ticks (see arrival_listener.py).",
    )
    start_on_arrival: bool = Field(
        True,
        validation_alias="FLEET_NATS_START_ON_ARRIVAL",
        description="Start a request's councils when it arrives; false: they wait for its run (see arrival.py).",
    )
