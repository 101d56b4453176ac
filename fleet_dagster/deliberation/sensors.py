"""The sensor that turns stored requests into runs, and the one that publishes the runs' outbox."""

import asyncio
import contextlib
import time

import dagster as dg
from nats import errors as nats_errors

from fleet_dagster.core.admission import PRIORITY_RANK
from fleet_dagster.core.request import DeliberationRequest
from fleet_dagster.deliberation.arrival import ADMISSION_ASK_TIMEOUT_S, start_on_arrival, waiting_requests
from fleet_dagster.deliberation.arrival_listener import LEASE_S, ArrivalListener, ListenerLease
from fleet_dagster.deliberation.arrival_listener import log as listener_log
from fleet_dagster.deliberation.assets import deliberation_job
from fleet_dagster.deliberation.intake_settings import IntakeSettings
from fleet_dagster.deliberation.keys_and_tags import (
    DELIBERATION_ID_TAG,
    REQUEST_DIGEST_TAG,
    RUN_PRIORITY_TAG,
    TRACEPARENT_TAG,
    deliberation_partitions,
)
from fleet_dagster.deliberation.outbox import deliver_pending
from fleet_dagster.deliberation.request_intake import stream_tags, take_requests
from fleet_dagster.deliberation.run_config import run_config_for
from fleet_dagster.deliberation.served_models import ServedModels
from fleet_dagster.deliberation.tick_budget import TickBudget
from fleet_dagster.llm.resources import LLMResource
from fleet_dagster.nats_bridge.cursor import RequestCursor
from fleet_dagster.nats_bridge.resources import NatsResource
from fleet_dagster.nats_bridge.settings import NatsSettings
from fleet_dagster.nats_bridge.triage import request_digest
from fleet_dagster.ray_cluster.resources import RayClusterResource

OUTBOX_BATCH = 100  # runs an outbox tick looks at, oldest first


def request_sensor(intake: IntakeSettings, listener: ArrivalListener | None = None) -> dg.SensorDefinition:
    """`listener`: the one its ticks renew, when the settings start councils on arrival and between ticks (a
    caller that passes one stops it; otherwise the code location's process ends it)."""
    between_ticks = intake.start_on_arrival and intake.listen_between_ticks
    listener = (listener or ArrivalListener()) if between_ticks else None

    @dg.sensor(
        name="deliberation_requests",
        job=deliberation_job,
        minimum_interval_seconds=intake.interval_s,
        default_status=dg.DefaultSensorStatus(intake.status),
        description="Starts one run per valid request on NATS subject deliberation.requested, read by stream "
        "sequence after the cursor; rejects invalid ones on deliberation.rejected and answers a request published "
        "again on deliberation.duplicate.",
    )
    def deliberation_requests(
        context: dg.SensorEvaluationContext,
        nats: NatsResource,
        llm: LLMResource,
        ray_cluster: RayClusterResource,  # connected by Dagster for the councils started on arrival
    ):
        return _take_requests(context, nats, llm, ray_cluster, intake, listener)

    return deliberation_requests


def _take_requests(
    context: dg.SensorEvaluationContext,
    nats: NatsResource,
    llm: LLMResource,
    ray_cluster: RayClusterResource,
    intake: IntakeSettings,
    listener: ArrivalListener | None,
):
    settings = nats.settings()
    if settings is None:
        return dg.SkipReason("NATS_URL is not set: the NATS bridge is off")
    cursor = RequestCursor.parse(context.cursor)
    budget = TickBudget.start(intake.tick_budget_s)
    served = ServedModels(llm, context.log, budget)

    def start(accepted: list[tuple[int, DeliberationRequest]], waiting_too: bool) -> bool:
        claimed = listener.claim(accepted) if listener else accepted  # not those the listener started
        if _start_on_arrival(context, llm, ray_cluster, claimed, waiting_too, served, budget):
            return True
        if listener:
            listener.release(claimed)
        return False

    try:
        with listener.paused() if listener else contextlib.nullcontext():
            tick = asyncio.run(
                take_requests(
                    settings,
                    cursor,
                    context.instance,
                    served,
                    budget,
                    intake.batch,
                    intake.listen_s,
                    start if intake.start_on_arrival else None,  # this tick's requests, and those waiting for admission
                )
            )
            # Before the pause ends: the listener goes on after this tick's cursor, not before it.
            if listener and not context.instance.is_ephemeral:  # an ephemeral one cannot be opened by another thread
                listener.renew(_listener_lease(context.instance, settings, llm, tick.cursor))
    except (nats_errors.Error, OSError, TimeoutError) as exc:  # unreachable, auth, TLS: skip, keep the cursor
        return dg.SkipReason(f"NATS unreachable at {settings.display_url}: {type(exc).__name__}: {exc}")
    for note in tick.notes:
        context.log.warning(f"stream {settings.stream}: {note}")
    for rejected in tick.outcome.rejected:
        context.log.warning(f"rejected stream seq {rejected.stream_seq}: {[e.message for e in rejected.errors]}")
    for duplicate in tick.outcome.duplicates:
        context.log.info(
            f"stream seq {duplicate.stream_seq} repeats the request at {duplicate.original_stream_seq}: "
            f"{duplicate.deliberation_id} runs once"
        )
    accepted = tick.outcome.accepted
    run_requests = [
        dg.RunRequest(
            run_key=request.deliberation_id,
            partition_key=request.deliberation_id,
            run_config=run_config_for(request),
            tags={
                DELIBERATION_ID_TAG: request.deliberation_id,
                **stream_tags(seq, tick.cursor.stream_created),
                REQUEST_DIGEST_TAG: request_digest(request),
                **({TRACEPARENT_TAG: request.traceparent} if request.traceparent else {}),
                RUN_PRIORITY_TAG: str(PRIORITY_RANK[request.priority]),
            },
        )
        for seq, request in accepted
    ]
    if tick.cursor == cursor:
        return dg.SkipReason(f"no new requests after stream sequence {cursor.seq}")
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[
            deliberation_partitions.build_add_request([request.deliberation_id for _, request in accepted])
        ]
        if run_requests
        else [],
        cursor=tick.cursor.dump(),
    )


def _start_on_arrival(
    context: dg.SensorEvaluationContext,
    llm: LLMResource,
    ray_cluster: RayClusterResource,
    accepted: list[tuple[int, DeliberationRequest]],
    waiting_too: bool,
    served: ServedModels,
    budget: TickBudget,
) -> bool:
    """Best effort, in what is left of the tick: whatever fails here or waits too long, each run asks for
    admission and starts its own councils as it always does. False when it failed."""
    try:
        waiting = waiting_requests(context.instance, deliberation_job.name) if waiting_too else []
        if not accepted and not waiting:
            return True
        # Dagster connected this process to the cluster (`ray_cluster`), as for a step.
        started = start_on_arrival(accepted, waiting, served.model_override, llm, budget.left_s)
    except Exception as exc:  # noqa: BLE001 - an early start is an optimisation, never a reason to lose a tick
        context.log.warning(f"councils not started on arrival (their runs will start them): {exc}")
        ray_cluster.disconnect()  # the fault may be the connection this process keeps between ticks
        return False
    if started:
        context.log.info(f"councils started on arrival, before their runs: {', '.join(started)}")
    return True


def _listener_lease(
    instance: dg.DagsterInstance, settings: NatsSettings, llm: LLMResource, cursor: RequestCursor
) -> ListenerLease:
    """The listener's next LEASE_S after this tick: its own model list, asked once, and its own log (the tick's
    ends with the tick)."""
    served = ServedModels(llm, listener_log, TickBudget.start(LEASE_S))

    def start(accepted: list[tuple[int, DeliberationRequest]]) -> None:
        start_on_arrival(accepted, [], served.model_override, llm, lambda: ADMISSION_ASK_TIMEOUT_S)

    return ListenerLease(
        settings=settings,
        instance_ref=instance.get_ref(),
        stream_created=cursor.stream_created,
        after=cursor.seq,
        unservable=served.refusals,
        start=start,
        until=time.monotonic() + LEASE_S,
    )


def outbox_sensor(intake: IntakeSettings) -> dg.SensorDefinition:
    @dg.sensor(
        name="deliberation_outbox",
        minimum_interval_seconds=intake.interval_s,
        default_status=dg.DefaultSensorStatus(intake.status),
        description="Publishes the deliberation runs' outbox (outbox.py): every event a run recorded and NATS did "
        "not acknowledge, in order, through outages of any length; deliberation.failed or deliberation.canceled "
        "for runs that ended without a final event.",
    )
    def deliberation_outbox(context: dg.SensorEvaluationContext, nats: NatsResource):
        return _deliver_outbox(context, nats, intake)

    return deliberation_outbox


def _deliver_outbox(context: dg.SensorEvaluationContext, nats: NatsResource, intake: IntakeSettings):
    settings = nats.settings()
    if settings is None:
        return dg.SkipReason("NATS_URL is not set: the NATS bridge is off")
    # Dagster's limit on an evaluation: what does not fit waits for the next tick.
    budget = TickBudget.start(intake.tick_budget_s)
    try:
        delivered = asyncio.run(deliver_pending(context.instance, settings, OUTBOX_BATCH, context.log, budget.has_time))
    except (nats_errors.Error, OSError, TimeoutError) as exc:  # kept in the outbox: the next tick goes on
        return dg.SkipReason(f"NATS unreachable at {settings.display_url}: {type(exc).__name__}: {exc}")
    return dg.SkipReason(f"delivered every event of {len(delivered)} finished run(s)")
