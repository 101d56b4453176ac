"""The simulated engine's busy share, on a clock the test moves: what the drain benchmark reports."""

import pytest

from fleet_dagster.sim_llm.latency import EngineLoad
from tests.clock import Clock


def test_busy_share_from_the_first_busy_moment_or_from_a_given_time_to_the_last_idle():
    clock = Clock(now=100.0)
    load = EngineLoad(capacity=4, clock=clock)
    assert load.utilization() == 0.0
    load.acquire()  # t=100: a warm-up call
    clock.now = 110.0
    for _ in range(3):  # t=110: the drain's burst, as the warm-up's call ends
        load.acquire()
    load.release()
    clock.now = 120.0
    for _ in range(3):
        load.release()
    clock.now = 130.0  # idle from 120 on: not counted
    assert load.utilization() == pytest.approx((10 * 1 + 10 * 3) / (20 * 4))
    assert load.utilization(since=110.0) == pytest.approx((10 * 3) / (10 * 4))
    assert load.utilization(since=105.0) == pytest.approx((5 * 1 + 10 * 3) / (15 * 4))


def test_reset_counts_from_now_when_busy_and_from_the_next_call_when_idle():
    clock = Clock(now=100.0)
    load = EngineLoad(capacity=2, clock=clock)
    load.acquire()
    clock.now = 150.0
    load.reset()
    clock.now = 160.0
    load.release()
    assert load.utilization() == pytest.approx(0.5)
    load.reset()
    clock.now = 200.0
    load.acquire()
    load.acquire()
    clock.now = 204.0
    assert load.utilization() == pytest.approx(1.0)  # busy now: up to now
