"""The Ray cluster as a Dagster resource, on dagster-ray's lifecycle (create, wait, connect, cleanup)."""

import os
from typing import Any, ClassVar
from urllib.parse import urlparse

import ray
from dagster_ray import RayResource
from dagster_ray.configs import Lifecycle, RayDataExecutionOptions
from dagster_ray.types import AnyDagsterContext
from pydantic import PrivateAttr
from ray._private.worker import BaseContext

from fleet_dagster.ray_cluster.cluster_settings import RayClusterSettings
from fleet_dagster.ray_cluster.local_head import ensure_local_head
from fleet_dagster.settings import fleet_home


class RayClusterResource(RayResource):
    """One Ray cluster shared by every step of every run.

    RAY_ADDRESS set (e.g. ray://fleet-ray-head:10001 on KubeRay): use that cluster.
    Unset: the local head under FLEET_HOME, started by the first run and reused by all later ones.
    FLEET_RAY_NAMESPACE: the namespace of the fleet's actors (ray_cluster/cluster_settings.py).

    It has no config fields on purpose, like the `nats` and `llm` resources' connection settings: a field is
    something a launch can set, and the run pod connects with the deployment's Ray token and ships the model
    endpoint, key included, to the cluster as actor arguments. dagster-ray's fields are fixed here as class
    variables, which pydantic (and so Dagster's config schema) does not count as fields.
    """

    lifecycle: ClassVar[Lifecycle] = Lifecycle()  # type: ignore[misc]
    timeout: ClassVar[float] = 600.0  # type: ignore[misc]
    ray_init_options: ClassVar[dict[str, Any]] = {  # type: ignore[misc]
        "log_to_driver": False,
        "ignore_reinit_error": True,
    }
    data_execution_options: ClassVar[RayDataExecutionOptions] = RayDataExecutionOptions()  # type: ignore[misc]
    redis_port: ClassVar[int] = 10001  # type: ignore[misc]
    dashboard_port: ClassVar[int] = 8265  # type: ignore[misc]
    env_vars: ClassVar[dict[str, str] | None] = None  # type: ignore[misc]
    enable_tracing: ClassVar[bool] = False  # type: ignore[misc]
    enable_actor_task_logging: ClassVar[bool] = False  # type: ignore[misc]
    enable_debug_post_mortem: ClassVar[bool] = False  # type: ignore[misc]
    enable_legacy_debugger: ClassVar[bool] = False  # type: ignore[misc]
    _resolved_address: str | None = PrivateAttr(None)
    _namespace: str | None = PrivateAttr(None)

    @property
    def name(self) -> str:
        return "fleet-ray"

    @property
    def host(self) -> str:
        return urlparse(self.ray_address if "://" in self.ray_address else f"ray://{self.ray_address}").hostname or ""

    @property
    def ray_address(self) -> str:  # type: ignore[override]
        assert self._resolved_address is not None, "the Ray cluster resource was not created"
        return self._resolved_address

    @property
    def created(self) -> bool:
        return self._resolved_address is not None

    @property
    def ready(self) -> bool:
        return self.created

    def connect(self, context: AnyDagsterContext) -> BaseContext:  # type: ignore[override]  # theirs is retry-wrapped
        # dagster-ray's connect also configures Ray Data, which would pull in pyarrow for nothing.
        if ray.is_initialized() and ray.get_runtime_context().namespace != self._namespace:
            ray.shutdown()  # this process's earlier connection, to another namespace (one process, one cluster)
        # Read from the class: mypy's pydantic plugin mistakes the instance attribute of a ClassVar override.
        # Connected already (an earlier run or tick of this process): ray.init returns that connection at once.
        self._context = ray.init(address=self.ray_address, namespace=self._namespace, **type(self).ray_init_options)
        return self._context

    def cleanup(self, context: AnyDagsterContext, exception: BaseException | None) -> None:
        """Stays connected unless the run or tick failed: a disconnect takes 0.26-0.27 s (measured), on every
        run's critical path before it reports its end and on every sensor tick, and the next connect of this
        process reuses the connection. A run worker exits after its run, and Ray's exit hook disconnects it then.
        A failure may be the connection's: the next connect makes a new one."""
        if exception is not None:
            self.disconnect()
        self.on_cleanup(context, deleted=False)

    def disconnect(self) -> None:
        """Drops this process's connection (one that failed): the next connect makes a new one."""
        ray.shutdown()

    def create(self, context: AnyDagsterContext) -> None:
        settings = RayClusterSettings.from_environ(os.environ)
        self._namespace = settings.namespace
        if address := settings.address:
            self._resolved_address = address
            self._creation_verb = "Using"
        else:
            head = ensure_local_head(fleet_home() / "ray")
            self._resolved_address = head.address
            self._creation_verb = "Using the shared local head of"

    def on_cleanup(self, context: AnyDagsterContext, *, deleted: bool) -> None:
        # `delete` is a no-op: the cluster outlives every run, whatever the lifecycle's policy says.
        if context.log is not None:
            context.log.info(f"Done with {self.display_name}; the cluster stays up, and this process connected to it.")
