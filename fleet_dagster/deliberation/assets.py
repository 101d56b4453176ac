"""The `deliberation` asset: a plan op fans out one council op per role, a collect op gathers.

Councils run on Ray (a CouncilRunner actor runs each as an asyncio task), never inside a step: the
plan op starts every council at once, each council op makes sure its own council runs (starting is
idempotent, so a retried step or a resumed run starts what was lost, never a second copy) and the
collect op waits for all of them. So councils of different roles run concurrently under the
in-process executor, without paying a process per step (see README, "Executor").
"""

import time

import dagster as dg
from pydantic import BaseModel

from fleet_dagster.core.outcome import councils_started_at, deliberation_outcome
from fleet_dagster.core.records import CouncilResult, Selection
from fleet_dagster.core.request import DeliberationRequest, RequestError
from fleet_dagster.core.status import DeliberationStatus
from fleet_dagster.core.status_document import DeliberationProgress
from fleet_dagster.core.trace import derived_traceparent
from fleet_dagster.deliberation.agent_events import AgentResponseStream
from fleet_dagster.deliberation.arrival import arrival_owner, start_councils, wait_for_admission
from fleet_dagster.deliberation.config import DeliberationConfig
from fleet_dagster.deliberation.keys_and_tags import (
    DELIBERATION_ASSET_KEY,
    STREAM_SEQ_TAG,
    TRACEPARENT_TAG,
    deliberation_partitions,
)
from fleet_dagster.deliberation.materialization import collected
from fleet_dagster.deliberation.metadata_models import model_metadata
from fleet_dagster.deliberation.outbox import OUTBOX_TAG, PENDING, RUN, RunOutbox
from fleet_dagster.llm.preflight import PreflightError
from fleet_dagster.llm.resources import LLMResource
from fleet_dagster.nats_bridge.event_builders import accepted_event
from fleet_dagster.nats_bridge.resources import NatsResource
from fleet_dagster.ray_cluster.council_client import CouncilClient, CouncilRunnerUnavailable, LostCouncil
from fleet_dagster.ray_cluster.fleet_admission import mark_started
from fleet_dagster.ray_cluster.resources import RayClusterResource
from fleet_dagster.ray_cluster.sandbox_runs import cross_executed
from fleet_dagster.run_pods import RUN_POD_TAGS

POLL_INTERVAL_S = 0.5
COLLECT_GRACE_S = 15.0  # beyond the deadline, for the councils to hand over what they kept


class CouncilPlan(BaseModel):
    request: DeliberationRequest
    role: str
    started_at: float
    deadline_at: float
    model_override: str | None = None  # the one served model, when the server serves no profile's model


def _observe(context: dg.OpExecutionContext, request: DeliberationRequest, current: int, progress: dict) -> None:
    context.log_event(
        dg.AssetObservation(
            asset_key=DELIBERATION_ASSET_KEY,
            partition=request.deliberation_id,
            metadata=model_metadata(
                DeliberationProgress(expected_count=request.expected_count, current_count=current, progress=progress)
            ),
        )
    )


def _start_councils(context: dg.OpExecutionContext, plans: list[CouncilPlan], llm: LLMResource) -> CouncilClient:
    """Idempotent for this run, which adopts the councils its request's arrival started (see arrival.py);
    refused (a failed step, not retried) while another run owns the id. The run's client to its councils."""
    request = plans[0].request
    client = CouncilClient(request.deliberation_id, context.run_id)
    seq = context.run.tags.get(STREAM_SEQ_TAG)
    refusals = start_councils(
        client,
        request,
        [plan.role for plan in plans],
        plans[0].deadline_at,
        plans[0].model_override,
        llm,
        adopt_from=arrival_owner(int(seq)) if seq else None,
    )
    if refusals:
        raise dg.Failure(description=refusals[0], allow_retries=False)
    mark_started([request.deliberation_id])
    return client


def _preflight(context: dg.OpExecutionContext, llm: LLMResource, request: DeliberationRequest) -> str | None:
    """Refuses, before any council starts, a deliberation the model server cannot serve; returns the model
    that serves every role when the server serves none of the profiles' (the embedded engine needs none)."""
    try:
        checked = llm.preflight(request)
    except PreflightError as exc:
        raise dg.Failure(description=f"Model preflight: {exc}", allow_retries=False) from None
    if checked is None:
        return None
    for note in checked.notes:
        context.log.info(note)
    return checked.model_override


def _traceparent(context: dg.OpExecutionContext, request: DeliberationRequest) -> str:
    """The request's trace context; else the run's (its tag: the CLI's, the NATS request's); else one of its
    own for a run launched without one (from the UI), the same whenever the op runs again."""
    return request.traceparent or context.run.tags.get(TRACEPARENT_TAG) or derived_traceparent("run", context.run_id)


@dg.op(out=dg.DynamicOut(CouncilPlan))
def plan_councils(
    context: dg.OpExecutionContext,
    config: DeliberationConfig,
    nats: NatsResource,
    ray_cluster: RayClusterResource,
    llm: LLMResource,
):
    try:
        request = config.to_request(deliberation_id=context.partition_key)
    except RequestError as exc:
        raise dg.Failure(
            description=f"Invalid deliberation request: {exc}",
            metadata={"errors": dg.MetadataValue.json([{"field": f, "message": m} for f, m in exc.errors])},
            allow_retries=False,
        ) from None
    request = request.model_copy(update={"traceparent": _traceparent(context, request)})
    model_override = _preflight(context, llm, request)
    wait_for_admission(request, llm, context.log)
    started_at = time.time()
    plans = [
        CouncilPlan(
            request=request,
            role=role,
            started_at=started_at,
            deadline_at=started_at + request.deadline_s,
            model_override=model_override,
        )
        for role in request.roles
    ]
    # Started here, together: the in-process executor runs the council steps one after another
    # (tens of ms each), which would otherwise stagger the roles' start on the critical path.
    try:
        _start_councils(context, plans, llm)
    except CouncilRunnerUnavailable as exc:  # each council step starts what did not start here
        context.log.warning(f"councils not all started by the plan, the council steps will: {exc}")
    # Observed and announced once the councils run, so neither delays them.
    _observe(context, request, 0, {})
    seq = context.run.tags.get(STREAM_SEQ_TAG)
    if nats.settings() is not None:
        outbox = RunOutbox(context.instance, context.run_id, RUN)
        outbox.record([accepted_event(request, context.run_id, int(seq) if seq else None)])
        outbox.publish(nats, context.log, retry_s=nats.publish_retry_s())
    for plan in plans:
        yield dg.DynamicOutput(plan, mapping_key=plan.role)


@dg.op(retry_policy=dg.RetryPolicy(max_retries=2, delay=1.0))
def start_council(
    context: dg.OpExecutionContext, plan: CouncilPlan, ray_cluster: RayClusterResource, llm: LLMResource
) -> CouncilPlan:
    _start_councils(context, [plan], llm)
    return plan


def _gather_councils(
    context: dg.OpExecutionContext, client: CouncilClient, plans: list[CouncilPlan], stream: AgentResponseStream
) -> list[CouncilResult]:
    """Waits for every council's result, observing progress and streaming agent calls meanwhile; returns
    in the request's role order."""
    request, deadline_at = plans[0].request, plans[0].deadline_at
    by_role = {plan.role: plan for plan in plans}
    waiting = client.results(list(by_role))
    results: dict[str, CouncilResult] = {}
    last_seen = None
    while waiting.pending and time.time() < deadline_at + COLLECT_GRACE_S:
        ready = waiting.ready(timeout_s=POLL_INTERVAL_S)
        while waiting.restarted:
            role = waiting.restarted.pop(0)
            context.log.warning(
                f"council {role}: its runner was lost; started again, with the calls that had finished "
                "answered from the response store"
            )
            stream.restart(role)
        for role, outcome in ready.items():
            if isinstance(outcome, LostCouncil):
                context.log.error(f"council {role}: {outcome.reason} {outcome.detail}".rstrip())
                outcome = _lost_council(by_role[role], outcome.reason)
            results[role] = outcome
            stream.send({role: outcome.calls})
        if waiting.pending:
            offsets = dict(stream.published)
            try:
                progress = client.progress()
                fresh_calls = client.calls_since(offsets) if stream.enabled else {}
            except CouncilRunnerUnavailable as exc:  # a runner restarting: its councils come back through `ready`
                context.log.warning(f"progress not available this poll: {exc}")
                continue
            running = [p for role, p in progress.items() if role not in results]
            current = sum(p["proposals"] for p in running) + sum(r.proposals_done for r in results.values())
            snapshot = (current, {role: (p["phase"], p["done"]) for role, p in progress.items()})
            if snapshot != last_seen:
                _observe(context, request, current, progress)
                last_seen = snapshot
            stream.send(fresh_calls, offsets)
    for role in waiting.pending:
        results[role] = _lost_council(by_role[role], "the council did not hand over its result before the deadline")
    return [results[role] for role in request.roles if role in results]


def _lost_council(plan: CouncilPlan, reason: str) -> CouncilResult:
    return CouncilResult(
        role=plan.role,
        expected_agents=plan.request.agents_per_role,
        proposals=[],
        reviews=[],
        calls=[],
        selection=Selection(winner=None, method="score", rationale=reason),
        error=reason,
        started_at=plan.started_at,
        finished_at=time.time(),
    )


@dg.op
def collect_deliberation(
    context: dg.OpExecutionContext,
    plans: list[CouncilPlan],
    ray_cluster: RayClusterResource,
    nats: NatsResource,
    llm: LLMResource,
):
    request = plans[0].request
    try:  # attaches to the councils; one a runner lost (or a resumed run's) starts again
        client = _start_councils(context, plans, llm)
    except CouncilRunnerUnavailable as exc:
        context.log.warning(f"councils not all reachable before collecting: {exc}")
        client = CouncilClient(request.deliberation_id, context.run_id)
    stream = AgentResponseStream(nats, client, RunOutbox(context.instance, context.run_id, RUN), context.log)
    councils, pass_matrix = cross_executed(
        request, _gather_councils(context, client, plans, stream), plans[0].deadline_at
    )

    first_start = councils_started_at(councils)
    started_at = plans[0].started_at if first_start is None else min(first_start, plans[0].started_at)
    wall_ms = (time.time() - started_at) * 1000
    outcome = deliberation_outcome(request, councils, wall_ms, llm.prices(), pass_matrix)
    frame, metadata, final = collected(outcome, context.run_id)
    yield dg.Output(frame, metadata=metadata)
    # What the polls did not publish, then the final event, through NATS outages up to the retry bound.
    if not stream.finish({council.role: council.calls for council in councils}, final):
        context.log.warning(
            f"NATS did not take the last events of {request.deliberation_id} within {nats.publish_retry_s():.0f} s: "
            "they wait in the run's outbox, which the deliberation_outbox sensor publishes once NATS is back"
        )
    client.finished(outcome.status.value)
    client.release()
    if outcome.status is DeliberationStatus.FAILED:
        raise dg.Failure(
            description=f"Deliberation {request.deliberation_id} FAILED: a role has no scored proposal"
            + (f" ({outcome.call_errors})" if outcome.call_errors else ""),
            allow_retries=False,
        )


class InvalidDeliberationRequest(dg.DagsterError):
    """A DagsterError passes Dagster's user-code boundary as it is, so the launcher shows this message."""


@dg.config_mapping
def validated_request(config: DeliberationConfig) -> dict:
    """Runs when a run is launched (UI, GraphQL, sensor): an invalid request is refused before any run
    starts, with every bad field named."""
    try:
        config.to_request(deliberation_id="validation")
    except RequestError as exc:
        raise InvalidDeliberationRequest(f"Invalid deliberation request: {exc}") from None
    return {"plan_councils": {"config": config.model_dump()}}


@dg.graph_asset(
    name="deliberation",
    config=validated_request,
    partitions_def=deliberation_partitions,
    description="One multi-agent deliberation per partition: proposals, reviews, scores and a winner per role.",
)
def deliberation():
    plans = plan_councils()
    return collect_deliberation(plans.map(start_council).collect())


deliberation_job = dg.define_asset_job(
    "deliberation_job",
    selection=[deliberation],
    partitions_def=deliberation_partitions,
    executor_def=dg.in_process_executor,
    tags={**RUN_POD_TAGS, OUTBOX_TAG: PENDING},  # every run's events go through the outbox (outbox.py)
    description="Runs one deliberation (one partition). Councils run concurrently on Ray.",
)
