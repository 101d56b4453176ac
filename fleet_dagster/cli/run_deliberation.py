"""Runs one deliberation through Dagster in this process, against the instance in DAGSTER_HOME."""

import threading
import uuid
from collections.abc import Callable
from typing import Any

import dagster as dg

from fleet_dagster.core.request import DeliberationRequest
from fleet_dagster.core.trace import new_traceparent
from fleet_dagster.deliberation.keys_and_tags import DELIBERATION_ID_TAG, DELIBERATION_PARTITIONS, TRACEPARENT_TAG
from fleet_dagster.deliberation.run_config import run_config_for
from fleet_dagster.deliberation.status_query import deliberation_status

RELEASE_TIMEOUT_S = 30.0


def new_run_id() -> str:
    """A run id chosen before the run exists (Dagster's are uuid4 too): what a Ctrl-C, which may come before
    the run is created, cancels, and never another run of the same deliberation id."""
    return str(uuid.uuid4())


def execute_deliberation(
    instance: dg.DagsterInstance,
    request: DeliberationRequest,
    *,
    run_id: str | None = None,
    llm_config: dict[str, Any] | None = None,
    quiet: bool = False,
    on_status: Callable[[dict[str, Any]], None] | None = None,
    poll_interval_s: float = 0.5,
    interrupted: threading.Event | None = None,
) -> dict[str, Any]:
    """Executes the deliberation job for a new partition, as run `run_id` (default: a new one), and returns the
    final status document. `interrupted`: set by a Ctrl-C handler; seen between polls, it ends the wait with
    KeyboardInterrupt."""
    from fleet_dagster.definitions import defs

    if request.traceparent is None:  # a new trace, in the run's tags and config alike
        request = request.model_copy(update={"traceparent": new_traceparent()})
    instance.add_dynamic_partitions(DELIBERATION_PARTITIONS, [request.deliberation_id])
    job = defs.resolve_job_def("deliberation_job")
    outcome: dict[str, Any] = {}

    def execute() -> None:
        try:
            job.execute_in_process(
                run_config=run_config_for(request, llm_config, quiet),
                instance=instance,
                partition_key=request.deliberation_id,
                run_id=run_id or new_run_id(),
                tags={DELIBERATION_ID_TAG: request.deliberation_id, TRACEPARENT_TAG: str(request.traceparent)},
                raise_on_error=False,
            )
        except Exception as exc:  # noqa: BLE001 - reported through the status document, never as a traceback
            outcome["error"] = f"{type(exc).__name__}: {exc}"

    worker = threading.Thread(target=execute, name="deliberation", daemon=True)
    if interrupted is not None and interrupted.is_set():  # Ctrl-C while the job was loading: nothing started
        raise KeyboardInterrupt
    worker.start()
    while worker.is_alive():
        if interrupted is not None and interrupted.is_set():
            raise KeyboardInterrupt
        if on_status is not None:
            on_status(deliberation_status(instance, request.deliberation_id))
        worker.join(poll_interval_s)
    document = deliberation_status(instance, request.deliberation_id)
    if "error" in outcome and not document.get("error_message"):
        document.update(status="FAILED", error_message=outcome["error"])
    return document


def cancel_deliberation(instance: dg.DagsterInstance, deliberation_id: str, run_id: str) -> str:
    """After Ctrl-C, of run `run_id` (the one this process launched: another run of the same id, the
    latest maybe, is someone else's). The councils run on Ray, not in this process: they would go on calling
    the model until their deadline, so they are cancelled and released; the run, which no process carries on
    any more, is marked canceled (it would show as in progress forever). Returns what became of the councils."""
    import ray

    from fleet_dagster.ray_cluster.council_client import CouncilClient, CouncilRunnerUnavailable

    outcome = "its councils released"
    run = instance.get_run_by_id(run_id)
    # Without a run or a Ray connection, the run never reached Ray and started no council.
    if run is not None and ray.is_initialized():
        try:  # only this run's councils, never another's
            CouncilClient(deliberation_id, owner=run_id).release(RELEASE_TIMEOUT_S)
        except CouncilRunnerUnavailable as exc:
            outcome = f"its councils not released ({str(exc).splitlines()[0]}), they stop at their deadline"
    if run is not None and not run.is_finished:
        instance.report_run_canceled(run, message="interrupted from the shell (Ctrl-C)")
    return outcome
