"""The intake drain's harness (its figures: benchmarks/drain.py): measures the whole fleet from outside.

Starts (and stops, by process group) a JetStream nats-server, the simulated model server (`capacity` sequences at
once, `latency_s` a call), a local Ray head and `dagster-daemon run` on a fresh DAGSTER_HOME in `home`; publishes a
warm-up request and waits for its councils (a deployment's sensor is running already), then publishes N at once (or
evenly over `spread_s`, to land at every phase of the daemon's loop) and waits for every final event, polling the
runs and `status` once a second.

    python -m fleet_dagster.cli.drain SHAPE_JSON FIGURES_FILE   (what the intake_drain asset runs, in its own process)
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import nats

from fleet_dagster.benchmarks.drain import DrainFigures, DrainShape, Quantiles
from fleet_dagster.deliberation.keys_and_tags import DELIBERATION_ASSET_KEY, DELIBERATION_ID_TAG
from fleet_dagster.deliberation.status_query import instance_status
from fleet_dagster.llm.endpoint import max_in_flight_for
from fleet_dagster.llm.settings import LLM_ENV
from fleet_dagster.nats_bridge.jetstream import ensure_stream, jetstream
from fleet_dagster.nats_bridge.local_server import LocalNatsServer
from fleet_dagster.nats_bridge.settings import NATS_ENV, NatsSettings
from fleet_dagster.nats_bridge.subjects import DELIBERATION_SUBJECTS, FINAL_SUBJECTS, Subject
from fleet_dagster.ray_cluster.local_head import ensure_local_head, stop_local_head
from fleet_dagster.sim_llm.server import SimLLMServer, SimSettings

IN_PROGRESS = {"STARTING", "STARTED", "CANCELING"}
TERMINAL = ("COMPLETED", "PARTIAL", "FAILED", "TIMEOUT")


def _write_home(home: Path, shape: DrainShape) -> Path:
    dagster_home = home / "dagster_home"
    dagster_home.mkdir(parents=True)
    (dagster_home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\n"
        "run_coordinator:\n  module: dagster.core.run_coordinator\n  class: QueuedRunCoordinator\n"
        f"  config:\n    max_concurrent_runs: {shape.max_concurrent_runs}\n"
        f"    dequeue_interval_seconds: {shape.dequeue_interval_s}\n"
    )
    module = "module_name: fleet_dagster.definitions\n      location_name: fleet_dagster"
    (home / "workspace.yaml").write_text(f"load_from:\n  - python_module:\n      {module}\n")
    return dagster_home


def _request(deliberation_id: str, shape: DrainShape) -> bytes:
    body = {"task": "Design a cache", "roles": ["DEV"], "agents_per_role": shape.agents, "rounds": shape.rounds}
    return json.dumps({**body, "deliberation_id": deliberation_id}).encode()


class _Finals:
    """Every final event, when it arrives: what a producer waiting for its answer sees."""

    def __init__(self, url: str, ids: list[str], timeout_s: float) -> None:
        self.at: dict[str, float] = {}
        self._ids = set(ids)
        self._thread = threading.Thread(target=lambda: asyncio.run(self._listen(url, timeout_s)), daemon=True)
        self._thread.start()

    async def _listen(self, url: str, timeout_s: float) -> None:
        client = await nats.connect(url)
        subscription = await client.subscribe(DELIBERATION_SUBJECTS)
        until = time.time() + timeout_s
        while len(self.at) < len(self._ids) and time.time() < until:
            try:
                message = await subscription.next_msg(timeout=1)
            except TimeoutError:
                continue
            deliberation_id = json.loads(message.data).get("deliberation_id")
            if message.subject in FINAL_SUBJECTS and deliberation_id in self._ids:
                self.at.setdefault(deliberation_id, time.time())
        await client.close()

    def join(self) -> None:
        self._thread.join(timeout=5)


def run_drain(shape: DrainShape, home: Path, on_progress: Callable[[str], None] = print) -> DrainFigures:
    dagster_home = _write_home(home, shape)
    ids = [f"drain-{i:04d}" for i in range(shape.requests)]
    published: dict[str, float] = {}
    ensure_local_head(home / "ray")
    daemon: subprocess.Popen | None = None
    sim_settings = SimSettings(latency_s=shape.latency_s, capacity=shape.capacity)
    try:
        with LocalNatsServer(home / "nats") as nats_server, SimLLMServer(sim_settings) as sim:
            env = {
                **os.environ,
                "FLEET_HOME": str(home),
                "DAGSTER_HOME": str(dagster_home),
                NATS_ENV["url"]: nats_server.url,
                LLM_ENV["base_url"]: sim.base_url,
                # What the chart sets for a server of this capacity; admission's bound is its default, the same.
                LLM_ENV["max_in_flight"]: str(max_in_flight_for(shape.capacity)),
                "FLEET_NATS_SENSOR_STATUS": "RUNNING",
                "FLEET_NATS_SENSOR_INTERVAL": str(shape.interval_s),
                "FLEET_NATS_START_ON_ARRIVAL": str(shape.start_on_arrival).lower(),
            }
            with open(home / "daemon.log", "w") as log:
                daemon = subprocess.Popen(
                    [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", str(home / "workspace.yaml")],
                    cwd=home,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            settings = NatsSettings(url=nats_server.url)

            async def publish(batch: list[str], spread_s: float = 0.0) -> None:
                async with jetstream(settings) as js:
                    await ensure_stream(js, settings)
                    began = time.monotonic()
                    for k, deliberation_id in enumerate(batch):
                        await asyncio.sleep(max(0.0, began + k * spread_s / len(batch) - time.monotonic()))
                        await js.publish(Subject.REQUESTED, _request(deliberation_id, shape))
                        published[deliberation_id] = time.time()

            asyncio.run(publish(["warm-up"]))
            until = time.time() + shape.timeout_s
            while "warm-up" not in sim.first_call_at and time.time() < until:
                time.sleep(0.5)
            on_progress(f"warm-up councils running {time.time() - published.pop('warm-up'):.1f} s after its request")
            finals = _Finals(nats_server.url, ids, shape.timeout_s)
            asyncio.run(publish(ids, shape.spread_s))
            first_publish = min(published.values())
            with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
                created: dict[str, float] = {}
                started: dict[str, float] = {}
                status_at_final: dict[str, str] = {}
                peak_in_progress = 0
                run_ids: dict[str, str] = {}
                while len(finals.at) < len(ids) and time.time() < until:
                    time.sleep(1)
                    finished = in_progress = 0
                    for record in instance.get_run_records(filters=dg.RunsFilter(job_name="deliberation_job")):
                        run = record.dagster_run
                        in_progress += run.status.value in IN_PROGRESS
                        finished += run.is_finished
                        if (deliberation_id := run.tags.get(DELIBERATION_ID_TAG)) in published:
                            created[deliberation_id] = record.create_timestamp.timestamp()
                            run_ids[deliberation_id] = run.run_id
                            if record.start_time:
                                started[deliberation_id] = record.start_time
                    peak_in_progress = max(peak_in_progress, in_progress)
                    for deliberation_id in [i for i in list(finals.at) if i not in status_at_final]:
                        # What `fleet-dagster status` says within a poll of the final event: it must agree.
                        status_at_final[deliberation_id] = instance_status(instance, deliberation_id)["status"]
                    on_progress(f"{len(started)}/{len(ids)} runs started, {finished} finished, {len(finals.at)} final")
                finals.join()
                materialized = {
                    record.partition_key: record.timestamp
                    for record in instance.fetch_materializations(
                        dg.AssetRecordsFilter(asset_key=DELIBERATION_ASSET_KEY), limit=10 * len(ids)
                    ).records
                    if record.partition_key
                }
                dequeued = {d: _dequeued_at(instance, run_id) for d, run_id in run_ids.items()}
            last_answer, first_call = dict(sim.last_answer_at), dict(sim.first_call_at)
            # From the drain's first call: the warm-up's calls before it are no part of the drain.
            drain_began = min((first_call[i] for i in ids if i in first_call), default=None)
            busy_share = sim.load.utilization(since=drain_began)
    finally:
        if daemon is not None:
            _stop(daemon)
        stop_local_head(home / "ray")
    final_at = finals.at
    ended = [i for i in final_at if i in last_answer and i in started and i in materialized]
    last_final = max(final_at.values(), default=first_publish)
    last_start = max(started.values(), default=first_publish)
    return DrainFigures(
        shape=shape,
        runs_created=len(created),
        final_events=len(final_at),
        request_to_councils_s=Quantiles.of([first_call[i] - published[i] for i in ids if i in first_call]),
        request_to_run_started_s=Quantiles.of([started[i] - published[i] for i in started]),
        request_to_final_s=Quantiles.of([final_at[i] - published[i] for i in final_at]),
        deliberations_per_minute=_per_minute(len(final_at), last_final - first_publish),
        runs_started_per_minute=_per_minute(len(started), last_start - first_publish),
        model_busy_share=round(busy_share, 3),
        model_done_after_s=round(max((last_answer.get(i, 0.0) for i in ids), default=0.0) - first_publish, 1),
        peak_runs_in_progress=peak_in_progress,
        status_final_at_event=sum(status in TERMINAL for status in status_at_final.values()),
        after_last_call_s=_after_last_call(ended, last_answer, dequeued, started, materialized, final_at),
    )


def _dequeued_at(instance: dg.DagsterInstance, run_id: str) -> float | None:
    """When Dagster's queue handed the run to its launcher (RUN_STARTING)."""
    entries = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_STARTING)
    return entries[0].timestamp if entries else None


def _after_last_call(
    ended: list[str],
    last_answer: dict[str, float],
    dequeued: dict[str, float | None],
    started: dict[str, float],
    materialized: dict[str, float],
    final_at: dict[str, float],
) -> dict[str, Quantiles]:
    """Where each deliberation's time went from its last model call to its final event, in the order it passes:
    its run queued (Dagster's queue, until RUN_STARTING), launching (a run worker process, until RUN_START),
    collecting and materializing, then the final event's delivery. A stage that ended before the last call
    counts 0."""

    def stage(end: dict[str, float | None] | dict[str, float], begin: list[dict]) -> Quantiles:
        return Quantiles.of([max(0.0, (end[i] or last_answer[i]) - max(b[i] or 0.0 for b in begin)) for i in ended])

    return {
        "run queued": stage(dequeued, [last_answer]),
        "run launching": stage(started, [last_answer, dequeued]),
        "collect, materialize": stage(materialized, [last_answer, started]),
        "materialized -> final event": stage(final_at, [materialized]),
        "last call -> final event": stage(final_at, [last_answer]),
    }


def _per_minute(count: int, span_s: float) -> float:
    return round(count / span_s * 60, 1) if span_s > 0 else 0.0


def _stop(daemon: subprocess.Popen) -> None:
    os.killpg(daemon.pid, signal.SIGTERM)
    try:
        daemon.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait()


def main() -> None:
    shape_json, figures_file = sys.argv[1:3]
    home = Path(figures_file).parent / "drain-home"
    figures = run_drain(
        DrainShape.model_validate_json(shape_json), home, on_progress=lambda line: print(line, flush=True)
    )
    Path(figures_file).write_text(figures.model_dump_json())


if __name__ == "__main__":
    main()
