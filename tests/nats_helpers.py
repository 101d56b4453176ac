"""Reading and writing the FLEET stream directly, as a plain nats-py client would."""

import asyncio
import json
import os
from collections import Counter
from unittest import mock

import dagster as dg
from nats.js.api import RawStreamMsg

from fleet_dagster.deliberation.arrival_listener import ArrivalListener
from fleet_dagster.deliberation.intake_settings import IntakeSettings
from fleet_dagster.deliberation.tick_budget import DEFAULT_TICK_BUDGET_S
from fleet_dagster.nats_bridge.jetstream import ensure_stream, jetstream
from fleet_dagster.nats_bridge.resources import NatsResource
from fleet_dagster.nats_bridge.settings import NatsSettings


def request_body(deliberation_id: str) -> bytes:
    """A small valid request: one role, two agents, one round."""
    fields = {"task": "Design a cache", "roles": ["DEV"], "agents_per_role": 2, "rounds": 1}
    return json.dumps({**fields, "deliberation_id": deliberation_id}).encode()


def publish_raw(url: str, payloads: list[bytes], subject: str = "deliberation.requested") -> list[int]:
    """Publishes each payload as it is (malformed ones too); returns their stream sequences."""

    async def send() -> list[int]:
        settings = NatsSettings(url=url)
        async with jetstream(settings) as js:
            await ensure_stream(js, settings)
            return [(await js.publish(subject, payload)).seq for payload in payloads]

    return asyncio.run(send())


def stored_messages(url: str) -> list[RawStreamMsg]:
    """Every message the stream holds, oldest first, with the time the server stored it."""

    async def read() -> list[RawStreamMsg]:
        settings = NatsSettings(url=url)
        async with jetstream(settings) as js:
            info = await js.stream_info(settings.stream)
            if not info.state.messages:
                return []
            sequences = range(info.state.first_seq, info.state.last_seq + 1)
            return [await js.get_msg(settings.stream, seq=seq) for seq in sequences]

    return asyncio.run(read())


def stored_events(url: str, subject: str) -> list[dict]:
    """Every message the stream holds on `subject`, oldest first."""
    return [json.loads(message.data) for message in stored_messages(url) if message.subject == subject]


def evaluate_sensor(sensor: dg.SensorDefinition, instance: dg.DagsterInstance, cursor: str | None = None):
    """One tick of `sensor` as the daemon evaluates it (NATS: the deployment's): its SensorExecutionData."""
    from fleet_dagster.definitions import defs

    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"nats": NatsResource()}, repository_def=defs.get_repository_def()
    ) as context:
        return sensor.evaluate_tick(context)


def evaluate_request_sensor(
    nats_url: str,
    instance: dg.DagsterInstance,
    cursor: str | None,
    start_on_arrival: bool = False,
    tick_budget_s: float = DEFAULT_TICK_BUDGET_S,
    listen_s: float = 0.0,
    batch: int = 100,
    listener: ArrivalListener | None = None,
):
    """One tick of the request sensor, with the deployment's NATS at nats_url, on the session's local Ray head
    (the caller's test uses the `ray_head` fixture). Councils start on arrival, the tick listens for new requests,
    and `listener` listens after it, only when asked: most tests look at what the sensor decides about what is
    stored."""
    from fleet_dagster.deliberation.sensors import request_sensor
    from fleet_dagster.llm.resources import LLMResource
    from fleet_dagster.nats_bridge.settings import NATS_ENV
    from fleet_dagster.ray_cluster.resources import RayClusterResource

    intake = IntakeSettings(
        start_on_arrival=start_on_arrival,
        tick_budget_s=tick_budget_s,
        listen_s=listen_s,
        batch=batch,
        listen_between_ticks=listener is not None,
    )
    sensor = request_sensor(intake, listener)
    resources = {"nats": NatsResource(), "llm": LLMResource(), "ray_cluster": RayClusterResource()}
    with (
        dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context,
        mock.patch.dict(os.environ, {NATS_ENV["url"]: nats_url}),
    ):
        return sensor(context)


def execute_run_request(
    instance: dg.DagsterInstance, run_request: dg.RunRequest, run_config: dict | None = None
) -> dg.ExecuteInProcessResult:
    """What the daemon does with the sensor's run request, in this process: the partition, then the run."""
    from fleet_dagster.definitions import defs

    instance.add_dynamic_partitions("deliberations", [run_request.partition_key])
    return defs.resolve_job_def("deliberation_job").execute_in_process(
        run_config=run_config or run_request.run_config,
        instance=instance,
        partition_key=run_request.partition_key,
        tags=run_request.tags,
    )


def stored_msg_ids(url: str) -> Counter:
    """(subject, Nats-Msg-Id) of every message the stream holds, counted: a consumer's view of what arrived."""
    return Counter((m.subject, (m.headers or {}).get("Nats-Msg-Id")) for m in stored_messages(url))
