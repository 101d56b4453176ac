"""Resources per environment, chosen in one place; secrets only through dg.EnvVar."""

import os

import dagster as dg

from fleet_dagster.llm.resources import LLMResource
from fleet_dagster.ray_cluster.resources import RayClusterResource


def resources_for_environment() -> dict[str, dg.ConfigurableResource]:
    """Embedded default unless the environment names a cluster (RAY_ADDRESS) or an endpoint (FLEET_LLM_URL)."""
    llm_url = os.environ.get("FLEET_LLM_URL")
    return {
        "ray_cluster": RayClusterResource(address=dg.EnvVar("RAY_ADDRESS") if os.environ.get("RAY_ADDRESS") else None),
        "llm": LLMResource(
            base_url=llm_url or None,
            api_key=dg.EnvVar("FLEET_LLM_API_KEY") if os.environ.get("FLEET_LLM_API_KEY") else None,
            model_override=dg.EnvVar("FLEET_LLM_MODEL") if os.environ.get("FLEET_LLM_MODEL") else None,
        ),
    }
