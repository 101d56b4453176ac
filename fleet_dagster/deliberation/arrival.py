"""Councils that start when their NATS request arrives, not when Dagster starts its run.

The request sensor sees a request a second or two after it is published; Dagster starts its run many
seconds later (the queued-run daemon, then a run worker process), while the model sits idle. So the sensor
starts the councils at once, owned by the request (`arrival_owner`), and the run adopts them when its plan
step starts them: starting is idempotent by id and role, so nothing runs twice, and the run's own steps
start whatever the sensor did not.

How many start is the fleet's admission (core/admission.py), not Dagster's run queue: run concurrency
limits bound the runs (processes, pods), and the runs adopt councils whenever they start. Requests beyond
the admission bound wait, in order of priority then arrival, as their queued runs; the keeper holds what
starting them takes and starts them the moment a slot frees, before their runs do (each tick asks again
for them, so a keeper that restarted still gets them started). A request whose run never comes
(cancelled while queued) leaves councils that finish, keep their answers in the response store (a later
run of the id replays them) and are dropped an hour after their deadline.

The CLI does the same for the run it is about to create (`start_for_launch`): Dagster takes about 0.3 s to
create a run and reach its plan step (on SQLite, the run's own event-log database and its first events), so the
councils start first, owned by the run id the CLI chose, and the plan step finds them running as its own.
"""

import logging
import time
from collections.abc import Callable
from typing import Any

import dagster as dg
from ray import ObjectRef

from fleet_dagster.core.admission import PRIORITY_RANK
from fleet_dagster.core.request import DeliberationRequest, RequestError, parse_request
from fleet_dagster.deliberation.keys_and_tags import DELIBERATION_ID_TAG, STREAM_SEQ_TAG
from fleet_dagster.llm.endpoint import LLMEndpoint
from fleet_dagster.llm.resources import LLMResource
from fleet_dagster.ray_cluster.council_client import (
    CouncilClient,
    CouncilRunnerUnavailable,
    council_runners,
    ray_call,
)
from fleet_dagster.ray_cluster.fleet_admission import admit, mark_started
from fleet_dagster.ray_cluster.held_start import HeldStart
from fleet_dagster.ray_cluster.model_endpoint import model_endpoint

# Queued runs (oldest first) the sensor looks at for requests waiting for admission; a tick starts fewer.
WAITING_RUNS_LOOKED_AT = 500
# A run waiting for its turn asks again this often; one ask takes milliseconds, this long means no answer.
ADMISSION_POLL_S = 0.5
ADMISSION_ASK_TIMEOUT_S = 10.0
_NOT_YET_STARTED = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED]


def arrival_owner(stream_seq: int) -> str:
    """Who owns a request's councils from its arrival until its run adopts them."""
    return f"request-{stream_seq}"


def with_model_override(endpoint: LLMEndpoint, model_override: str | None) -> LLMEndpoint:
    """Where a deliberation's councils call: the deployment's endpoint, with the model that serves every role
    when preflight chose one."""
    return endpoint.model_copy(update={"model_override": model_override}) if model_override else endpoint


def start_councils(
    client: CouncilClient,
    request: DeliberationRequest,
    roles: list[str],
    deadline_at: float,
    model_override: str | None,
    llm: LLMResource,
    adopt_from: str | None = None,
) -> list[str]:
    """Starts (or adopts, or finds running) the roles' councils for the client's owner; the refusals. Raises
    CouncilRunnerUnavailable when the runners do not answer."""
    endpoint = with_model_override(model_endpoint(llm), model_override)
    return client.start(request, roles, deadline_at, endpoint, llm.call_timeout_s, adopt_from)


def _admitted_now(request: DeliberationRequest, limit: int) -> bool:
    """Asks the fleet's admission once for this deliberation: let in now (or running already), or waiting its turn.
    Raises CouncilRunnerUnavailable when the keeper does not answer."""
    asks = [(request.deliberation_id, PRIORITY_RANK[request.priority])]
    return admit(asks, limit, timeout_s=ADMISSION_ASK_TIMEOUT_S).admits(request.deliberation_id)


def start_for_launch(request: DeliberationRequest, run_id: str, llm: LLMResource) -> bool:
    """Starts the councils of run `run_id` before the run exists, when the model server serves the request and
    the fleet's admission lets it in now; whether they run. Otherwise nothing starts: the run's plan step checks
    and waits as for any launch, and says why. Raises PreflightError or CouncilRunnerUnavailable likewise."""
    checked = llm.preflight(request)
    if not _admitted_now(request, llm.admission_limit(model_endpoint(llm))):
        return False
    client = CouncilClient(request.deliberation_id, run_id)
    model_override = checked.model_override if checked else None
    if start_councils(client, request, request.roles, time.time() + request.deadline_s, model_override, llm):
        return False  # refused: another run holds the id, or this one was released (Ctrl-C)
    mark_started([request.deliberation_id])
    return True


def waiting_requests(instance: dg.DagsterInstance, job_name: str) -> list[tuple[int, DeliberationRequest]]:
    """Requests whose runs wait in Dagster's queue: (stream sequence, request), as their run config says."""
    waiting = []
    runs = instance.get_runs(
        dg.RunsFilter(job_name=job_name, statuses=_NOT_YET_STARTED), limit=WAITING_RUNS_LOOKED_AT, ascending=True
    )
    for run in runs:
        seq, deliberation_id = run.tags.get(STREAM_SEQ_TAG, ""), run.tags.get(DELIBERATION_ID_TAG)
        if not seq.isdigit() or deliberation_id is None:
            continue  # launched from the UI or the CLI: its plan step asks for admission itself
        run_config: dict[str, Any] = dict(run.run_config)
        config = run_config.get("ops", {}).get("deliberation", {}).get("config", {})
        try:
            waiting.append((int(seq), parse_request({**config, "deliberation_id": deliberation_id})))
        except RequestError:
            continue  # its run fails in its plan step, saying why
    return waiting


def by_admission_order(requests: list[tuple[int, DeliberationRequest]]) -> list[tuple[int, DeliberationRequest]]:
    """Highest priority first, then in stream order; each deliberation once."""
    unique = {request.deliberation_id: (seq, request) for seq, request in reversed(requests)}
    return sorted(unique.values(), key=lambda pair: (-PRIORITY_RANK[pair[1].priority], pair[0]))


def start_on_arrival(
    accepted: list[tuple[int, DeliberationRequest]],
    waiting: list[tuple[int, DeliberationRequest]],
    model_override: Callable[[DeliberationRequest], str | None],
    llm: LLMResource,
    time_left_s: Callable[[], float],
) -> list[str]:
    """(stream sequence, request) of this tick's `accepted` requests and of those `waiting` for admission (their
    runs queued). Starts the councils of those admission lets in, while `time_left_s()` lasts (a cluster that does
    not answer raises CouncilRunnerUnavailable); returns their deliberation ids. Accepted ones that must wait are
    left with the keeper, which starts them the moment a slot frees; waiting ones it does not hold (it restarted)
    start at a later tick."""
    ordered = by_admission_order([*accepted, *waiting])
    endpoint = model_endpoint(llm)

    def start_of(seq: int, request: DeliberationRequest) -> HeldStart:
        request_endpoint = with_model_override(endpoint, model_override(request))
        return HeldStart(request, arrival_owner(seq), request_endpoint, llm.call_timeout_s)

    held = {request.deliberation_id: start_of(seq, request) for seq, request in accepted}
    asks = [(request.deliberation_id, PRIORITY_RANK[request.priority]) for _, request in ordered]
    to_start = set(admit(asks, llm.admission_limit(endpoint), timeout_s=time_left_s(), held=held).to_start)
    # Every start sent at once, then their answers awaited together: one round trip to the runners, not one a request.
    starts: dict[str, list[ObjectRef]] = {}
    runners = council_runners()
    for seq, request in ordered:
        if request.deliberation_id in to_start:
            start = held.get(request.deliberation_id) or start_of(seq, request)
            client = CouncilClient(request.deliberation_id, start.owner, runners)
            deadline_at = time.time() + request.deadline_s
            starts[request.deliberation_id] = client.submit_start(
                request, request.roles, deadline_at, start.endpoint, start.call_timeout_s
            )
    refusals = iter(ray_call([ref for refs in starts.values() for ref in refs], max(time_left_s(), 0.1)))
    started = [d for d, refs in starts.items() if not any([next(refusals) for _ in refs])]
    mark_started(started)
    return started


def wait_for_admission(request: DeliberationRequest, llm: LLMResource, log: logging.Logger) -> None:
    """A run's turn in the fleet's admission, whatever launched it (UI, CLI, NATS); councils its request's arrival
    started are admitted already. Raises dg.Failure when no turn came within the request's deadline; a keeper
    that does not answer lets the run go on (its councils start, or fail to, as without admission)."""
    limit = llm.admission_limit(model_endpoint(llm))
    give_up_at, waited = time.time() + request.deadline_s, False
    while True:
        try:
            if _admitted_now(request, limit):
                return
        except CouncilRunnerUnavailable as exc:
            log.warning(f"fleet admission not asked, councils start now: {exc}")
            return
        if time.time() >= give_up_at:
            raise dg.Failure(
                description=f"not admitted within its deadline ({request.deadline_s:g} s): the fleet ran "
                f"{limit} deliberations (FLEET_MAX_DELIBERATIONS_IN_FLIGHT) the whole time",
                allow_retries=False,
            )
        if not waited:
            log.info(f"waiting for fleet capacity ({limit} deliberations at once), priority {request.priority}")
            waited = True
        time.sleep(ADMISSION_POLL_S)
