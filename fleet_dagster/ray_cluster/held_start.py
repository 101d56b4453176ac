"""What starting a waiting request's councils takes, left with the admission keeper (actors.py, ADMISSION_RUNNER)
so that they start the moment a slot frees, not at their asker's next tick (every 5 s or more for a sensor)."""

from typing import NamedTuple

from fleet_dagster.core.request import DeliberationRequest
from fleet_dagster.llm.endpoint import LLMEndpoint

# How often a keeper holding starts looks for freed slots: one question to every runner, a few milliseconds.
HELD_START_POLL_S = 0.5


class HeldStart(NamedTuple):
    request: DeliberationRequest
    owner: str  # who owns the councils until a run adopts them (deliberation/arrival.py: arrival_owner)
    endpoint: LLMEndpoint
    call_timeout_s: float
