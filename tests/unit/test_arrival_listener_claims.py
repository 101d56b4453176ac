"""Whoever claims a request first, the tick or the listener, starts its councils; a tick's cursor ends claims."""

import time
from unittest import mock

from fleet_dagster.core.request import parse_request
from fleet_dagster.deliberation.arrival_listener import ArrivalListener, ListenerLease
from fleet_dagster.nats_bridge.settings import NatsSettings


def request(deliberation_id: str):
    return parse_request({"task": "Design a cache", "roles": ["DEV"], "deliberation_id": deliberation_id})


def ended_lease(after: int, stream_created: str | None = "s1") -> ListenerLease:
    """A lease already over: its thread retires at once, touching neither NATS nor the instance."""
    return ListenerLease(
        settings=NatsSettings(url="nats://127.0.0.1:1"),
        instance_ref=mock.sentinel.instance_ref,
        stream_created=stream_created,
        after=after,
        unservable=lambda request: [],
        start=lambda accepted: None,
        until=time.monotonic() - 1,
    )


def test_a_request_is_claimed_once_until_released():
    listener = ArrivalListener()
    a, b = (5, request("a")), (6, request("b"))
    assert listener.claim([a]) == [a]
    assert listener.claim([a, b]) == [b]
    listener.release([a])
    assert listener.claim([a, b]) == [a]


def test_a_tick_cursor_past_a_claim_ends_it_and_another_stream_ends_them_all():
    listener = ArrivalListener()
    listener.claim([(5, request("a")), (9, request("b"))])
    listener.renew(ended_lease(after=6))
    assert listener.claim([(5, request("a")), (9, request("b"))]) == [(5, request("a"))]
    listener.renew(ended_lease(after=0, stream_created="s2"))
    assert listener.claim([(9, request("b"))]) == [(9, request("b"))]
    listener.stop()
    assert not listener.listening()
