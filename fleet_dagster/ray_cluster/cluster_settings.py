"""Which Ray cluster a fleet process joins, and the namespace its named actors live in."""

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from fleet_dagster.core.env_settings import EnvSettings

DEFAULT_NAMESPACE = "fleet"


def _namespace_name(value: str) -> str:
    # Ray takes any string; a short plain one is what an operator can type into `ray list actors --filter`.
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", value):
        raise ValueError("letters, digits, '_', '.' or '-', at most 64")
    return value


class RayClusterSettings(EnvSettings):
    # Unset: the local head under FLEET_HOME, started by the first run and reused by every later one.
    address: str | None = Field(None, alias="RAY_ADDRESS")
    # The runners and callers are detached named actors: two fleets (or two tests) that share a cluster keep apart
    # by their namespace. The token ledgers in Ray's key-value store are kept per namespace too.
    namespace: Annotated[str, AfterValidator(_namespace_name)] = Field(DEFAULT_NAMESPACE, alias="FLEET_RAY_NAMESPACE")
