"""The deployment's response store, as the environment names it (see llm/response_store.py)."""

import os

from fleet_dagster.llm.response_store import (
    DISABLED,
    IN_NATS,
    RESPONSE_STORE_ENV,
    ResponseStore,
    ResponseStoreSettings,
    sqlite_response_store,
)
from fleet_dagster.nats_bridge.response_bucket import NatsResponseStore
from fleet_dagster.nats_bridge.settings import NATS_ENV, NatsSettings


def response_store_from_env() -> ResponseStore | None:
    """None when turned off. Raises ValueError for settings it cannot use."""
    settings = ResponseStoreSettings.from_environ(os.environ)
    if settings.path == DISABLED:
        return None
    if settings.path == IN_NATS:
        nats = NatsSettings.deployed(os.environ)
        if nats is None:
            raise ValueError(f"{RESPONSE_STORE_ENV['path']}={IN_NATS} needs {NATS_ENV['url']}")
        return NatsResponseStore(nats, settings.ttl_s, settings.max_bytes)
    return sqlite_response_store(settings)
