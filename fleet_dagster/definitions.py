import dagster as dg

from fleet_dagster.deliberation.assets import deliberation, deliberation_job
from fleet_dagster.environment import resources_for_environment

defs = dg.Definitions(
    assets=[deliberation],
    jobs=[deliberation_job],
    resources=resources_for_environment(),
    # Councils get their concurrency from Ray, not from a process per step (README, "Executor").
    executor=dg.in_process_executor,
)
