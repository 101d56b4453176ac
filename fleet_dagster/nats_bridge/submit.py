"""Publishing a request, and waiting for what became of it."""

import json
import time
import uuid
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy

from fleet_dagster.core.request import DeliberationRequest
from fleet_dagster.nats_bridge.jetstream import ensure_stream, jetstream
from fleet_dagster.nats_bridge.settings import NatsSettings
from fleet_dagster.nats_bridge.subjects import DELIBERATION_SUBJECTS, FINAL_SUBJECTS, Subject


async def submit_request(
    settings: NatsSettings, request: DeliberationRequest, wait_s: float | None = None
) -> tuple[int, dict[str, Any] | None]:
    """Publishes the request; with `wait_s`, also returns (subject, event) of its outcome, or None."""
    async with jetstream(settings) as js:
        await ensure_stream(js, settings)
        # A fresh Nats-Msg-Id per submission: a retried publish is deduplicated, a resubmission is not
        # (the sensor must see it to tell the requester that the id was already used).
        ack = await js.publish(
            settings.subject(Subject.REQUESTED),
            request.model_dump_json().encode(),
            headers={"Nats-Msg-Id": f"request-{uuid.uuid4().hex}"},
            timeout=5,
        )
        if wait_s is None:
            return ack.seq, None
        return ack.seq, await _wait_for_outcome(js, settings, ack.seq, time.monotonic() + wait_s)


async def _wait_for_outcome(
    js: JetStreamContext, settings: NatsSettings, seq: int, deadline: float
) -> dict[str, Any] | None:
    """The outcome of the run that the request at `seq` started or joined: its rejection, or the final event
    of that run (found through the deliberation.accepted that names the run). Events about other requests
    with the same deliberation id (a conflicting request's rejection, an earlier run) are not this outcome."""
    run_id: str | None = None
    accepted_seq, read_from = seq, seq
    while True:
        subscription = await js.subscribe(
            settings.subject(DELIBERATION_SUBJECTS),
            ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=read_from),
        )
        try:
            while True:
                message = await subscription.next_msg(timeout=max(0.001, deadline - time.monotonic()))
                name, event = message.subject.removeprefix(settings.subject_prefix), json.loads(message.data)
                if run_id is not None:
                    if name in FINAL_SUBJECTS and event.get("run_id") == run_id:
                        return {"subject": name, "event": event}
                elif name == Subject.REJECTED and event.get("stream_seq") == seq:
                    return {"subject": name, "event": event}
                elif name == Subject.ACCEPTED and event.get("stream_seq") == accepted_seq:
                    run_id = event["run_id"]
                elif name == Subject.DUPLICATE and event.get("stream_seq") == seq:
                    # Joined an earlier request's run, whose events may precede ours: read again from there.
                    run_id, accepted_seq = event.get("run_id"), event["original_stream_seq"]
                    read_from = accepted_seq
                    break
        except TimeoutError:
            return None
        finally:
            await subscription.unsubscribe()
