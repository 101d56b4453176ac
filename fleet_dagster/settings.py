"""Where fleet-dagster keeps local state: FLEET_HOME (default ~/.fleet-dagster)."""

import os
from pathlib import Path


def fleet_home() -> Path:
    return Path(os.environ.get("FLEET_HOME", Path.home() / ".fleet-dagster")).expanduser()


def default_dagster_home() -> Path:
    return fleet_home() / "dagster_home"


def ensure_dagster_home() -> Path:
    """DAGSTER_HOME as set, or FLEET_HOME/dagster_home, created with telemetry off."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(default_dagster_home()))).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text("telemetry:\n  enabled: false\n")
    return home
