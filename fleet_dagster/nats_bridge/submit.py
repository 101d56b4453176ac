"""Publishing a request, and waiting for what became of it."""

import json
import time
import uuid
from typing import Any

from nats.js.api import ConsumerConfig, DeliverPolicy

from fleet_dagster.core.request import DeliberationRequest
from fleet_dagster.nats_bridge.jetstream import REQUEST_SUBJECT, ensure_stream, jetstream
from fleet_dagster.nats_bridge.settings import NatsSettings

OUTCOME_SUBJECTS = ("deliberation.completed", "deliberation.failed", "deliberation.rejected")


async def submit_request(
    settings: NatsSettings, request: DeliberationRequest, wait_s: float | None = None
) -> tuple[int, dict[str, Any] | None]:
    """Publishes the request; with `wait_s`, also returns (subject, event) of its outcome, or None."""
    async with jetstream(settings) as js:
        await ensure_stream(js, settings)
        # A fresh Nats-Msg-Id per submission: a retried publish is deduplicated, a resubmission is not
        # (the sensor must see it to tell the requester that the id was already used).
        ack = await js.publish(
            settings.subject(REQUEST_SUBJECT),
            request.model_dump_json().encode(),
            headers={"Nats-Msg-Id": f"request-{uuid.uuid4().hex}"},
            timeout=5,
        )
        if wait_s is None:
            return ack.seq, None
        subscription = await js.subscribe(
            settings.subject("deliberation.>"),
            ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=ack.seq),
        )
        deadline = time.monotonic() + wait_s
        try:
            while True:
                message = await subscription.next_msg(timeout=max(0.001, deadline - time.monotonic()))
                name = message.subject.removeprefix(settings.subject_prefix)
                if name not in OUTCOME_SUBJECTS:
                    continue
                event = json.loads(message.data)
                if event.get("deliberation_id") == request.deliberation_id or event.get("stream_seq") == ack.seq:
                    return ack.seq, {"subject": name, "event": event}
        except TimeoutError:
            return ack.seq, None
        finally:
            await subscription.unsubscribe()
