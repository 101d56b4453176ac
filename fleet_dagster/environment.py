"""Resources per environment, chosen in one place; secrets only through dg.EnvVar."""

import json
import os

import dagster as dg

from fleet_dagster.llm.resources import LLMResource
from fleet_dagster.nats_bridge.resources import NatsResource
from fleet_dagster.ray_cluster.resources import RayClusterResource


def _env(name: str) -> dg.EnvVar | None:
    """An EnvVar for a variable that is set; None keeps an optional field unset."""
    return dg.EnvVar(name) if os.environ.get(name) else None


def resources_for_environment() -> dict[str, dg.ConfigurableResource]:
    """Embedded default unless the environment names a cluster (RAY_ADDRESS), an endpoint (FLEET_LLM_URL)
    or a NATS server (NATS_URL)."""
    llm_url = os.environ.get("FLEET_LLM_URL")
    return {
        "nats": NatsResource(
            url=_env("NATS_URL"),
            token=_env("NATS_TOKEN"),
            creds_file=_env("NATS_CREDS"),
            tls_ca_file=_env("NATS_TLS_CA"),
            stream=os.environ.get("FLEET_NATS_STREAM", "FLEET"),
            subject_prefix=os.environ.get("FLEET_NATS_SUBJECT_PREFIX", ""),
        ),
        "ray_cluster": RayClusterResource(address=_env("RAY_ADDRESS")),
        "llm": LLMResource(
            base_url=llm_url or None,
            api_key=_env("FLEET_LLM_API_KEY"),
            model_override=_env("FLEET_LLM_MODEL"),
            # {"served model name": "http://vllm-<model>:8000/v1"}, as the Helm chart renders it.
            model_urls=json.loads(os.environ.get("FLEET_LLM_MODEL_URLS") or "{}"),
        ),
    }
