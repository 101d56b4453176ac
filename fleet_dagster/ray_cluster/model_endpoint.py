"""Where agent calls go: the configured model server, or the cluster's embedded engine, started on Ray."""

import dagster as dg
import ray

from fleet_dagster.llm.embedded import EngineSettings, gguf_path
from fleet_dagster.llm.endpoint import LLMEndpoint
from fleet_dagster.llm.preflight import served_roles_endpoint
from fleet_dagster.llm.resources import LLMResource
from fleet_dagster.ray_cluster.actors import embedded_llm


def checked_model_endpoint(llm: LLMResource, roles: list[str]) -> tuple[LLMEndpoint, list[str]]:
    """model_endpoint, with a served endpoint's models checked first (see llm/preflight.py), and the notes
    of what was decided. Raises PreflightError when a role's model is not served."""
    served = llm.served_endpoint()
    if served is None:
        return model_endpoint(llm), []
    return served_roles_endpoint(served, roles)


def model_endpoint(llm: LLMResource) -> LLMEndpoint:
    """Needs a Ray connection when embedded: the engine is a detached actor shared by all runs, started
    with the settings of the first run that needs it."""
    served = llm.served_endpoint()
    if served is not None:
        return served
    gguf_path()  # a clear error here beats one from inside an actor
    engine = embedded_llm(llm.embedded_slots, llm.embedded_threads)
    slots, threads = EngineSettings(*ray.get(engine.settings.remote()))
    if slots != llm.embedded_slots or threads != (llm.embedded_threads or threads):
        dg.get_dagster_logger().warning(
            f"The embedded engine runs with {slots} slots and {threads} threads, not the "
            f"{llm.embedded_slots} slots and {llm.embedded_threads or 'default'} threads asked for: "
            "it is shared by the whole cluster and was started (or clamped to the cores) that way."
        )
    return llm.embedded_endpoint(ray.get(engine.base_url.remote()), slots)
