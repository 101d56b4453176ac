"""The circuit breaker's states, on a clock the test moves."""

from fleet_dagster.llm.circuit import CircuitBreaker
from tests.clock import Clock


def opened(clock: Clock, cooldown_s: float = 5) -> CircuitBreaker:
    """A breaker that one fault opened."""
    breaker = CircuitBreaker(threshold=1, cooldown_s=cooldown_s, clock=clock)
    breaker.record(True)
    return breaker


def test_opens_after_faults_in_a_row_and_fails_fast_until_the_cooldown():
    clock = Clock(now=100.0)
    breaker = CircuitBreaker(threshold=3, cooldown_s=10, clock=clock)
    for _ in range(2):
        assert breaker.admit() is None
        breaker.record(endpoint_fault=True)
    assert breaker.state == "closed"
    breaker.record(endpoint_fault=True)
    assert breaker.state == "open"
    refused = breaker.admit()
    assert refused and "circuit open" in refused and "3 failures" in refused
    clock.now += 9.9
    assert breaker.admit() is not None


def test_a_success_resets_the_count():
    breaker = CircuitBreaker(threshold=2, cooldown_s=10, clock=Clock(now=100.0))
    breaker.record(True)
    breaker.record(False)
    breaker.record(True)
    assert breaker.state == "closed"


def test_after_the_cooldown_one_probe_goes_and_decides():
    clock = Clock(now=100.0)
    breaker = opened(clock)
    clock.now += 5
    assert breaker.admit() is None and breaker.state == "half-open"
    assert "probe call is in flight" in (breaker.admit() or "")  # the others wait for the probe
    breaker.record(True)  # the probe failed: open for another cool-down
    assert breaker.state == "open" and breaker.admit() is not None
    clock.now += 5
    assert breaker.admit() is None
    breaker.record(False)
    assert breaker.state == "closed" and breaker.admit() is None


def test_an_abandoned_probe_leaves_the_next_call_to_probe():
    clock = Clock(now=100.0)
    breaker = opened(clock)
    clock.now += 5
    assert breaker.admit() is None
    breaker.abandon()
    assert breaker.admit() is None and breaker.state == "half-open"


def test_refusal_does_not_claim_the_probe():
    clock = Clock(now=100.0)
    breaker = opened(clock)
    clock.now += 6
    assert breaker.refusal() is None and breaker.state == "open"
