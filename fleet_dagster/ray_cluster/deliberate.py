"""Running a whole deliberation on the cluster's CouncilRunner and waiting for it (benchmarks)."""

import time

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
    ray.get([runner.start.remote(request, role, deadline_at, endpoint, call_timeout_s) for role in request.roles])
    try:
        results = ray.get([runner.result.remote(request.deliberation_id, role) for role in request.roles])
    finally:
        runner.release.remote(request.deliberation_id)
    return [result for result in results if result is not None]
