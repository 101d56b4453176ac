"""When the A/B schedule runs, on which suite and which two arms: read where the code location loads
(fleet_settings.py)."""

from pydantic import Field, field_validator

from fleet_dagster.benchmarks.ab_test import ABSuite, Arm
from fleet_dagster.core.env_settings import DefaultStatus, EnvSettings


class ABScheduleSettings(EnvSettings):
    cron: str = Field("0 7 * * *", validation_alias="FLEET_AB_CRON")
    suite: ABSuite = Field("quality", validation_alias="FLEET_AB_SUITE")
    # Arm specs (ab_test.Arm.parse); both empty: an A/A test of the suite's own shape, whose verdict should be
    # "no difference" (a check of the test itself).
    arm_a: str = Field("", validation_alias="FLEET_AB_ARM_A")
    arm_b: str = Field("", validation_alias="FLEET_AB_ARM_B")
    max_tasks: int | None = Field(None, ge=1, validation_alias="FLEET_AB_MAX_TASKS")
    status: DefaultStatus = Field("STOPPED", validation_alias="FLEET_AB_SCHEDULE_STATUS")

    @field_validator("arm_a", "arm_b")
    @classmethod
    def _parses(cls, spec: str) -> str:
        Arm.parse(spec)  # a bad spec fails where the code location loads, not at the day's run
        return spec
