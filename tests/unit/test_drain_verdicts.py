"""What the intake drain's figures must show: nothing lost, status in step with events, runs within their limit."""

import pytest

from fleet_dagster.benchmarks.drain import DrainFigures, DrainShape, Quantiles
from fleet_dagster.benchmarks.drain_verdicts import drain_verdict


def figures(**changes) -> DrainFigures:
    shape = DrainShape(requests=60, interval_s=5, max_concurrent_runs=4)
    sound = DrainFigures(
        shape=shape,
        runs_created=60,
        final_events=60,
        request_to_councils_s=Quantiles(p50=3.1, p95=5.8),
        request_to_run_started_s=Quantiles(p50=40.0, p95=90.0),
        request_to_final_s=Quantiles(p50=45.0, p95=95.0),
        deliberations_per_minute=38.0,
        runs_started_per_minute=38.0,
        model_busy_share=0.9,
        model_done_after_s=20.0,
        peak_runs_in_progress=4,
        status_final_at_event=60,
        after_last_call_s={},
    )
    return sound.model_copy(update=changes)


def test_a_drain_that_keeps_up_passes():
    verdict = drain_verdict(figures())
    assert verdict.passed and "5.8" in verdict.description


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"runs_created": 59}, "1 of 60 requests without a run or a final event"),
        ({"final_events": 58, "status_final_at_event": 58}, "2 of 60 requests"),
        ({"status_final_at_event": 57}, "status still IN_PROGRESS at 3 final events"),
        ({"peak_runs_in_progress": 5}, "5 runs at once, over max_concurrent_runs"),
    ],
)
def test_a_lost_request_a_lagging_status_or_too_many_runs_fails(changes, says):
    verdict = drain_verdict(figures(**changes))
    assert not verdict.passed and not verdict.warn_only and says in verdict.description


def test_councils_later_than_an_interval_and_a_second_warn():
    verdict = drain_verdict(figures(request_to_councils_s=Quantiles(p50=4.0, p95=6.5)))
    assert not verdict.passed and verdict.warn_only and "over 6 s" in verdict.description


def test_a_model_left_idle_by_a_burst_that_fills_it_warns_and_a_small_burst_does_not():
    verdict = drain_verdict(figures(model_busy_share=0.7))  # 60 requests x 2 agents: 120 calls for 64 slots
    assert not verdict.passed and verdict.warn_only and "model 70% busy, under 80%" in verdict.description
    small = figures(model_busy_share=0.2, runs_created=8, final_events=8, status_final_at_event=8)
    small = small.model_copy(update={"shape": DrainShape(requests=8)})  # 16 calls for 64 slots
    assert drain_verdict(small).passed
