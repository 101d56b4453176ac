"""The response store of a cluster: a JetStream key-value bucket (FLEET_RESPONSE_STORE=nats).

Why NATS: every Ray node, run pod and the code location reaches it already (same token, same network
policy), JetStream persists it across restarts, and a bucket bounds itself: entries expire after the TTL
(`max_age`) and the bucket never grows past `max_bytes` (a full bucket refuses new answers, which are
then only not replayable, until old ones expire). A SQLite file would be one per pod; a database or
object store would be one more service to run and secure for a cache.

A store never fails a call: whatever goes wrong with NATS is logged and the answer goes unstored.
"""

import logging
import time

import nats
from nats.aio.client import Client
from nats.js.errors import BucketNotFoundError, KeyNotFoundError
from nats.js.kv import KeyValue

from fleet_dagster.core.records import ChatResult
from fleet_dagster.nats_bridge.settings import NatsSettings

BUCKET = "fleet-responses"
MAX_VALUE_BYTES = 1 << 20  # a server's default max payload
RECONNECT_AFTER_S = 30.0
log = logging.getLogger(__name__)


class NatsResponseStore:
    def __init__(self, settings: NatsSettings, ttl_s: float, max_bytes: int, bucket: str = BUCKET) -> None:
        self._settings = settings
        self.ttl_s = ttl_s
        self._max_bytes = max_bytes
        self._bucket_name = f"{settings.subject_prefix.replace('.', '-')}{bucket}"
        self._client: Client | None = None
        self._kv: KeyValue | None = None
        self._unreachable_until = 0.0

    async def _open(self) -> KeyValue:
        """One connection for the store's life: a failed get or put (a full bucket) keeps it; only a closed one
        (its reconnect gave up) is replaced, so a long-lived actor never piles up connections."""
        client = self._client
        if client is not None and client.is_connected:
            if self._kv is None:
                self._kv = await self._bucket(client)
            return self._kv
        if client is not None and not client.is_closed:  # reconnecting: a miss now, not a call held up meanwhile
            raise ConnectionError("the connection to NATS dropped and is reconnecting")
        if time.monotonic() < self._unreachable_until:
            raise ConnectionError(f"NATS was unreachable less than {RECONNECT_AFTER_S:.0f} s ago")
        self._client, self._kv = None, None
        # Unlike the bridge's short connections, this one lives with its actor: it reconnects after a drop.
        try:
            self._client = await nats.connect(**{**self._settings.connect_options(), "allow_reconnect": True})
        except Exception:
            self._unreachable_until = time.monotonic() + RECONNECT_AFTER_S  # calls go on without the store meanwhile
            raise
        self._kv = await self._bucket(self._client)
        return self._kv

    async def _bucket(self, client: Client) -> KeyValue:
        # A store answer is worth less than the call waiting on it: bounded like a connection attempt.
        js = client.jetstream(timeout=self._settings.connect_timeout_s)
        try:
            return await js.key_value(self._bucket_name)
        except BucketNotFoundError:
            return await js.create_key_value(
                bucket=self._bucket_name,
                description="fleet-dagster: model answers by request key, and deliberations to replay",
                ttl=self.ttl_s,
                max_bytes=self._max_bytes,
                max_value_size=MAX_VALUE_BYTES,
                history=1,
            )

    async def _get(self, key: str) -> bytes | None:
        try:
            entry = await (await self._open()).get(key)
        except KeyNotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001 - the store is a cache: a miss, not a failed call
            log.warning(f"response store {self._bucket_name} at {self._settings.display_url}: get failed: {exc!r}")
            self._kv = None  # looked up again on the same connection (the bucket may have been deleted)
            return None
        return entry.value

    async def _put(self, key: str, value: str) -> None:
        try:
            await (await self._open()).put(key, value.encode())
        except Exception as exc:  # noqa: BLE001 - the store is a cache: the answer only goes unstored
            log.warning(f"response store {self._bucket_name} at {self._settings.display_url}: put failed: {exc!r}")
            self._kv = None  # looked up again on the same connection

    async def get(self, key: str) -> ChatResult | None:
        value = await self._get(f"answer.{key}")
        return ChatResult.model_validate_json(value) if value else None

    async def put(self, key: str, result: ChatResult) -> None:
        if (document := result.stored_form()) is not None:
            await self._put(f"answer.{key}", document)

    async def put_deliberation(self, deliberation_id: str, document: str) -> None:
        await self._put(f"deliberation.{deliberation_id}", document)

    async def deliberation(self, deliberation_id: str) -> str | None:
        value = await self._get(f"deliberation.{deliberation_id}")
        return value.decode() if value else None

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
        self._client, self._kv = None, None
