"""How long one request-sensor tick takes for a burst of requests: read from JetStream, triage, preflight against
the model server, admission, and councils started on arrival. It is what a burst waits on top of the sensor's
interval before its councils run (`bench/nats_drain.py` measures that whole path, with its variance).

    python bench/intake_tick.py [--requests 60] [--ticks 5]

Real parts: a local Ray head, nats-server, the simulated model server, a Dagster instance in a temporary
DAGSTER_HOME; each tick is evaluated in this process as the daemon's code server evaluates it.
"""

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path


def publish(url: str, payloads: list[bytes]) -> None:
    from fleet_dagster.nats_bridge.jetstream import ensure_stream, jetstream
    from fleet_dagster.nats_bridge.settings import NatsSettings

    async def send() -> None:
        settings = NatsSettings(url=url)
        async with jetstream(settings) as js:
            await ensure_stream(js, settings)
            for payload in payloads:
                await js.publish("deliberation.requested", payload)

    asyncio.run(send())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=60, help="requests published before each tick")
    parser.add_argument("--ticks", type=int, default=5)
    args = parser.parse_args()

    os.environ.setdefault("FLEET_HOME", tempfile.mkdtemp(prefix="fleet-tick-"))
    os.environ["DAGSTER_HOME"] = str(Path(os.environ["FLEET_HOME"]) / "dagster_home")
    from fleet_dagster.settings import ensure_dagster_home

    ensure_dagster_home()
    import dagster as dg

    from fleet_dagster.deliberation.intake_settings import IntakeSettings
    from fleet_dagster.deliberation.sensors import request_sensor
    from fleet_dagster.llm.resources import LLMResource
    from fleet_dagster.llm.settings import LLM_ENV
    from fleet_dagster.nats_bridge.local_server import LocalNatsServer
    from fleet_dagster.nats_bridge.resources import NatsResource
    from fleet_dagster.nats_bridge.settings import NATS_ENV
    from fleet_dagster.ray_cluster.local_head import ensure_local_head, stop_local_head
    from fleet_dagster.ray_cluster.resources import RayClusterResource
    from fleet_dagster.sim_llm.server import SimLLMServer, SimSettings

    home = Path(os.environ["FLEET_HOME"])
    ensure_local_head(home / "ray")
    sensor = request_sensor(IntakeSettings(start_on_arrival=True, listen_s=0))  # the tick, not the listening
    resources = {"nats": NatsResource(), "llm": LLMResource(), "ray_cluster": RayClusterResource()}
    tick_s: list[float] = []
    try:
        # Calls answer at once: each tick's councils are done before the next, which finds the fleet idle.
        with LocalNatsServer(home / "jetstream") as nats, SimLLMServer(SimSettings(latency_s=0.05)) as server:
            os.environ[NATS_ENV["url"]], os.environ[LLM_ENV["base_url"]] = nats.url, server.base_url
            cursor = None
            with dg.DagsterInstance.get() as instance:
                for tick in range(-1, args.ticks):  # tick -1 warms up: imports, the Ray connection, the runners
                    count = 1 if tick < 0 else args.requests
                    publish(nats.url, [_request(f"tick{tick}-{i}") for i in range(count)])
                    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
                        started = time.perf_counter()
                        result = sensor(context)
                        elapsed = time.perf_counter() - started
                    assert len(result.run_requests) == count, result
                    cursor = result.cursor
                    if tick >= 0:
                        tick_s.append(elapsed)
                    time.sleep(3)  # the councils finish; their deliberations leave admission
    finally:
        import ray

        ray.shutdown()
        stop_local_head(home / "ray")
    print(f"requests a tick {args.requests}, ticks {args.ticks}, councils started on arrival")
    print(
        f"tick                  median {statistics.median(tick_s):6.3f} s   ({', '.join(f'{s:.3f}' for s in tick_s)})"
    )
    print(f"per request           median {statistics.median(tick_s) / args.requests * 1000:6.1f} ms")


def _request(deliberation_id: str) -> bytes:
    return json.dumps(
        {
            "task": "Design a cache",
            "roles": ["DEV"],
            "agents_per_role": 2,
            "rounds": 0,
            "deliberation_id": deliberation_id,
        }
    ).encode()


if __name__ == "__main__":
    main()
