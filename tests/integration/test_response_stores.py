"""The deployment's response store as the environment names it: off, a SQLite file, or a NATS bucket."""

import asyncio
import json
import time
import urllib.request
from pathlib import Path

import nats
import pytest

from fleet_dagster.core.records import ChatResult
from fleet_dagster.llm.response_store import RESPONSE_STORE_ENV, SqliteResponseStore
from fleet_dagster.local_ports import free_port
from fleet_dagster.nats_bridge.local_server import LocalNatsServer
from fleet_dagster.nats_bridge.response_bucket import BUCKET, NatsResponseStore
from fleet_dagster.nats_bridge.settings import NATS_ENV, NatsSettings
from fleet_dagster.ray_cluster.response_stores import response_store_from_env

pytestmark = pytest.mark.integration

TOKEN = "s3cret-nats-token"


def test_the_environment_chooses_the_store(fleet_home: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(RESPONSE_STORE_ENV["path"], raising=False)
    default = response_store_from_env()
    assert isinstance(default, SqliteResponseStore) and default.path == fleet_home / "responses.sqlite"
    monkeypatch.setenv(RESPONSE_STORE_ENV["path"], "off")
    assert response_store_from_env() is None
    monkeypatch.setenv(RESPONSE_STORE_ENV["path"], "nats")
    monkeypatch.delenv(NATS_ENV["url"], raising=False)
    with pytest.raises(ValueError, match="FLEET_RESPONSE_STORE=nats needs NATS_URL"):
        response_store_from_env()


def test_a_nats_bucket_keeps_answers_for_every_process_bounded_by_age_and_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    with LocalNatsServer(tmp_path / "jetstream", options=("--auth", TOKEN)) as server:
        monkeypatch.setenv(NATS_ENV["url"], server.url)
        monkeypatch.setenv(NATS_ENV["token"], TOKEN)
        monkeypatch.setenv(RESPONSE_STORE_ENV["path"], "nats")
        monkeypatch.setenv(RESPONSE_STORE_ENV["ttl_s"], "3600")
        monkeypatch.setenv(RESPONSE_STORE_ENV["max_bytes"], str(64 << 20))

        async def scenario() -> tuple:
            writer, reader = response_store_from_env(), response_store_from_env()  # two callers, two connections
            assert isinstance(writer, NatsResponseStore) and isinstance(reader, NatsResponseStore)
            await writer.put("k1", ChatResult(content="use an LRU", completion_tokens=3, model="m", latency_ms=7))
            await writer.put("k2", ChatResult(error="HTTP 500"))
            await writer.put_deliberation("d1", '{"request": {}}')
            found = (await reader.get("k1"), await reader.get("k2"), await reader.deliberation("d1"))
            client = await nats.connect(server.url, token=TOKEN)
            status = await (await client.jetstream().key_value(BUCKET)).status()
            await client.close()
            await writer.close()
            await reader.close()
            return found, status

        (answer, failure, document), status = asyncio.run(scenario())
    assert answer == ChatResult(content="use an LRU", completion_tokens=3, model="m")
    assert failure is None and document == '{"request": {}}'
    assert status.ttl == 3600 and status.stream_info.config.max_bytes == 64 << 20


def test_a_nats_store_that_cannot_reach_nats_misses_instead_of_failing(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(NATS_ENV["url"], "nats://127.0.0.1:1")
    monkeypatch.setenv(RESPONSE_STORE_ENV["path"], "nats")
    store = response_store_from_env()
    assert store is not None

    async def scenario() -> tuple[ChatResult | None, float]:
        await store.put("k", ChatResult(content="x"))
        started = time.perf_counter()
        missed = await store.get("k")  # no new attempt right after a failed one
        return missed, time.perf_counter() - started

    missed, second_s = asyncio.run(scenario())
    assert missed is None and second_s < 0.05


def server_connections(monitor_port: int) -> int:
    """How many clients the server holds (its monitoring endpoint)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{monitor_port}/connz", timeout=5) as response:
        return json.load(response)["num_connections"]


def test_a_full_bucket_refuses_answers_without_leaking_connections(tmp_path: Path):
    """Every put into a full bucket fails: the store keeps one connection, not one more per failed put."""
    monitor_port = free_port()
    with LocalNatsServer(tmp_path / "jetstream", options=("-m", str(monitor_port))) as server:
        store = NatsResponseStore(NatsSettings(url=server.url), ttl_s=3600, max_bytes=4096)

        async def scenario() -> tuple[int, ChatResult | None]:
            try:
                for index in range(20):  # the first fills the bucket, every other one is refused
                    await store.put(f"k{index}", ChatResult(content="x" * 3000))
                counted = server_connections(monitor_port)
                return counted, await store.get("k19")
            finally:
                await store.close()

        connections, refused = asyncio.run(scenario())
    assert refused is None  # refused by the full bucket: only not replayable
    assert connections == 1
