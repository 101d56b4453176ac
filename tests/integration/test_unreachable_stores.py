"""A response store that cannot be opened, is locked or goes away never fails a call: the answer is returned,
only not stored (logged), and the store works again once it can."""

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet_dagster.core.records import ChatResult
from fleet_dagster.llm.endpoint import LLMEndpoint
from fleet_dagster.llm.response_store import (
    REOPEN_AFTER_S,
    RESPONSE_STORE_ENV,
    ResponseStore,
    SqliteResponseStore,
)
from fleet_dagster.nats_bridge.local_server import LocalNatsServer
from fleet_dagster.nats_bridge.response_bucket import NatsResponseStore
from fleet_dagster.nats_bridge.settings import NatsSettings
from fleet_dagster.ray_cluster.response_stores import response_store_from_env
from tests.clock import Clock
from tests.integration.test_endpoint_guards import chat_request, guarded

pytestmark = pytest.mark.integration


def answer(store: ResponseStore | None, base_url: str, index: int) -> ChatResult:
    """One agent call through a new caller (as a restarted actor makes it) with `store`."""
    return asyncio.run(guarded(store).complete(LLMEndpoint(base_url=base_url), chat_request("stores", index)))


@pytest.fixture
def exclusive_lock(tmp_path: Path) -> Iterator[Path]:
    """A store file that another real connection holds under an exclusive lock until the test ends."""
    path = tmp_path / "responses.sqlite"
    made = SqliteResponseStore(path, ttl_s=3600, max_entries=100)  # made as a store makes it, then locked
    asyncio.run(made.put("made", ChatResult(content="x")))
    made.close()
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("PRAGMA locking_mode=EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        yield path
    finally:
        holder.close()


def test_a_locked_sqlite_store_returns_the_answer_unstored(sim_llm_factory, exclusive_lock: Path, caplog):
    server = sim_llm_factory(latency_s=0.01)
    store = SqliteResponseStore(exclusive_lock, ttl_s=3600, max_entries=100)
    result = answer(store, server.base_url, 1)
    assert result.ok and not result.replayed and len(server.answered) == 1
    assert "response store" in caplog.text and "database is locked" in caplog.text


@pytest.mark.parametrize("where", ["a directory", "under a file"])
def test_a_sqlite_store_that_cannot_open_returns_the_answer_and_opens_once_it_can(
    sim_llm_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str, caplog
):
    server = sim_llm_factory(latency_s=0.01)
    blocker = tmp_path / "blocker"
    if where == "a directory":  # where the file should be
        blocker.mkdir()
        path = blocker
    else:  # a file where its folder should be
        blocker.write_text("not a folder")
        path = blocker / "responses.sqlite"
    monkeypatch.setenv(RESPONSE_STORE_ENV["path"], str(path))
    assert isinstance(response_store_from_env(), SqliteResponseStore)  # what an agent caller does as it starts
    clock = Clock(now=time.time())
    store = SqliteResponseStore(path, ttl_s=3600, max_entries=100, clock=clock)
    first = answer(store, server.base_url, 2)
    assert first.ok and not first.replayed and len(server.answered) == 1
    assert f"response store {path}" in caplog.text
    blocker.rmdir() if blocker.is_dir() else blocker.unlink()
    clock.now += REOPEN_AFTER_S  # the store tries again
    again = answer(store, server.base_url, 2)
    assert again.ok and not again.replayed and len(server.answered) == 2  # the first answer was not stored
    replayed = answer(store, server.base_url, 2)
    assert replayed.replayed and replayed.content == again.content and len(server.answered) == 2


def test_a_nats_store_whose_server_stops_midway_returns_the_answer(sim_llm_factory, tmp_path: Path, caplog):
    server = sim_llm_factory(latency_s=0.01)
    nats_server = LocalNatsServer(tmp_path / "jetstream").start()
    store = NatsResponseStore(NatsSettings(url=nats_server.url), ttl_s=3600, max_bytes=1 << 20)
    calls = guarded(store)
    endpoint = LLMEndpoint(base_url=server.base_url)

    async def scenario() -> tuple[ChatResult, ChatResult, ChatResult]:
        try:
            stored = await calls.complete(endpoint, chat_request("stores", 3))
            replayed = await calls.complete(endpoint, chat_request("stores", 3))
            nats_server.stop()  # the store's connection drops with the server
            after = await guarded(store).complete(endpoint, chat_request("stores", 4))
            return stored, replayed, after
        finally:
            await store.close()

    try:
        stored, replayed, after = asyncio.run(scenario())
    finally:
        nats_server.stop()
    assert stored.ok and replayed.replayed and replayed.content == stored.content
    assert after.ok and not after.replayed and len(server.answered) == 2
    assert "response store" in caplog.text
