"""Reading and writing the FLEET stream directly, as a plain nats-py client would."""

import asyncio
import json

from fleet_dagster.nats_bridge.jetstream import ensure_stream, jetstream
from fleet_dagster.nats_bridge.settings import NatsSettings


def publish_raw(url: str, payloads: list[bytes], subject: str = "deliberation.requested") -> list[int]:
    """Publishes each payload as it is (malformed ones too); returns their stream sequences."""

    async def send() -> list[int]:
        settings = NatsSettings(url=url)
        async with jetstream(settings) as js:
            await ensure_stream(js, settings)
            return [(await js.publish(subject, payload)).seq for payload in payloads]

    return asyncio.run(send())


def stored_events(url: str, subject: str) -> list[dict]:
    """Every message the stream holds on `subject`, oldest first."""

    async def read() -> list[dict]:
        settings = NatsSettings(url=url)
        async with jetstream(settings) as js:
            info = await js.stream_info(settings.stream)
            found = []
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                message = await js.get_msg(settings.stream, seq=seq)
                if message.subject == subject:
                    found.append(json.loads(message.data))
            return found

    return asyncio.run(read())
