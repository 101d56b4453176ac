"""One time budget for a whole evaluation of a NATS sensor (the request sensor, the outbox sensor).

Dagster gives a sensor evaluation 60 s (DAGSTER_SENSOR_GRPC_TIMEOUT_SECONDS) and fails the tick past it,
cursor unmoved: a tick that cannot finish in time fails again on every evaluation and intake stalls. So
each step (reading the stream, asking the model server, publishing answers, starting councils) gets what
is left of one deadline, and the requests that do not fit wait for the next tick.
"""

import time
from dataclasses import dataclass

DEFAULT_TICK_BUDGET_S = 45.0  # Dagster's 60 s, less its own work around the evaluation (resources, results)
MAX_TICK_BUDGET_S = 55.0
# The part of the budget kept for publishing the outcome and starting councils once requests are triaged.
RESERVE_SHARE = 0.25
# A step that must run (the tick's first request, a publish) gets at least this much, even past the deadline.
MIN_STEP_S = 0.5


@dataclass(frozen=True)
class TickBudget:
    ends_at: float  # time.monotonic()
    reserve_s: float

    @classmethod
    def start(cls, total_s: float) -> "TickBudget":
        return cls(ends_at=time.monotonic() + total_s, reserve_s=total_s * RESERVE_SHARE)

    def left_s(self) -> float:
        return max(0.0, self.ends_at - time.monotonic())

    def for_step_s(self, most_s: float) -> float:
        """What a step before the reserve may take: at most `most_s`, at least MIN_STEP_S."""
        return max(MIN_STEP_S, min(most_s, self.left_s() - self.reserve_s))

    def after_triage_s(self, most_s: float) -> float:
        """What a step after triage (publishing answers, starting councils) may take: the reserve is theirs."""
        return max(MIN_STEP_S, min(most_s, self.left_s()))

    def has_time(self) -> bool:
        """Whether another request can be triaged before the reserve."""
        return self.left_s() > self.reserve_s
