"""Runs one deliberation through Dagster in this process, against the instance in DAGSTER_HOME."""

import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

import dagster as dg
import ray

from fleet_dagster.core.request import DeliberationRequest
from fleet_dagster.core.trace import new_traceparent
from fleet_dagster.deliberation.arrival import start_for_launch
from fleet_dagster.deliberation.keys_and_tags import DELIBERATION_ID_TAG, DELIBERATION_PARTITIONS, TRACEPARENT_TAG
from fleet_dagster.deliberation.run_config import run_config_for
from fleet_dagster.deliberation.status_query import deliberation_status
from fleet_dagster.environment import resources_for_environment
from fleet_dagster.ray_cluster.council_client import CouncilClient, CouncilRunnerUnavailable

RELEASE_TIMEOUT_S = 30.0

logger = logging.getLogger(__name__)


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
    run_id = run_id or new_run_id()
    outcome: dict[str, Any] = {}

    def execute() -> None:
        started_first = _start_councils_first(request, run_id, llm_config)
        try:
            job.execute_in_process(
                run_config=run_config_for(request, llm_config, quiet),
                instance=instance,
                partition_key=request.deliberation_id,
                run_id=run_id,
                tags={DELIBERATION_ID_TAG: request.deliberation_id, TRACEPARENT_TAG: str(request.traceparent)},
                raise_on_error=False,
            )
        except Exception as exc:  # noqa: BLE001 - reported through the status document, never as a traceback
            outcome["error"] = f"{type(exc).__name__}: {exc}"
            if started_first:  # no run carries them on
                CouncilClient(request.deliberation_id, owner=run_id).release()

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


def _start_councils_first(request: DeliberationRequest, run_id: str, llm_config: dict[str, Any] | None) -> bool:
    """The run's councils, started before Dagster creates the run (arrival.start_for_launch), with the resources the
    run gets; whether they run. Whatever stops them here stops the run too, and the run says why."""
    resources = {name: r for name, r in resources_for_environment().items() if name in ("ray_cluster", "llm")}
    try:
        with dg.build_resources(resources, resource_config={"llm": {"config": llm_config or {}}}) as built:
            return start_for_launch(request, run_id, built.llm)
    except Exception as exc:  # noqa: BLE001 - the run meets the same fault and reports it
        logger.info(f"councils not started before the run, the run starts them: {type(exc).__name__}: {exc}")
        return False


def cancel_deliberation(instance: dg.DagsterInstance, deliberation_id: str, run_id: str) -> str:
    """After Ctrl-C, of run `run_id` (the one this process launched: another run of the same id, the
    latest maybe, is someone else's). The councils run on Ray, not in this process: they would go on calling
    the model until their deadline, so they are cancelled and released; the run, which no process carries on
    any more, is marked canceled (it would show as in progress forever). Returns what became of the councils."""
    outcome = "its councils released"
    run = instance.get_run_by_id(run_id)
    # Councils start before their run exists (_start_councils_first); without a Ray connection, none started.
    if ray.is_initialized():
        try:  # only this run's councils, never another's
            CouncilClient(deliberation_id, owner=run_id).release(RELEASE_TIMEOUT_S)
        except CouncilRunnerUnavailable as exc:
            outcome = f"its councils not released ({str(exc).splitlines()[0]}), they stop at their deadline"
    if run is not None and not run.is_finished:
        instance.report_run_canceled(run, message="interrupted from the shell (Ctrl-C)")
    return outcome
