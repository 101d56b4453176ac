"""Running a whole deliberation on the cluster's CouncilRunner and waiting for it (benchmarks)."""

import time
import uuid

from fleet_dagster.core.records import CouncilResult
from fleet_dagster.core.request import DeliberationRequest
from fleet_dagster.llm.endpoint import LLMEndpoint
from fleet_dagster.ray_cluster.council_client import CouncilClient
from fleet_dagster.ray_cluster.sandbox_runs import cross_executed


def deliberate_on_ray(
    request: DeliberationRequest, endpoint: LLMEndpoint, call_timeout_s: float
) -> list[CouncilResult]:
    """Not a Dagster run: the councils get an owner of their own."""
    client = CouncilClient(request.deliberation_id, owner=f"direct-{uuid.uuid4().hex}")
    deadline_at = time.time() + request.deadline_s
    refusals = client.start(request, request.roles, deadline_at, endpoint, call_timeout_s)
    if refusals:
        raise RuntimeError(refusals[0])
    councils, _ = cross_executed(request, client.collect(request.roles), deadline_at)
    return councils
