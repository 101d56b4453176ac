"""When the benchmark schedule runs and which suite: read where the code location loads (fleet_settings.py)."""

from pydantic import Field

from fleet_dagster.benchmarks.suites import SuiteChoice
from fleet_dagster.core.env_settings import DefaultStatus, EnvSettings


class BenchmarkScheduleSettings(EnvSettings):
    cron: str = Field("0 6 * * *", validation_alias="FLEET_BENCHMARK_CRON")
    suite: SuiteChoice = Field("all", validation_alias="FLEET_BENCHMARK_SUITE")
    status: DefaultStatus = Field("STOPPED", validation_alias="FLEET_BENCHMARK_SCHEDULE_STATUS")
