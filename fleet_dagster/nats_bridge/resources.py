"""NATS as a Dagster resource: settings from the environment only, event publishing for ops."""

import asyncio
import itertools
import logging
import os
import time

import dagster as dg
from pydantic import BaseModel, PrivateAttr

from fleet_dagster.nats_bridge.jetstream import ensure_stream, jetstream, publish_event
from fleet_dagster.nats_bridge.settings import NatsSettings

RETRY_FIRST_PAUSE_S, RETRY_MAX_PAUSE_S = 0.5, 5.0


class NatsResource(dg.ConfigurableResource):
    """The deployment's NATS, read from the environment when a run needs it (NATS_ENV).

    It has no config fields on purpose: a field is something a launch can set, and a launch that could
    name the server could send the deployment's token to a host of its choosing.
    """

    _settings: NatsSettings | None = PrivateAttr(default=None)
    _set_up: bool = PrivateAttr(default=False)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._settings, self._set_up = NatsSettings.deployed(os.environ), True  # a run's (or a tick's), read once

    def settings(self) -> NatsSettings | None:
        """The NATS this resource was set up with (None: the bridge is off); outside a run, the process's."""
        return self._settings if self._set_up else NatsSettings.deployed(os.environ)

    def publish_retry_s(self) -> float:
        settings = self.settings()
        return settings.publish_retry_s if settings else 0.0

    def publish(
        self, events: list[tuple[str, BaseModel, str]], log: logging.Logger | None = None, retry_s: float = 0.0
    ) -> bool:
        """False when the bridge is off or NATS did not take the events (see `publish_with_retries`)."""
        settings = self.settings()
        return settings is not None and publish_with_retries(settings, events, log, retry_s)


def publish_with_retries(
    settings: NatsSettings,
    events: list[tuple[str, BaseModel, str]],
    log: logging.Logger | None = None,
    retry_s: float = 0.0,
) -> bool:
    """Publishes (subject name, event, msg id) triples, trying again with backoff for up to `retry_s`
    (0: once); never raises. Msg ids make a repeated publish a no-op for the stream."""
    if not events:
        return False

    async def send() -> None:
        async with jetstream(settings) as js:
            await ensure_stream(js, settings)
            for name, event, msg_id in events:
                await publish_event(js, settings, name, event, msg_id)

    give_up_at, pause = time.monotonic() + retry_s, RETRY_FIRST_PAUSE_S
    for attempt in itertools.count(1):
        try:
            asyncio.run(send())
            return True
        except Exception as exc:  # noqa: BLE001 - any NATS failure: retry within the bound, then report
            if log is not None:
                log.warning(
                    f"publishing {len(events)} event(s) to {settings.display_url} failed "
                    f"(attempt {attempt}): {type(exc).__name__}: {exc}"
                )
        if time.monotonic() + pause > give_up_at:
            return False
        time.sleep(pause)
        pause = min(pause * 2, RETRY_MAX_PAUSE_S)
    return False
