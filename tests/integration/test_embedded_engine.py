"""The embedded engine is one detached actor per cluster, whatever settings the runs ask for."""

import pytest
import ray

from fleet_dagster.llm.embedded import engine_settings
from fleet_dagster.ray_cluster.actors import embedded_llm

pytestmark = pytest.mark.integration


def test_runs_asking_for_other_settings_share_the_running_engine(ray_connected, ray_namespace):
    embedded_llm(4, None)
    other = embedded_llm(5, 2)
    engines = [
        actor
        for actor in ray.util.list_named_actors(all_namespaces=True)
        if actor["namespace"] == ray_namespace and actor["name"].startswith("fleet-embedded-llm")
    ]
    assert len(engines) == 1, engines
    assert ray.get(other.settings.remote()) == engine_settings(4, None)
