"""Thin async helpers over nats-py JetStream: connect, the FLEET stream, publish, read by sequence."""

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import nats
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig, StreamInfo
from nats.js.errors import BadRequestError, NotFoundError
from pydantic import BaseModel

from fleet_dagster.nats_bridge.settings import MAX_REQUEST_BYTES, NatsSettings
from fleet_dagster.nats_bridge.subjects import Subject

DUPLICATE_WINDOW_S = 600.0
PUBLISH_TIMEOUT_S = 5.0


@asynccontextmanager
async def jetstream(settings: NatsSettings) -> AsyncIterator[JetStreamContext]:
    client = await nats.connect(**settings.connect_options())
    try:
        yield client.jetstream()
    finally:
        await client.close()


async def ensure_stream(js: JetStreamContext, settings: NatsSettings) -> StreamInfo:
    """The stream, created with the configured retention when missing. An existing stream is never
    changed: its limits are the operator's."""
    try:
        return await js.stream_info(settings.stream)
    except NotFoundError:
        pass
    try:
        return await js.add_stream(
            StreamConfig(
                name=settings.stream,
                subjects=settings.stream_subjects,
                storage=StorageType.FILE,
                allow_direct=True,
                max_msg_size=MAX_REQUEST_BYTES + 4096,
                duplicate_window=DUPLICATE_WINDOW_S,
                max_age=settings.max_age_s,
                max_bytes=settings.max_bytes,
            )
        )
    except BadRequestError:  # created meanwhile by another process, perhaps with other limits: keep those
        return await js.stream_info(settings.stream)


async def publish_event(
    js: JetStreamContext,
    settings: NatsSettings,
    name: str,
    event: BaseModel,
    msg_id: str,
    timeout_s: float = PUBLISH_TIMEOUT_S,
) -> None:
    """`Nats-Msg-Id` makes a retried publish (or a re-evaluated sensor tick) a no-op for the stream."""
    await js.publish(
        settings.subject(name), event.model_dump_json().encode(), headers={"Nats-Msg-Id": msg_id}, timeout=timeout_s
    )


async def read_requests(
    js: JetStreamContext, settings: NatsSettings, stream: StreamInfo, after_seq: int, batch: int, budget_s: float
) -> list[tuple[int, bytes]]:
    """(stream sequence, body) of the requests stored after `after_seq`, oldest first, skipping the stream's
    other subjects; at least one, whatever the budget, so that every tick makes progress. Direct get (any
    replica answers) where the stream allows it: an operator's stream may not, and there nobody answers one."""
    direct = bool(stream.config.allow_direct)
    messages: list[tuple[int, bytes]] = []
    next_seq = after_seq + 1
    deadline = time.monotonic() + budget_s
    while len(messages) < batch and (not messages or time.monotonic() < deadline):
        try:
            message = await js.get_msg(
                settings.stream, seq=next_seq, subject=settings.subject(Subject.REQUESTED), next=True, direct=direct
            )
        except NotFoundError:
            break
        if message.seq is None:  # a stored message always has its sequence; nats-py types it optional
            break
        messages.append((message.seq, message.data or b""))
        next_seq = message.seq + 1
    return messages
