"""The Ray cluster as a Dagster resource, on dagster-ray's lifecycle (create, wait, connect, cleanup)."""

from urllib.parse import urlparse

import ray
from dagster_ray import RayResource
from dagster_ray.types import AnyDagsterContext
from pydantic import Field, PrivateAttr
from ray._private.worker import BaseContext

from fleet_dagster.ray_cluster.actors import NAMESPACE
from fleet_dagster.ray_cluster.local_head import ensure_local_head
from fleet_dagster.settings import fleet_home


class RayClusterResource(RayResource):
    """One Ray cluster shared by every step of every run.

    `address` set (RAY_ADDRESS, e.g. ray://fleet-ray-head:10001 on KubeRay): use that cluster.
    Unset: the local head under FLEET_HOME, started by the first run and reused by all later ones.
    """

    address: str | None = Field(
        default=None, description="Address of a running Ray cluster; unset = shared local head."
    )
    local_num_cpus: int | None = Field(default=None, description="CPUs of the local head (default: all).")
    ray_init_options: dict = Field(
        default_factory=lambda: {"namespace": NAMESPACE, "log_to_driver": False, "ignore_reinit_error": True}
    )
    _resolved_address: str | None = PrivateAttr(None)

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
        self._context = ray.init(address=self.ray_address, **self.ray_init_options)
        return self._context

    def create(self, context: AnyDagsterContext) -> None:
        if self.address:
            self._resolved_address = self.address
            self._creation_verb = "Using"
        else:
            head = ensure_local_head(fleet_home() / "ray", num_cpus=self.local_num_cpus)
            self._resolved_address = head.address
            self._creation_verb = "Using the shared local head of"

    def on_cleanup(self, context: AnyDagsterContext, *, deleted: bool) -> None:
        # `delete` is a no-op: the cluster outlives every run, whatever the lifecycle's policy says.
        if context.log is not None:
            context.log.info(f"Disconnected from {self.display_name}; the cluster stays up for the next run.")
