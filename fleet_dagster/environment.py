"""Resources per environment, chosen in one place; secrets only through dg.EnvVar."""

import os
from typing import Any

import dagster as dg

from fleet_dagster.llm.resources import LLMResource
from fleet_dagster.nats_bridge.resources import NatsResource
from fleet_dagster.nats_bridge.settings import NATS_ENV
from fleet_dagster.ray_cluster.resources import RayClusterResource


def _env(name: str) -> dg.EnvVar | None:
    """An EnvVar for a variable that is set; None keeps an optional field unset."""
    return dg.EnvVar(name) if os.environ.get(name) else None


def resources_for_environment() -> dict[str, dg.ConfigurableResource]:
    """Embedded default unless the environment names a cluster (RAY_ADDRESS), an endpoint (FLEET_LLM_URL)
    or a NATS server (NATS_URL)."""
    nats: dict[str, Any] = {name: _env(var) for name, var in NATS_ENV.items() if os.environ.get(var)}
    return {
        "nats": NatsResource(**nats),
        "ray_cluster": RayClusterResource(address=_env("RAY_ADDRESS")),
        # The model server's settings are read from the environment when a run needs them (llm/settings.py).
        "llm": LLMResource(),
    }
