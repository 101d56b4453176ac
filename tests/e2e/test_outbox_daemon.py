"""The daemon's outbox sensor through a NATS outage longer than every retry, the daemon restarted meanwhile."""

import dagster as dg
import pytest

from fleet_dagster.definitions import defs
from tests import nats_helpers
from tests.e2e.test_launches import publish, request, runs_for, wait_for

pytestmark = pytest.mark.e2e


def daemon_log_size(stack) -> int:
    return len((stack.home / "daemon.log").read_text(errors="replace"))


def delivery_ticks_done(stack, since: int) -> bool:
    """Whether the daemon finished a tick of every sensor but the request intake since offset `since` of its
    log: it has started a second one (a sensor's ticks run one after another)."""
    log = (stack.home / "daemon.log").read_text(errors="replace")[since:]
    names = [sensor.name for sensor in defs.sensors if sensor.name != "deliberation_requests"]
    return all(log.count(f"Checking for new runs for sensor: {name}") >= 2 for name in names)


def deliver_through_an_outage(stack) -> dg.DagsterRun:
    """Runs a deliberation whose run ends while NATS is down, restarts the daemon meanwhile, brings NATS back
    and waits for the final event."""
    stack.sim.settings.latency_s = 2.0  # the council outlasts the moment NATS goes away
    calls_before = sum(stack.sim.requests_by_agent.values())
    try:
        publish(stack, [request("out-of-reach")])
        wait_for(
            lambda: sum(stack.sim.requests_by_agent.values()) > calls_before,
            300,
            "the council's first model call",
            stack,
            poll_s=0.1,
        )
        stack.nats.stop()
        (run,) = wait_for(
            lambda: [r for r in runs_for(stack, "out-of-reach") if r.is_finished], 300, "the run to end", stack
        )
        stack.crash("daemon")
        restarted_at = daemon_log_size(stack)
        stack.start("daemon")  # a fresh daemon, NATS still down: the outbox is all it has
        wait_for(lambda: delivery_ticks_done(stack, restarted_at), 180, "the daemon's ticks while NATS is down", stack)
        stack.nats.start()
        completed = ("deliberation.completed", f"final-out-of-reach-{run.run_id}")
        wait_for(lambda: nats_helpers.stored_msg_ids(stack.nats.url)[completed], 120, "the final event", stack)
    finally:
        stack.sim.settings.latency_s = 0.05
        if stack.nats.process is None or stack.nats.process.poll() is not None:
            stack.nats.start()  # the package's later tests need it
    return run


def test_a_run_finished_while_nats_was_down_has_every_event_delivered_once(stack):
    with stack.benchmarks_paused():
        run = deliver_through_an_outage(stack)
    arrived = {key: n for key, n in nats_helpers.stored_msg_ids(stack.nats.url).items() if run.run_id in (key[1] or "")}
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert sorted(subject for subject, _ in arrived) == [
        "agent.response.completed",
        "agent.response.completed",
        "deliberation.accepted",
        "deliberation.completed",
    ], arrived
    assert set(arrived.values()) == {1}, arrived
