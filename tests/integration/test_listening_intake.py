"""An idle request tick listens: a request that comes while it runs is taken at once, not at the next tick."""

import asyncio
import json
import logging
import threading

import dagster as dg
import pytest

from fleet_dagster.deliberation.archive import DeliberationArchive
from fleet_dagster.deliberation.request_intake import TickRounds, prior_uses
from fleet_dagster.deliberation.served_models import ServedModels
from fleet_dagster.deliberation.tick_budget import TickBudget
from fleet_dagster.llm.resources import LLMResource
from fleet_dagster.nats_bridge.jetstream import ensure_stream, jetstream
from fleet_dagster.nats_bridge.settings import NatsSettings
from fleet_dagster.nats_bridge.triage import Triage
from tests import nats_helpers
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

# Far longer than a test needs: a tick returns once it has accepted a request.
LISTEN_S = 25.0


def tick_in_background(nats_url: str, instance: dg.DagsterInstance) -> tuple[threading.Thread, list]:
    """A listening tick, councils started on arrival, evaluated in a thread; its result lands in the list."""
    results: list = []

    def tick() -> None:
        results.append(
            nats_helpers.evaluate_request_sensor(nats_url, instance, None, start_on_arrival=True, listen_s=LISTEN_S)
        )

    thread = threading.Thread(target=tick)
    thread.start()
    return thread, results


def tick_has_read(nats_url: str) -> bool:
    """The tick rejected the malformed message stored before it: it has read the stream once."""
    return bool(nats_helpers.stored_events(nats_url, "deliberation.rejected"))


def test_an_idle_tick_takes_a_request_published_while_it_runs(
    nats_server, instance, ray_head, sim_llm_factory, deploy_llm
):
    server = sim_llm_factory(latency_s=0.3)
    deploy_llm(server)
    nats_helpers.publish_raw(nats_server.url, [b"not json"])
    tick, results = tick_in_background(nats_server.url, instance)
    try:
        # Generous: the tick connects to Ray first (17 s seen on a loaded 2-core machine).
        wait_until(lambda: tick_has_read(nats_server.url), 120, "the tick's first read")
        [seq] = nats_helpers.publish_raw(nats_server.url, [nats_helpers.request_body("listen-a")])
        wait_until(lambda: "listen-a" in server.first_call_at, 60, "councils of the request published meanwhile")
    finally:
        tick.join(60)
    [result] = results
    assert [(r.run_key, r.tags["fleet/stream_seq"]) for r in result.run_requests] == [("listen-a", str(seq))]
    assert json.loads(result.cursor)["seq"] == seq
    assert instance.get_runs_count() == 0  # its councils run before its run exists


def test_nats_going_away_while_a_tick_listens_keeps_what_the_tick_took(
    nats_server, instance, ray_head, sim_llm_factory, deploy_llm
):
    deploy_llm(sim_llm_factory(latency_s=0.3))
    [seq] = nats_helpers.publish_raw(nats_server.url, [b"not json"])
    tick, results = tick_in_background(nats_server.url, instance)
    try:
        wait_until(lambda: tick_has_read(nats_server.url), 120, "the tick's first read")
    finally:
        nats_server.stop()  # while the tick listens
        tick.join(60)
    [result] = results
    assert isinstance(result, dg.SensorResult), result  # not a skipped tick: the cursor moves past what it took
    assert json.loads(result.cursor)["seq"] == seq and not result.run_requests


def test_a_request_published_again_within_a_tick_is_a_duplicate_of_the_round_that_took_it(nats_server, instance):
    """The ids a tick's earlier rounds accepted have no run until the tick returns: a later round asks the tick."""
    nats_url = nats_server.url
    seqs = nats_helpers.publish_raw(
        nats_url,
        [nats_helpers.request_body("again"), nats_helpers.request_body("again"), nats_helpers.request_body("other")],
    )

    async def two_rounds() -> Triage:
        settings = NatsSettings(url=nats_url)
        async with jetstream(settings) as js:
            info = await ensure_stream(js, settings)
            budget = TickBudget.start(30)
            lookup = prior_uses(instance, DeliberationArchive.from_env(), None)
            served = ServedModels(LLMResource(), logging.getLogger(__name__), budget)
            rounds = TickRounds(js, settings, info, lookup, served, budget, None)
            first = await rounds.read(0, 1)
            await rounds.take(first, waiting_too=False)
            await rounds.take(await rounds.read(first[-1][0], 10), waiting_too=False)
            return rounds.outcome

    outcome = asyncio.run(two_rounds())
    assert [(seq, request.deliberation_id) for seq, request in outcome.accepted] == [
        (seqs[0], "again"),
        (seqs[2], "other"),
    ]
    assert [(d.stream_seq, d.original_stream_seq) for d in outcome.duplicates] == [(seqs[1], seqs[0])]
    assert [e["stream_seq"] for e in nats_helpers.stored_events(nats_url, "deliberation.duplicate")] == [seqs[1]]
