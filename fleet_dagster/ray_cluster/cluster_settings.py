"""Which Ray cluster a fleet process joins, and the namespace its named actors live in."""

from pydantic import Field

from fleet_dagster.core.env_settings import EnvSettings

DEFAULT_NAMESPACE = "fleet"
# The Ray resource of the nodes that run model-written code (ray_cluster/sandbox_runs.py): the chart's sandbox
# worker group offers it, as many as runs at once; a machine's local head, SANDBOX_SLOTS (runs are CPU work).
SANDBOX_RESOURCE = "sandbox"
SANDBOX_SLOTS = 2


class RayClusterSettings(EnvSettings):
    # Unset: the local head under FLEET_HOME, started by the first run and reused by every later one.
    address: str | None = Field(None, validation_alias="RAY_ADDRESS")
    # The runners and callers are detached named actors: two fleets (or two tests) that share a cluster keep apart
    # by their namespace. The token ledgers in Ray's key-value store are kept per namespace too.
    # Ray takes any string; a short plain one is what an operator can type into `ray list actors --filter`.
    namespace: str = Field(DEFAULT_NAMESPACE, validation_alias="FLEET_RAY_NAMESPACE", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
