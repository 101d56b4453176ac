"""The intake drain benchmark's shape and figures (the harness that measures them: cli/drain.py).

N NATS requests at once (or spread over some seconds) through the real daemon's sensor, admission, Ray and runs,
on a simulated model: what a producer and an operator see. Request → councils running (the first call at the
model), → run started, → final event; deliberations per minute; how busy the model was while the councils ran;
the most runs in progress at once (Dagster's max_concurrent_runs must hold); what `status` said when each final
event came; and where a finished deliberation's time goes between its last model call and its final event.
`bench/nats_drain.py` prints them; the `intake_drain` asset keeps them day by day.
"""

import statistics

from pydantic import BaseModel, Field

# Dagster's sensor daemon evaluates sensors at most once per loop of 5 s (dagster/_daemon/sensor.py,
# MIN_INTERVAL_LOOP_TIME), whatever a sensor's shorter minimum interval.
SENSOR_DAEMON_LOOP_S = 5


class DrainShape(BaseModel):
    requests: int = Field(60, ge=1, le=2000)
    interval_s: int = Field(2, ge=1, description="The request sensor's minimum interval.")
    max_concurrent_runs: int = Field(4, ge=1)
    dequeue_interval_s: int = Field(5, ge=1, description="The queued-run coordinator's (Dagster's default: 5).")
    latency_s: float = Field(2.0, ge=0, description="Simulated seconds per agent call.")
    capacity: int = Field(
        64, ge=1, description="Sequences the simulated server runs at once (below a burst of 60 two-agent requests)."
    )
    agents: int = Field(2, ge=1, description="Agents per request (one role).")
    rounds: int = Field(1, ge=0)
    spread_s: float = Field(
        0,
        ge=0,
        description="Seconds over which the N requests are published, evenly, so that they land at every phase of "
        "the daemon's loop; 0: all at once.",
    )
    timeout_s: float = Field(1800, gt=0)
    start_on_arrival: bool = True

    @property
    def effective_interval_s(self) -> int:
        """How often the request sensor is evaluated: its interval, or the daemon's loop when that is longer."""
        return max(self.interval_s, SENSOR_DAEMON_LOOP_S)


class Quantiles(BaseModel):
    p50: float
    p95: float

    @classmethod
    def of(cls, values: list[float]) -> "Quantiles":
        ordered = sorted(values) or [float("nan")]
        return cls(p50=round(statistics.median(ordered), 2), p95=round(ordered[int(0.95 * (len(ordered) - 1))], 2))


class DrainFigures(BaseModel):
    shape: DrainShape
    runs_created: int
    final_events: int
    request_to_councils_s: Quantiles
    request_to_run_started_s: Quantiles
    request_to_final_s: Quantiles
    deliberations_per_minute: float
    runs_started_per_minute: float
    model_busy_share: float
    model_done_after_s: float
    peak_runs_in_progress: int
    status_final_at_event: int
    # After the last model call: waiting for the run to start, the run collecting and materializing, the final
    # event's delivery, and all of it.
    after_last_call_s: dict[str, Quantiles]


def drain_lines(figures: DrainFigures) -> list[str]:
    """The figures as a report, one per line."""
    shape = figures.shape

    def quantiles(name: str, value: Quantiles, note: str = "") -> str:
        return f"{name:32s} p50 {value.p50:7.2f} s   p95 {value.p95:7.2f} s{note}"

    return [
        f"requests {shape.requests}: {shape.agents} agents, {shape.rounds} round(s), {shape.latency_s:g} s a call, "
        f"model capacity {shape.capacity}, sensor every {shape.effective_interval_s} s (interval {shape.interval_s} "
        f"s, daemon loop {SENSOR_DAEMON_LOOP_S} s), max_concurrent_runs "
        f"{shape.max_concurrent_runs}, dequeue every {shape.dequeue_interval_s} s",
        f"runs created                     {figures.runs_created}   (one per request expected)",
        quantiles("request -> councils running", figures.request_to_councils_s, "   (its first call at the model)"),
        quantiles("request -> run started", figures.request_to_run_started_s),
        quantiles("request -> final event", figures.request_to_final_s, f"   ({figures.final_events} final events)"),
        f"deliberations per minute         {figures.deliberations_per_minute:7.1f}   (final events)",
        f"runs started per minute          {figures.runs_started_per_minute:7.1f}",
        f"model busy share                 {figures.model_busy_share:7.3f}   (the drain's first call to the last idle)",
        f"model done after                 {figures.model_done_after_s:7.1f} s",
        f"runs in progress, peak           {figures.peak_runs_in_progress}   (max_concurrent_runs "
        f"{shape.max_concurrent_runs})",
        f"status final at the final event  {figures.status_final_at_event}/{figures.final_events}",
        "after the last model call:",
        *(quantiles(f"  {segment}", value) for segment, value in figures.after_last_call_s.items()),
    ]
