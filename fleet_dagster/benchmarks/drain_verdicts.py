"""What the intake drain's figures must show (pure: the asset check and tests call these)."""

from dataclasses import dataclass

from fleet_dagster.benchmarks.drain import DrainFigures

# While a burst offers the model more calls than it runs at once, it must not wait on Dagster: busy this share.
MODEL_BUSY_GOAL = 0.8


@dataclass(frozen=True)
class DrainVerdict:
    passed: bool
    warn_only: bool
    description: str


def drain_verdict(figures: DrainFigures) -> DrainVerdict:
    """Fails when a request lost its run or its final event, when `status` was not final at a final event, or when
    runs passed Dagster's limit; warns when councils started later than a sensor evaluation interval and a second
    after the request (admission waits, or a slow tick), at p95, or when a burst offering the model more calls
    than it runs at once left it less than MODEL_BUSY_GOAL busy."""
    shape = figures.shape
    lost = shape.requests - min(figures.runs_created, figures.final_events)
    if lost:
        return DrainVerdict(False, False, f"{lost} of {shape.requests} requests without a run or a final event")
    if figures.status_final_at_event < figures.final_events:
        late = figures.final_events - figures.status_final_at_event
        return DrainVerdict(False, False, f"status still IN_PROGRESS at {late} final events")
    if figures.peak_runs_in_progress > shape.max_concurrent_runs:
        return DrainVerdict(False, False, f"{figures.peak_runs_in_progress} runs at once, over max_concurrent_runs")
    goal_s = shape.effective_interval_s + 1
    if figures.request_to_councils_s.p95 > goal_s:
        return DrainVerdict(
            False, True, f"request -> councils p95 {figures.request_to_councils_s.p95} s, over {goal_s} s"
        )
    if shape.requests * shape.agents >= shape.capacity and figures.model_busy_share < MODEL_BUSY_GOAL:
        return DrainVerdict(
            False, True, f"model {figures.model_busy_share:.0%} busy, under {MODEL_BUSY_GOAL:.0%}, with work queued"
        )
    return DrainVerdict(True, False, f"request -> councils p95 {figures.request_to_councils_s.p95} s")
