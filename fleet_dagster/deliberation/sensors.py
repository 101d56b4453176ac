"""The sensor that turns stored requests into runs, and the one that publishes the runs' outbox."""

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import dagster as dg
from nats import errors as nats_errors

from fleet_dagster.core.admission import PRIORITY_RANK
from fleet_dagster.core.request import DeliberationRequest
from fleet_dagster.deliberation.archive import DeliberationArchive
from fleet_dagster.deliberation.arrival import start_on_arrival, waiting_requests
from fleet_dagster.deliberation.assets import deliberation_job
from fleet_dagster.deliberation.config import unlaunchable_roles
from fleet_dagster.deliberation.intake_settings import IntakeSettings
from fleet_dagster.deliberation.keys_and_tags import (
    DELIBERATION_ID_TAG,
    REQUEST_DIGEST_TAG,
    RUN_PRIORITY_TAG,
    STREAM_CREATED_TAG,
    STREAM_SEQ_TAG,
    TRACEPARENT_TAG,
    deliberation_partitions,
)
from fleet_dagster.deliberation.outbox import deliver_pending
from fleet_dagster.deliberation.run_config import run_config_for
from fleet_dagster.deliberation.status_query import latest_runs
from fleet_dagster.deliberation.tick_budget import TickBudget
from fleet_dagster.llm.preflight import (
    PREFLIGHT_TIMEOUT_S,
    PreflightError,
    ServerUnavailable,
    model_listing,
    preflight,
)
from fleet_dagster.llm.resources import LLMResource
from fleet_dagster.nats_bridge.cursor import RequestCursor, StreamState, read_after
from fleet_dagster.nats_bridge.events import DeliberationDuplicate, DeliberationRejected
from fleet_dagster.nats_bridge.jetstream import (
    PUBLISH_TIMEOUT_S,
    ensure_stream,
    jetstream,
    publish_event,
    read_requests,
)
from fleet_dagster.nats_bridge.resources import NatsResource
from fleet_dagster.nats_bridge.settings import NatsSettings
from fleet_dagster.nats_bridge.subjects import Subject
from fleet_dagster.nats_bridge.triage import PriorUse, Triage, request_digest, triage
from fleet_dagster.ray_cluster.resources import RayClusterResource

OUTBOX_BATCH = 100  # runs an outbox tick looks at, oldest first
READ_BUDGET_S = 10.0


def _stream_tags(seq: int, stream_created: str | None) -> dict[str, str]:
    """Which message of which stream a run was requested by."""
    return {STREAM_SEQ_TAG: str(seq), **({STREAM_CREATED_TAG: stream_created} if stream_created else {})}


def _prior_uses(instance: dg.DagsterInstance, archive: DeliberationArchive, stream_created: str | None):
    def lookup(first_seqs: dict[str, int]) -> dict[str, PriorUse]:
        runs = latest_runs(instance, list(first_seqs))
        taken: dict[str, PriorUse] = {}
        for deliberation_id, seq in first_seqs.items():
            run = runs.get(deliberation_id)
            if run is None and (archived := archive.latest(deliberation_id)):  # retention deleted its runs, not its id
                taken[deliberation_id] = PriorUse(f"by a deliberation archived in {archived[0]}", None, None)
            elif run is not None and not _stream_tags(seq, stream_created).items() <= run.tags.items():
                run_seq = run.tags.get(STREAM_SEQ_TAG)  # this very message seen again: its run_key dedupes the run
                taken[deliberation_id] = PriorUse(
                    description=f"by run {run.run_id}",
                    stream_seq=int(run_seq) if run_seq and run_seq.isdigit() else None,
                    request_digest=run.tags.get(REQUEST_DIGEST_TAG),
                    run_id=run.run_id,
                )
        return taken

    return lookup


@dataclass
class _Tick:
    cursor: RequestCursor
    outcome: Triage
    notes: list[str]


class _ServedModels:
    """What the deployment's model server serves (see llm/preflight.py), its model list fetched once a tick."""

    def __init__(self, llm: LLMResource, log: logging.Logger, budget: TickBudget) -> None:
        self._served = llm.served_endpoint()
        # Two tries in what is left of the tick: a server that takes longer is one that does not answer.
        self._listing = (
            model_listing(self._served, lambda: budget.for_step_s(2 * PREFLIGHT_TIMEOUT_S) / 2)
            if self._served is not None
            else None
        )
        self._log = log
        self._overrides: dict[str, str | None] = {}  # by deliberation id: the model that serves every role

    def prefetch(self) -> None:
        """Lists the deployment's server's models now, for the tick (asked in a thread while NATS is read)."""
        if self._served is not None and self._listing is not None:
            with contextlib.suppress(ServerUnavailable):  # kept by the listing: `problems` says it
                self._listing(self._served.base_url)

    def problems(self, request: DeliberationRequest) -> list[tuple[str, str]]:
        """What the server cannot serve of the request. A server that does not answer rejects nothing: the
        request is not at fault."""
        if self._served is None:  # the embedded engine serves every role its one model
            return []
        try:
            checked = preflight(self._served, request, served_at=self._listing)
        except ServerUnavailable as exc:
            self._log.warning(f"not checked against the model server: {exc}")
        except PreflightError as exc:
            return exc.errors
        else:
            self._overrides[request.deliberation_id] = checked.model_override
        return []

    def model_override(self, request: DeliberationRequest) -> str | None:
        """The model that serves every role of a request checked this tick (a request waiting for admission
        since an earlier tick is checked again)."""
        if request.deliberation_id not in self._overrides:
            self.problems(request)
        return self._overrides.get(request.deliberation_id)


async def _read_and_triage(
    settings: NatsSettings,
    cursor: RequestCursor,
    instance: dg.DagsterInstance,
    served: _ServedModels,
    budget: TickBudget,
    batch: int,
) -> _Tick:
    async with jetstream(settings) as js:
        info = await ensure_stream(js, settings)
        stream = StreamState(
            created=info.created.isoformat() if info.created else None,
            first_seq=info.state.first_seq,
            last_seq=info.state.last_seq,
        )
        after, notes = read_after(cursor, stream)
        # New requests: the server's model list (a round trip, tenths of a second when busy) while they are read.
        listing = asyncio.to_thread(served.prefetch) if stream.last_seq > after else asyncio.sleep(0)
        messages, _ = await asyncio.gather(
            read_requests(js, settings, info, after, batch, budget.for_step_s(READ_BUDGET_S)), listing
        )
        outcome = triage(
            messages,
            _prior_uses(instance, DeliberationArchive.from_env(), stream.created),
            lambda request: unlaunchable_roles(request) or served.problems(request),
            budget.has_time,
        )
        answers: list[tuple[str, Subject, DeliberationRejected | DeliberationDuplicate]] = [
            *(("rejected", Subject.REJECTED, event) for event in outcome.rejected),
            *(("duplicate", Subject.DUPLICATE, event) for event in outcome.duplicates),
        ]
        for kind, subject, event in answers:  # one that cannot be published in time fails the tick: the cursor stays
            msg_id, timeout_s = f"{kind}-{event.stream_seq}", budget.after_triage_s(PUBLISH_TIMEOUT_S)
            await publish_event(js, settings, subject, event, msg_id, timeout_s)
    new_cursor = RequestCursor(seq=outcome.handled_through or after, stream_created=stream.created)
    return _Tick(new_cursor, outcome, notes)


def request_sensor(intake: IntakeSettings) -> dg.SensorDefinition:
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
        return _take_requests(context, nats, llm, ray_cluster, intake)

    return deliberation_requests


def _take_requests(
    context: dg.SensorEvaluationContext,
    nats: NatsResource,
    llm: LLMResource,
    ray_cluster: RayClusterResource,
    intake: IntakeSettings,
):
    settings = nats.settings()
    if settings is None:
        return dg.SkipReason("NATS_URL is not set: the NATS bridge is off")
    cursor = RequestCursor.parse(context.cursor)
    budget = TickBudget.start(intake.tick_budget_s)
    try:
        served = _ServedModels(llm, context.log, budget)
        tick = asyncio.run(_read_and_triage(settings, cursor, context.instance, served, budget, intake.batch))
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
                **_stream_tags(seq, tick.cursor.stream_created),
                REQUEST_DIGEST_TAG: request_digest(request),
                **({TRACEPARENT_TAG: request.traceparent} if request.traceparent else {}),
                RUN_PRIORITY_TAG: str(PRIORITY_RANK[request.priority]),
            },
        )
        for seq, request in accepted
    ]
    if intake.start_on_arrival:  # this tick's requests, and those still waiting for admission
        _start_on_arrival(context, llm, ray_cluster, accepted, served, budget)
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
    served: _ServedModels,
    budget: TickBudget,
) -> None:
    """Best effort, in what is left of the tick: whatever fails here or waits too long, each run asks for
    admission and starts its own councils as it always does."""
    try:
        waiting = waiting_requests(context.instance, deliberation_job.name)
        if not accepted and not waiting:
            return
        # Dagster connected this process to the cluster (`ray_cluster`), as for a step.
        started = start_on_arrival(accepted, waiting, served.model_override, llm, budget.left_s)
    except Exception as exc:  # noqa: BLE001 - an early start is an optimisation, never a reason to lose a tick
        context.log.warning(f"councils not started on arrival (their runs will start them): {exc}")
        ray_cluster.disconnect()  # the fault may be the connection this process keeps between ticks
        return
    if started:
        context.log.info(f"councils started on arrival, before their runs: {', '.join(started)}")


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
