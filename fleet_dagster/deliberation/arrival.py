"""Councils that start when their NATS request arrives, not when Dagster starts its run.

The request sensor sees a request a second or two after it is published; Dagster starts its run many
seconds later (the queued-run daemon, then a run worker process: 14 s at p50 for 8 requests at once on
2 cores), while the model sits idle. So the sensor starts the councils at once, owned by the request
(`arrival_owner`), and the run adopts them when its plan step starts them: starting is idempotent by id
and role, so nothing runs twice, and the run's own steps start whatever the sensor did not.

Only as many as Dagster's run queue would start now: requests beyond its max_concurrent_runs wait for
their run, as before, so run concurrency limits hold; the model's bound on calls in flight holds whoever
makes the calls. A request whose run never comes (cancelled while queued) leaves councils that finish,
keep their answers in the response store (a later run of the id replays them) and are dropped an hour
after their deadline.
"""

import time
from collections.abc import Callable

import dagster as dg

from fleet_dagster.core.request import DeliberationRequest
from fleet_dagster.llm.resources import LLMResource
from fleet_dagster.ray_cluster.council_client import CouncilClient
from fleet_dagster.ray_cluster.model_endpoint import model_endpoint

ACTIVE_RUN_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def arrival_owner(stream_seq: int) -> str:
    """Who owns a request's councils from its arrival until its run adopts them."""
    return f"request-{stream_seq}"


def start_councils(
    client: CouncilClient,
    request: DeliberationRequest,
    roles: list[str],
    deadline_at: float,
    model_override: str | None,
    llm: LLMResource,
    adopt_from: str | None = None,
    timeout_s: float | None = None,
) -> list[str]:
    """Starts (or adopts, or finds running) the roles' councils for the client's owner; the refusals. Raises
    CouncilRunnerUnavailable when the runners do not answer within `timeout_s`."""
    endpoint = model_endpoint(llm)
    if model_override:
        endpoint = endpoint.model_copy(update={"model_override": model_override})
    return client.start(request, roles, deadline_at, endpoint, llm.call_timeout_s, adopt_from, timeout_s)


def free_run_slots(instance: dg.DagsterInstance) -> int | None:
    """How many more runs Dagster's queue would start now; None when it sets no limit."""
    queue = instance.get_concurrency_config().run_queue_config
    if queue is None or queue.max_concurrent_runs < 0:
        return None
    active = instance.get_runs_count(dg.RunsFilter(statuses=ACTIVE_RUN_STATUSES))
    return max(0, queue.max_concurrent_runs - active)


def start_on_arrival(
    instance: dg.DagsterInstance,
    accepted: list[tuple[int, DeliberationRequest, str | None]],
    llm: LLMResource,
    time_left_s: Callable[[], float],
) -> list[str]:
    """`accepted`: (stream sequence, request, model override) in the order their runs are requested. Starts
    the councils of those the run queue would start now, while `time_left_s()` lasts (a cluster that does not
    answer raises CouncilRunnerUnavailable); returns their deliberation ids."""
    free = free_run_slots(instance)
    started = []
    for seq, request, model_override in accepted[:free] if free is not None else accepted:
        if (timeout_s := time_left_s()) <= 0:
            break
        client = CouncilClient(request.deliberation_id, arrival_owner(seq))
        deadline_at = time.time() + request.deadline_s
        if not start_councils(client, request, request.roles, deadline_at, model_override, llm, timeout_s=timeout_s):
            started.append(request.deliberation_id)
    return started
