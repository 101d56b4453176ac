"""The fleet's admission (core/admission.py), as every launch path reaches it: on the ADMISSION_RUNNER."""

from ray.actor import ActorHandle

from fleet_dagster.core.admission import Admitted
from fleet_dagster.ray_cluster.actors import ADMISSION_RUNNER, council_runner
from fleet_dagster.ray_cluster.council_client import ray_call
from fleet_dagster.ray_cluster.held_start import HeldStart


def _keeper() -> ActorHandle:
    return council_runner(ADMISSION_RUNNER)


def admit(
    asks: list[tuple[str, int]],
    limit: int,
    timeout_s: float | None = None,
    held: dict[str, HeldStart] | None = None,
) -> Admitted:
    """Which of `asks` ((deliberation id, priority rank), in the asker's order) may start their councils now, and
    which have them already; of the `held` starts (by id), the keeper starts those that wait as soon as their turn
    comes. Raises CouncilRunnerUnavailable when the keeper does not answer within timeout_s."""
    return ray_call(_keeper().admit.remote(asks, limit, held), timeout_s)


def mark_started(deliberation_ids: list[str]) -> None:
    """Their councils run (sent in the background: unsent, their grants lapse on their own)."""
    if deliberation_ids:
        _keeper().admission_started.remote(deliberation_ids)


def admission_state(timeout_s: float | None = None) -> tuple[int, int]:
    """(deliberations admitted, waiting) now."""
    return ray_call(_keeper().admission_state.remote(), timeout_s)
