"""The fleet's settings, each group declared once (its fields' aliases name the variables) and read at a process's
edge: the code location reads `FleetSettings` when it loads; a run's or a tick's resources read theirs when they are
set up; an actor reads its store's when it starts; the CLI reads what its command needs. `FleetSettings.variables()`
is every variable of every group: the chart renders each one (tests/integration/test_helm.py checks both ways)."""

from collections.abc import Mapping

from pydantic import BaseModel

from fleet_dagster.benchmarks.ab_settings import ABScheduleSettings
from fleet_dagster.benchmarks.drain_settings import DrainScheduleSettings
from fleet_dagster.benchmarks.schedule_settings import BenchmarkScheduleSettings
from fleet_dagster.core.env_settings import EnvSettings
from fleet_dagster.deliberation.archive import ARCHIVE_ENV
from fleet_dagster.deliberation.intake_settings import IntakeSettings
from fleet_dagster.deliberation.retention_policy import RetentionSettings
from fleet_dagster.llm.response_store import ResponseStoreSettings
from fleet_dagster.llm.settings import LLMSettings
from fleet_dagster.nats_bridge.settings import NatsSettings
from fleet_dagster.ray_cluster.cluster_settings import RayClusterSettings
from fleet_dagster.sandbox.settings import SandboxSettings

# Where fleet-dagster keeps state and finds its resources: read where they are used.
PATHS = ("FLEET_HOME", "DAGSTER_HOME", ARCHIVE_ENV, "FLEET_RESOURCES_DIR")


class FleetSettings(BaseModel):
    """What the code location builds its sensors and schedules from. The model server, NATS, Ray and the response
    store are read by the resources of each run or tick when they are set up (and by an actor when it starts)."""

    intake: IntakeSettings
    retention: RetentionSettings
    benchmarks: BenchmarkScheduleSettings
    ab_test: ABScheduleSettings
    drain: DrainScheduleSettings

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> "FleetSettings":
        return cls(
            intake=IntakeSettings.from_environ(environ),
            retention=RetentionSettings.from_environ(environ),
            benchmarks=BenchmarkScheduleSettings.from_environ(environ),
            ab_test=ABScheduleSettings.from_environ(environ),
            drain=DrainScheduleSettings.from_environ(environ),
        )

    @staticmethod
    def variables() -> set[str]:
        """Every environment variable a fleet process reads."""
        groups: list[type[EnvSettings]] = [
            LLMSettings,
            ResponseStoreSettings,
            NatsSettings,
            RayClusterSettings,
            IntakeSettings,
            RetentionSettings,
            BenchmarkScheduleSettings,
            ABScheduleSettings,
            DrainScheduleSettings,
            SandboxSettings,
        ]
        return {variable for group in groups for variable in group.variables().values()} | set(PATHS)
