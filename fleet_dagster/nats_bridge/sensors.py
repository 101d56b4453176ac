"""The sensor that turns stored requests into runs, and the one that reports runs that died early."""

import asyncio
import os

import dagster as dg

from fleet_dagster.deliberation.assets import deliberation_job
from fleet_dagster.deliberation.partitions import (
    DELIBERATION_ID_TAG,
    STREAM_SEQ_TAG,
    deliberation_partitions,
)
from fleet_dagster.deliberation.run_config import run_config_for
from fleet_dagster.deliberation.status_query import latest_event, latest_run, run_error
from fleet_dagster.nats_bridge.event_builders import run_failed_event
from fleet_dagster.nats_bridge.jetstream import ensure_stream, jetstream, publish_event, read_requests
from fleet_dagster.nats_bridge.resources import NatsResource
from fleet_dagster.nats_bridge.triage import Triage, triage

BATCH = int(os.environ.get("FLEET_NATS_SENSOR_BATCH", "100"))
READ_BUDGET_S = 10.0
INTERVAL_S = int(os.environ.get("FLEET_NATS_SENSOR_INTERVAL", "5"))
# STOPPED unless the deployment says otherwise: turning the bridge on is a decision (UI toggle or env).
DEFAULT_STATUS = dg.DefaultSensorStatus(os.environ.get("FLEET_NATS_SENSOR_STATUS", "STOPPED").upper())


def _used_elsewhere(instance: dg.DagsterInstance):
    def check(deliberation_id: str, seq: int) -> str | None:
        run = latest_run(instance, deliberation_id)
        if run is None or run.tags.get(STREAM_SEQ_TAG) == str(seq):
            return None  # free, or this very message seen again (its run_key dedupes the run)
        return f"by run {run.run_id}"

    return check


async def _read_and_triage(nats: NatsResource, cursor: int, instance: dg.DagsterInstance) -> tuple[int, Triage]:
    settings = nats.settings()
    async with jetstream(settings) as js:
        await ensure_stream(js, settings)
        messages = await read_requests(js, settings, cursor, BATCH, READ_BUDGET_S)
        outcome = triage([(m.seq, m.data or b"") for m in messages], _used_elsewhere(instance))
        for rejected in outcome.rejected:
            await publish_event(js, settings, "deliberation.rejected", rejected, f"rejected-{rejected.stream_seq}")
    return (messages[-1].seq if messages else cursor), outcome


@dg.sensor(
    job=deliberation_job,
    minimum_interval_seconds=INTERVAL_S,
    default_status=DEFAULT_STATUS,
    description="Starts one run per valid request on NATS subject deliberation.requested, read by stream "
    "sequence after the cursor; rejects invalid ones on deliberation.rejected.",
)
def deliberation_requests(context: dg.SensorEvaluationContext, nats: NatsResource):
    settings = nats.settings()
    if settings is None:
        return dg.SkipReason("NATS_URL is not set: the NATS bridge is off")
    cursor = int(context.cursor or 0)
    try:
        new_cursor, outcome = asyncio.run(_read_and_triage(nats, cursor, context.instance))
    except Exception as exc:  # noqa: BLE001 - unreachable, auth, TLS...: skip this tick, keep the cursor
        return dg.SkipReason(f"NATS unreachable at {settings.display_url}: {type(exc).__name__}: {exc}")
    for rejected in outcome.rejected:
        context.log.warning(f"rejected stream seq {rejected.stream_seq}: {[e.message for e in rejected.errors]}")
    run_requests = [
        dg.RunRequest(
            run_key=request.deliberation_id,
            partition_key=request.deliberation_id,
            run_config=run_config_for(request),
            tags={DELIBERATION_ID_TAG: request.deliberation_id, STREAM_SEQ_TAG: str(seq)},
        )
        for seq, request in outcome.accepted
    ]
    if new_cursor == cursor:
        return dg.SkipReason(f"no new requests after stream sequence {cursor}")
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[
            deliberation_partitions.build_add_request([request.deliberation_id for _, request in outcome.accepted])
        ]
        if run_requests
        else [],
        cursor=str(new_cursor),
    )


@dg.run_failure_sensor(
    monitored_jobs=[deliberation_job],
    default_status=DEFAULT_STATUS,
    description="Publishes deliberation.failed for runs that died before their collect step reported.",
)
def deliberation_run_failures(context: dg.RunFailureSensorContext, nats: NatsResource):
    deliberation_id = context.dagster_run.tags.get(DELIBERATION_ID_TAG)
    if not deliberation_id:
        return
    run_id = context.dagster_run.run_id
    if latest_event(context.instance.fetch_materializations, deliberation_id, run_id):
        return  # the collect step already published the final event
    error = run_error(context.instance, run_id) or context.failure_event.message or "run failed"
    nats.publish([run_failed_event(deliberation_id, context.dagster_run.run_id, error)], context.log)
