"""Runs one deliberation through Dagster in this process, against the instance in DAGSTER_HOME."""

import threading
from collections.abc import Callable
from typing import Any

import dagster as dg

from fleet_dagster.core.request import DeliberationRequest
from fleet_dagster.deliberation.partitions import DELIBERATION_ID_TAG, deliberation_partitions
from fleet_dagster.deliberation.run_config import run_config_for
from fleet_dagster.deliberation.status_query import deliberation_status


def execute_deliberation(
    instance: dg.DagsterInstance,
    request: DeliberationRequest,
    *,
    llm_config: dict[str, Any] | None = None,
    quiet: bool = False,
    on_status: Callable[[dict[str, Any]], None] | None = None,
    poll_interval_s: float = 0.5,
) -> dict[str, Any]:
    """Executes the deliberation job for a new partition and returns the final status document."""
    from fleet_dagster.definitions import defs

    instance.add_dynamic_partitions(deliberation_partitions.name, [request.deliberation_id])
    job = defs.resolve_job_def("deliberation_job")
    outcome: dict[str, Any] = {}

    def execute() -> None:
        try:
            job.execute_in_process(
                run_config=run_config_for(request, llm_config, quiet),
                instance=instance,
                partition_key=request.deliberation_id,
                tags={DELIBERATION_ID_TAG: request.deliberation_id},
                raise_on_error=False,
            )
        except Exception as exc:  # reported through the status document, never as a traceback
            outcome["error"] = f"{type(exc).__name__}: {exc}"

    worker = threading.Thread(target=execute, name="deliberation", daemon=True)
    worker.start()
    while worker.is_alive():
        if on_status is not None:
            on_status(deliberation_status(instance, request.deliberation_id))
        worker.join(poll_interval_s)
    document = deliberation_status(instance, request.deliberation_id)
    if "error" in outcome and not document.get("error_message"):
        document.update(status="FAILED", error_message=outcome["error"])
    return document
