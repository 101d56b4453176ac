import dagster as dg

from fleet_dagster.deliberation.assets import deliberation, deliberation_job
from fleet_dagster.environment import resources_for_environment
from fleet_dagster.nats_bridge.sensors import deliberation_requests, deliberation_run_failures

defs = dg.Definitions(
    assets=[deliberation],
    jobs=[deliberation_job],
    sensors=[deliberation_requests, deliberation_run_failures],
    resources=resources_for_environment(),
    # Councils get their concurrency from Ray, not from a process per step (README, "Executor").
    executor=dg.in_process_executor,
)
