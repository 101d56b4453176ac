"""NATS → sensor → runs, with the real Dagster daemon: request → councils running, run started, final event.

Starts (and stops, by PID) a JetStream nats-server, the simulated LLM server and `dagster-daemon run`
on a fresh DAGSTER_HOME, publishes N requests at once, and waits until every one has its final event.
`--no-start-on-arrival` makes councils wait for their runs (FLEET_NATS_START_ON_ARRIVAL=false), as before.

    python bench/nats_drain.py [--requests 200] [--interval 2] [--max-concurrent-runs 4] [--no-start-on-arrival]
"""

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--interval", type=int, default=2, help="sensor minimum interval, seconds")
    parser.add_argument("--max-concurrent-runs", type=int, default=4)
    parser.add_argument("--latency", type=float, default=0.2, help="simulated seconds per agent call")
    parser.add_argument("--agents", type=int, default=1, help="agents per request (one role)")
    parser.add_argument("--rounds", type=int, default=0, help="review rounds per request")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--start-on-arrival", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="fleet-nats-bench-"))
    dagster_home = home / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\n"
        "run_coordinator:\n  module: dagster.core.run_coordinator\n  class: QueuedRunCoordinator\n"
        f"  config:\n    max_concurrent_runs: {args.max_concurrent_runs}\n"
    )
    os.environ.update(FLEET_HOME=str(home), DAGSTER_HOME=str(dagster_home))

    import dagster as dg
    import nats

    from fleet_dagster.nats_bridge.jetstream import ensure_stream, jetstream
    from fleet_dagster.nats_bridge.local_server import LocalNatsServer
    from fleet_dagster.nats_bridge.settings import NatsSettings
    from fleet_dagster.ray_cluster.local_head import ensure_local_head, stop_local_head
    from fleet_dagster.sim_llm.server import SimLLMServer, SimSettings

    ensure_local_head(home / "ray")
    daemon = None
    with LocalNatsServer(home / "nats") as nats_server, SimLLMServer(SimSettings(latency_s=args.latency)) as sim:
        env = {
            **os.environ,
            "NATS_URL": nats_server.url,
            "FLEET_LLM_URL": sim.base_url,
            "FLEET_NATS_SENSOR_STATUS": "RUNNING",
            "FLEET_NATS_SENSOR_INTERVAL": str(args.interval),
            "FLEET_NATS_START_ON_ARRIVAL": str(args.start_on_arrival).lower(),
        }
        with open(home / "daemon.log", "w") as log:
            daemon = subprocess.Popen(
                [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", str(ROOT / "workspace.yaml")],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            settings = NatsSettings(url=nats_server.url)
            ids = [f"bench-{i:04d}" for i in range(args.requests)]
            published: dict[str, float] = {}

            async def publish() -> None:
                async with jetstream(settings) as js:
                    await ensure_stream(js, settings)
                    for deliberation_id in ids:
                        body = {
                            "task": "Design a cache",
                            "roles": ["DEV"],
                            "agents_per_role": args.agents,
                            "rounds": args.rounds,
                            "deliberation_id": deliberation_id,
                        }
                        await js.publish("deliberation.requested", json.dumps(body).encode())
                        published[deliberation_id] = time.time()

            finals: dict[str, float] = {}

            async def listen() -> None:
                """Every final event, when it arrives: what a producer waiting for its answer sees."""
                client = await nats.connect(nats_server.url)
                subscription = await client.subscribe("deliberation.*")
                until = time.time() + args.timeout
                while len(finals) < len(ids) and time.time() < until:
                    try:
                        message = await subscription.next_msg(timeout=1)
                    except TimeoutError:
                        continue
                    if message.subject in ("deliberation.completed", "deliberation.failed"):
                        finals.setdefault(json.loads(message.data)["deliberation_id"], time.time())
                await client.close()

            listener = threading.Thread(target=lambda: asyncio.run(listen()), daemon=True)
            listener.start()
            time.sleep(3)  # let the daemon come up before the clock starts
            asyncio.run(publish())
            first_publish = min(published.values())
            instance = dg.DagsterInstance.get()
            created: dict[str, float] = {}
            started: dict[str, float] = {}
            finished = 0
            deadline = time.time() + args.timeout
            while len(finals) < len(ids) and time.time() < deadline:
                time.sleep(2)
                finished = 0
                for record in instance.get_run_records(filters=dg.RunsFilter(job_name="deliberation_job")):
                    deliberation_id = record.dagster_run.tags.get("fleet/deliberation_id")
                    if deliberation_id in published:
                        created[deliberation_id] = record.create_timestamp.timestamp()
                    if record.start_time and deliberation_id in published:
                        started[deliberation_id] = record.start_time
                    finished += record.dagster_run.is_finished
                print(
                    f"  {len(started)}/{len(ids)} runs started, {finished} finished, {len(finals)} final events",
                    flush=True,
                )
            listener.join(timeout=5)
            councils = sorted(sim.first_call_at[i] - published[i] for i in ids if i in sim.first_call_at)
            final_latencies = sorted(finals[i] - published[i] for i in finals)
            latencies = sorted(started[i] - published[i] for i in started)
            queued = sorted(created[i] - published[i] for i in created)
            span = max(started.values()) - first_publish
            drain_span = max(created.values()) - first_publish
            runs = len(instance.get_run_records(filters=dg.RunsFilter(job_name="deliberation_job")))
        finally:
            if daemon is not None:
                os.killpg(daemon.pid, signal.SIGTERM)
                try:
                    daemon.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(daemon.pid, signal.SIGKILL)
            stop_local_head(home / "ray")

    def p95(values: list[float]) -> float:
        return values[int(0.95 * (len(values) - 1))]

    print(f"requests published          {len(ids)}   (councils start on arrival: {args.start_on_arrival})")
    print(f"runs created                {runs}   (exactly one per request expected)")
    print(f"runs started                {len(started)}")
    print(f"request -> run queued p50   {statistics.median(queued):7.2f} s")
    print(f"request -> run queued p95   {p95(queued):7.2f} s")
    print(f"requests drained per minute {len(created) / drain_span * 60:7.1f}   (into queued runs)")
    print(f"request -> run started p50  {statistics.median(latencies):7.2f} s")
    print(f"request -> run started p95  {p95(latencies):7.2f} s")
    print(f"runs started per minute     {len(started) / span * 60:7.1f}   (launch-bound: a process per run)")
    print(f"request -> councils p50     {statistics.median(councils):7.2f} s   (its first call at the model)")
    print(f"request -> councils p95     {p95(councils):7.2f} s")
    print(f"request -> final event p50  {statistics.median(final_latencies):7.2f} s   ({len(finals)} final events)")
    print(f"request -> final event p95  {p95(final_latencies):7.2f} s")
    print(f"daemon log                  {home / 'daemon.log'}")


if __name__ == "__main__":
    main()
