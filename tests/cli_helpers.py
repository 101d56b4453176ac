"""The CLI as users run it: a process of its own."""

import subprocess
import sys


def fleet_dagster(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "fleet_dagster.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )
