"""Between request ticks, the listener a tick renewed starts the councils of each request as it is stored; the
next tick still triages, answers and requests the run."""

import asyncio
import json
import time

import pytest

from fleet_dagster.deliberation import sensors
from fleet_dagster.deliberation.arrival_listener import ArrivalListener, ListenerLease
from fleet_dagster.nats_bridge.jetstream import ensure_stream, jetstream
from fleet_dagster.nats_bridge.settings import NatsSettings
from tests import nats_helpers
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def listener():
    between_ticks = ArrivalListener()
    yield between_ticks
    between_ticks.stop()


def tick(nats_url, instance, listener, cursor=None):
    return nats_helpers.evaluate_request_sensor(nats_url, instance, cursor, start_on_arrival=True, listener=listener)


def test_a_request_stored_after_a_tick_gets_its_councils_before_the_next_tick(
    nats_server, instance, ray_head, sim_llm_factory, deploy_llm, listener
):
    server = sim_llm_factory(latency_s=0.3)
    deploy_llm(server)
    nats_helpers.publish_raw(nats_server.url, [nats_helpers.request_body("between-a")])
    first = tick(nats_server.url, instance, listener)
    assert [r.run_key for r in first.run_requests] == ["between-a"]

    [seq] = nats_helpers.publish_raw(nats_server.url, [nats_helpers.request_body("between-b")])
    wait_until(lambda: "between-b" in server.first_call_at, 30, "councils of the request stored after the tick")
    assert instance.get_runs_count() == 0  # no tick has seen it, no run exists: the listener started them

    second = tick(nats_server.url, instance, listener, first.cursor)  # still the one that answers and requests runs
    assert [(r.run_key, r.tags["fleet/stream_seq"]) for r in second.run_requests] == [("between-b", str(seq))]
    assert json.loads(second.cursor)["seq"] == seq


def test_the_listener_starts_nothing_a_tick_would_not_accept(
    nats_server, instance, ray_head, sim_llm_factory, deploy_llm, listener
):
    server = sim_llm_factory(latency_s=0.3)
    deploy_llm(server)
    first = tick(nats_server.url, instance, listener)  # an empty stream: the lease starts
    unknown_role = json.dumps({"task": "Design a cache", "roles": ["NOPE"], "deliberation_id": "between-bad"})
    nats_helpers.publish_raw(
        nats_server.url,
        [b"not json", unknown_role.encode(), nats_helpers.request_body("between-ok")],
    )
    wait_until(lambda: "between-ok" in server.first_call_at, 30, "councils of the valid request")
    assert set(server.first_call_at) == {"between-ok"}

    second = tick(nats_server.url, instance, listener, getattr(first, "cursor", None))
    assert [r.run_key for r in second.run_requests] == ["between-ok"]
    assert len(nats_helpers.stored_events(nats_server.url, "deliberation.rejected")) == 2  # the tick answers them


def test_a_lease_ends_and_so_does_listening(
    nats_server, instance, ray_head, sim_llm_factory, deploy_llm, listener, monkeypatch
):
    server = sim_llm_factory(latency_s=0.3)
    deploy_llm(server)
    monkeypatch.setattr(sensors, "LEASE_S", 1.0)
    tick(nats_server.url, instance, listener)
    wait_until(lambda: not listener.listening(), 30, "the end of the listener's 1 s lease")
    nats_helpers.publish_raw(nats_server.url, [nats_helpers.request_body("between-late")])
    time.sleep(1.0)  # what a listener would need to start its councils: absence is what is asserted
    assert "between-late" not in server.first_call_at  # left for the next tick


def test_nats_going_away_ends_the_listener(nats_server, instance, ray_head, sim_llm_factory, deploy_llm, listener):
    deploy_llm(sim_llm_factory(latency_s=0.3))
    tick(nats_server.url, instance, listener)
    assert listener.listening()
    nats_server.stop()
    wait_until(lambda: not listener.listening(), 30, "the listener to stop with NATS gone")


def stream_created(url: str) -> str | None:
    async def created() -> str | None:
        settings = NatsSettings(url=url)
        async with jetstream(settings) as js:
            info = await ensure_stream(js, settings)
            return info.created.isoformat() if info.created else None

    return asyncio.run(created())


def test_while_a_tick_runs_the_listener_reads_nothing_and_goes_on_after_it(nats_server, instance, listener):
    started: list = []  # what the listener hands its start: the cluster is not what this test is about
    lease = ListenerLease(
        settings=NatsSettings(url=nats_server.url),
        instance_ref=instance.get_ref(),
        stream_created=stream_created(nats_server.url),
        after=0,
        unservable=lambda request: [],
        start=started.extend,
        until=time.monotonic() + 60,
    )
    with listener.paused():
        listener.renew(lease)
        [seq] = nats_helpers.publish_raw(nats_server.url, [nats_helpers.request_body("between-paused")])
        time.sleep(1.0)  # ten of its polls: absence is what is asserted
        assert started == []
    wait_until(lambda: started, 30, "the listener to take the request once the tick ended")
    assert [(s, request.deliberation_id) for s, request in started] == [(seq, "between-paused")]
