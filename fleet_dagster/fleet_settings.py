"""Every setting a fleet process reads from its environment, in one object read once at the process's edge (the
code location's definitions, the CLI). The chart renders each variable; tests/integration/test_helm.py checks
that what it renders and what the code reads are the same set."""

from collections.abc import Mapping

from pydantic import BaseModel

from fleet_dagster.benchmarks.assets import BenchmarkScheduleSettings
from fleet_dagster.core.env_settings import EnvSettings
from fleet_dagster.deliberation.intake_settings import IntakeSettings
from fleet_dagster.deliberation.retention_policy import RetentionSettings
from fleet_dagster.llm.response_store import ResponseStoreSettings
from fleet_dagster.llm.settings import LLMSettings
from fleet_dagster.nats_bridge.settings import NatsSettings
from fleet_dagster.ray_cluster.cluster_settings import RayClusterSettings

# Where fleet-dagster keeps state and finds its resources: read where they are used.
PATHS = ("FLEET_HOME", "DAGSTER_HOME", "FLEET_ARCHIVE_DIR", "FLEET_RESOURCES_DIR")


class FleetSettings(BaseModel):
    llm: LLMSettings
    response_store: ResponseStoreSettings
    nats: NatsSettings | None  # None: the NATS bridge is off
    ray_cluster: RayClusterSettings
    intake: IntakeSettings
    retention: RetentionSettings
    benchmarks: BenchmarkScheduleSettings

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> "FleetSettings":
        return cls(
            llm=LLMSettings.from_environ(environ),
            response_store=ResponseStoreSettings.from_environ(environ),
            nats=NatsSettings.deployed(environ),
            ray_cluster=RayClusterSettings.from_environ(environ),
            intake=IntakeSettings.from_environ(environ),
            retention=RetentionSettings.from_environ(environ),
            benchmarks=BenchmarkScheduleSettings.from_environ(environ),
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
        ]
        return {variable for group in groups for variable in group.variables().values()} | set(PATHS)
