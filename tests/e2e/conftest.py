"""The real thing: nats-server, dagster-webserver and dagster-daemon as separate processes on 127.0.0.1,
a fresh DAGSTER_HOME whose runs, events and schedules live in a database of the session's PostgreSQL (as in
production), the session's Ray head and the simulated model. Stopped by PID (their sessions)."""

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pytest
import requests

from fleet_dagster.local_ports import free_port
from fleet_dagster.nats_bridge.local_server import LocalNatsServer
from fleet_dagster.ray_cluster.local_head import stop_session
from fleet_dagster.sim_llm.server import SimLLMServer, SimSettings
from tests.postgres_server import LocalPostgres, dagster_storage_yaml
from tests.ray_namespaces import RAY_NAMESPACE_ENV, stop_namespace_actors
from tests.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
STACK_NAMESPACE = "e2e-stack"
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


@dataclass
class Stack:
    home: Path
    env: dict[str, str]
    webserver_port: int
    nats: LocalNatsServer
    sim: SimLLMServer
    database_url: str  # where webserver, daemon and runs keep runs, events and schedules
    # A second webserver over the same workspace and instance, in Dagster's read-only mode (started on demand).
    read_only_port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    # Sessions of killed processes whose children (run workers, code servers) were left running.
    orphaned_sessions: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.webserver_port}"

    def start(self, name: str) -> None:
        webserver = ["dagster-webserver", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p"]
        commands = {
            "webserver": [*webserver, str(self.webserver_port)],
            "webserver-read-only": [*webserver, str(self.read_only_port), "--read-only"],
            "daemon": ["dagster-daemon", "run", "-w", "workspace.yaml"],
        }
        executable = str(Path(sys.executable).with_name(commands[name][0]))
        with open(self.home / f"{name}.log", "ab") as log:
            self.processes[name] = subprocess.Popen(
                [executable, *commands[name][1:]],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is None:
            return
        # With whatever it left in its session: code servers, run workers.
        stop_session(process.pid, grace_s=10)

    def crash(self, name: str) -> None:
        """SIGKILLs the process alone, as a crashed daemon pod dies while its run pods go on."""
        process = self.processes.pop(name)
        process.kill()
        process.wait()
        self.orphaned_sessions.append(process.pid)

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)
        for session in self.orphaned_sessions:
            stop_session(session, grace_s=5)

    def log(self, name: str) -> str:
        return (self.home / f"{name}.log").read_text(errors="replace")[-4000:]

    @contextmanager
    def benchmarks_paused(self, timeout_s: float = 300) -> Iterator[None]:
        """The benchmark schedule stopped and its runs ended, then started again: its every-minute deliberations
        share the model server and the run queue with whatever a test times."""
        self._benchmark_schedule("stop")
        try:
            wait_until(lambda: not self._unfinished_benchmark_runs(), timeout_s, "the benchmark runs' end", poll_s=1)
            yield
        finally:
            self._benchmark_schedule("start")

    def _benchmark_schedule(self, verb: str) -> None:
        dagster = str(Path(sys.executable).with_name("dagster"))
        command = [dagster, "schedule", verb, "benchmark_schedule", "-w", "workspace.yaml"]
        done = subprocess.run(command, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr

    def _unfinished_benchmark_runs(self) -> list[dg.DagsterRun]:
        unfinished = [status for status in dg.DagsterRunStatus if status not in FINISHED]
        runs = dg.RunsFilter(tags={"dagster/schedule_name": "benchmark_schedule"}, statuses=unfinished)
        with dg.DagsterInstance.from_config(self.env["DAGSTER_HOME"]) as dagster:
            return dagster.get_runs(filters=runs)

    def wait_serving(self, name: str, port: int, timeout_s: float = 120) -> None:
        def serving() -> bool:
            assert self.processes[name].poll() is None, self.log(name)
            try:
                return requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2).ok
            except requests.ConnectionError:
                return False

        wait_until(serving, timeout_s, f"the {name}", poll_s=0.5)


# The package's tests share one stack, stopped after the last of them: its daemon ticks the benchmark schedule
# every minute, and left running it would start deliberations on the session's Ray head during later tests.
@pytest.fixture(scope="package")
def stack(
    ray_head, fleet_home: Path, postgres: LocalPostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("e2e")
    dagster_home = home / "dagster_home"
    dagster_home.mkdir()
    database_url = postgres.create_database("e2e")
    (dagster_home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\n"
        # No "Join the Dagster community" dialog popping up over whatever the browser test has open.
        "nux:\n  enabled: false\n"
        "run_coordinator:\n  module: dagster.core.run_coordinator\n  class: QueuedRunCoordinator\n"
        "  config:\n    max_concurrent_runs: 3\n" + dagster_storage_yaml(database_url)
    )
    # Create the instance's tables before three processes race to migrate them.
    with dg.DagsterInstance.from_config(str(dagster_home)):
        pass
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with LocalNatsServer(home / "nats") as nats, SimLLMServer(SimSettings(latency_s=0.05)) as sim:
        env = {
            **os.environ,
            "DAGSTER_HOME": str(dagster_home),
            "FLEET_HOME": str(fleet_home),
            "NATS_URL": nats.url,
            "FLEET_LLM_URL": sim.base_url,
            "FLEET_NATS_SENSOR_STATUS": "RUNNING",
            "FLEET_NATS_SENSOR_INTERVAL": "1",
            # Runs give up publishing through an outage soon (minutes in production): the outbox takes over.
            "FLEET_NATS_PUBLISH_RETRY_S": "2",
            "FLEET_BENCHMARK_CRON": "* * * * *",
            "FLEET_BENCHMARK_SCHEDULE_STATUS": "RUNNING",
            "FLEET_BENCHMARK_SUITE": "speed",
            # The stack's runs outlive any one test: their actors keep a namespace of their own.
            RAY_NAMESPACE_ENV: STACK_NAMESPACE,
        }
        stack = Stack(home=home, env=env, webserver_port=free_port(), nats=nats, sim=sim, database_url=database_url)
        try:
            stack.start("webserver")
            stack.start("daemon")
            stack.wait_serving("webserver", stack.webserver_port)
            yield stack
        finally:
            try:
                stack.stop_all()
            finally:
                stop_namespace_actors(ray_head, STACK_NAMESPACE)
