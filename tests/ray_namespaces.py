"""Ray namespaces that keep tests apart on the session's one head: each test's runs start their runners, callers
and engine in a namespace of their own (tests/conftest.py ray_namespace), stopped when it ends."""

from fleet_dagster.ray_cluster.cluster_settings import RayClusterSettings
from fleet_dagster.ray_cluster.local_head import LocalHead

RAY_NAMESPACE_ENV = RayClusterSettings.variables()["namespace"]


def stop_namespace_actors(head: LocalHead, namespace: str) -> None:
    """Kills every named actor of the namespace (the runners, callers and engine a test's runs started) and leaves
    this process disconnected, so that the next test connects to its own namespace."""
    import ray

    if not ray.is_initialized():
        ray.init(address=head.address, namespace=namespace, log_to_driver=False)
    try:
        for actor in ray.util.list_named_actors(all_namespaces=True):
            if actor["namespace"] == namespace:
                ray.kill(ray.get_actor(actor["name"], namespace=namespace), no_restart=True)
    finally:
        ray.shutdown()
