import os

import dagster as dg

from fleet_dagster.benchmarks.ab_assets import ab_test_checks, ab_test_job, ab_test_results, ab_test_schedule
from fleet_dagster.benchmarks.assets import benchmark_checks, benchmark_job, benchmark_results, benchmark_schedule
from fleet_dagster.benchmarks.drain_assets import drain_checks, drain_job, drain_schedule, intake_drain
from fleet_dagster.deliberation.assets import deliberation, deliberation_job
from fleet_dagster.deliberation.retention import deliberation_retention_job, retention_schedule
from fleet_dagster.deliberation.sensors import outbox_sensor, request_sensor
from fleet_dagster.environment import resources_for_environment
from fleet_dagster.fleet_settings import FleetSettings

# The code location's edge: its settings are read here, once per process that loads it.
settings = FleetSettings.from_environ(os.environ)

defs = dg.Definitions(
    assets=[deliberation, benchmark_results, ab_test_results, intake_drain],
    asset_checks=[*benchmark_checks, *ab_test_checks, *drain_checks],
    jobs=[deliberation_job, benchmark_job, deliberation_retention_job, ab_test_job, drain_job],
    sensors=[request_sensor(settings.intake), outbox_sensor(settings.intake)],
    schedules=[
        benchmark_schedule(settings.benchmarks),
        retention_schedule(settings.retention),
        ab_test_schedule(settings.ab_test),
        drain_schedule(settings.drain),
    ],
    resources=resources_for_environment(),
    # Councils get their concurrency from Ray, not from a process per step (README, "Executor").
    executor=dg.in_process_executor,
)
