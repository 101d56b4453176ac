import dagster as dg

from fleet_dagster.benchmarks.assets import benchmark_checks, benchmark_job, benchmark_results, benchmark_schedule
from fleet_dagster.deliberation.assets import deliberation, deliberation_job
from fleet_dagster.deliberation.retention import deliberation_retention_job, deliberation_retention_schedule
from fleet_dagster.deliberation.sensors import deliberation_outbox, deliberation_requests
from fleet_dagster.environment import resources_for_environment

defs = dg.Definitions(
    assets=[deliberation, benchmark_results],
    asset_checks=benchmark_checks,
    jobs=[deliberation_job, benchmark_job, deliberation_retention_job],
    sensors=[deliberation_requests, deliberation_outbox],
    schedules=[benchmark_schedule, deliberation_retention_schedule],
    resources=resources_for_environment(),
    # Councils get their concurrency from Ray, not from a process per step (README, "Executor").
    executor=dg.in_process_executor,
)
