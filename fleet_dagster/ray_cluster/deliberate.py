"""Running a whole deliberation on the cluster's CouncilRunner and waiting for it (benchmarks)."""

import time
import uuid

import ray

from fleet_dagster.core.records import CouncilResult
from fleet_dagster.core.request import DeliberationRequest
from fleet_dagster.llm.endpoint import LLMEndpoint
from fleet_dagster.ray_cluster.actors import council_runner


def deliberate_on_ray(
    request: DeliberationRequest, endpoint: LLMEndpoint, call_timeout_s: float
) -> list[CouncilResult]:
    runner = council_runner()
    deadline_at = time.time() + request.deadline_s
    owner = f"direct-{uuid.uuid4().hex}"  # not a Dagster run: an owner of its own
    starts = [
        runner.start.remote(request, role, deadline_at, endpoint, call_timeout_s, owner) for role in request.roles
    ]
    refusals = [refusal for refusal in ray.get(starts) if refusal]
    if refusals:
        raise RuntimeError(refusals[0])
    try:
        results = ray.get([runner.result.remote(request.deliberation_id, role) for role in request.roles])
    finally:
        runner.release.remote(request.deliberation_id, owner)
    return [result for result in results if result is not None]
