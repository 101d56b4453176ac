"""The resources every run gets. What they connect to (endpoints, secrets) comes from the process environment,
never from run config."""

import dagster as dg

from fleet_dagster.llm.resources import LLMResource
from fleet_dagster.nats_bridge.resources import NatsResource
from fleet_dagster.ray_cluster.resources import RayClusterResource


def resources_for_environment() -> dict[str, dg.ConfigurableResource]:
    """Embedded default unless the environment names a cluster (RAY_ADDRESS), an endpoint (FLEET_LLM_URL)
    or a NATS server (NATS_URL)."""
    return {
        # NATS, Ray and the model server are read from the environment when a run sets them up, never from run config.
        "nats": NatsResource(),
        "ray_cluster": RayClusterResource(),
        "llm": LLMResource(),
    }
