"""The embedded default's Ray: one local head, started once and reused by every run and step.

Every `ray.init()` in a fresh process would otherwise start a cluster of its own. The head runs
`ray start --head --block` in a session of its own, so that stopping it (by that session) stops
exactly the processes it started.
"""

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from filelock import FileLock

from fleet_dagster.local_ports import free_port, port_open
from fleet_dagster.ray_cluster.cluster_settings import SANDBOX_RESOURCE, SANDBOX_SLOTS

STATE_FILE = "ray-head.json"


@dataclass(frozen=True)
class LocalHead:
    address: str
    pid: int
    log_path: str
    metrics_port: int  # where the head's metrics agent serves Prometheus text (ray_cluster/metrics.py)

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_state(state_dir: Path) -> LocalHead | None:
    try:
        head = LocalHead(**json.loads((state_dir / STATE_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return head if _alive(head.pid) and port_open(head.address) else None


def ray_temp_dir(state_dir: Path) -> Path:
    """Ray's socket paths must stay under 108 bytes: a short folder per state dir, not one inside it.
    Every node of the local cluster uses it."""
    tmp_dir = Path(tempfile.gettempdir()) / f"fleet-ray-{hashlib.sha1(str(state_dir).encode()).hexdigest()[:10]}"
    tmp_dir.mkdir(exist_ok=True)
    return tmp_dir


def ensure_local_head(state_dir: Path, num_cpus: int | None = None, timeout_s: float = 60.0) -> LocalHead:
    """The running local head recorded in `state_dir`, or a new one."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(state_dir / f"{STATE_FILE}.lock", timeout=timeout_s):
        if head := _read_state(state_dir):
            return head
        port, metrics_port = free_port(), free_port()
        address = f"127.0.0.1:{port}"
        log_path = state_dir / "ray-head.log"
        tmp_dir = ray_temp_dir(state_dir)
        command = [
            str(Path(sys.executable).with_name("ray")),
            "start",
            "--head",
            "--block",
            f"--port={port}",
            "--node-ip-address=127.0.0.1",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={tmp_dir}",
            f"--metrics-export-port={metrics_port}",
            # Model-written code runs only where this resource is (ray_cluster/sandbox_runs.py), here in bubblewrap.
            f"--resources={json.dumps({SANDBOX_RESOURCE: SANDBOX_SLOTS})}",
        ]
        if num_cpus is not None:
            command.append(f"--num-cpus={num_cpus}")
        # Auth off explicitly: the head listens on 127.0.0.1 only, and Ray 2.60 turns token auth on for a head
        # whenever ~/.ray/auth_token exists (any earlier local ray.init() writes one), while drivers that
        # connect by address stay without a token and are refused.
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
        env.pop("RAY_ADDRESS", None)
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        head = LocalHead(address=address, pid=process.pid, log_path=str(log_path), metrics_port=metrics_port)
        deadline = time.monotonic() + timeout_s
        while not port_open(address):
            if process.poll() is not None or time.monotonic() > deadline:
                stop_session(process.pid)
                raise RuntimeError(f"the local Ray head did not start; see {log_path}")
            time.sleep(0.1)
        (state_dir / STATE_FILE).write_text(json.dumps(asdict(head)))
        return head


def _session_members(session_id: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == session_id:
                    members.append(int(entry.name))
            except OSError:
                continue
    return members


def stop_session(session_leader: int, grace_s: float = 5.0) -> None:
    """Stops every process of the session we started for the head (raylet, GCS, workers)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        members = _session_members(session_leader)
        if not members:
            return
        for pid in members:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace_s
        while _session_members(session_leader) and time.monotonic() < deadline:
            time.sleep(0.1)
            with contextlib.suppress(ChildProcessError):  # reap our own child if it is one
                os.waitpid(session_leader, os.WNOHANG)


def stop_local_head(state_dir: Path) -> bool:
    head = _read_state(state_dir)
    if head is None:
        return False
    stop_session(head.pid)
    (state_dir / STATE_FILE).unlink(missing_ok=True)
    return True
