"""NATS as a Dagster resource: settings from the environment (dg.EnvVar), event publishing for ops."""

import asyncio

import dagster as dg
from pydantic import BaseModel, Field

from fleet_dagster.nats_bridge.jetstream import ensure_stream, jetstream, publish_event
from fleet_dagster.nats_bridge.settings import NatsSettings

PUBLISH_ATTEMPTS = 3


class NatsResource(dg.ConfigurableResource):
    url: str | None = Field(None, description="NATS_URL; unset turns the bridge off.")
    token: str | None = Field(None, description="NATS_TOKEN, from the environment only.")
    creds_file: str | None = Field(None, description="NATS_CREDS: path of a .creds file.")
    tls_ca_file: str | None = Field(None, description="NATS_TLS_CA: CA bundle for TLS.")
    stream: str = "FLEET"
    subject_prefix: str = ""

    def settings(self) -> NatsSettings | None:
        if not self.url:
            return None
        return NatsSettings(
            url=self.url,
            token=self.token,
            creds_file=self.creds_file,
            tls_ca_file=self.tls_ca_file,
            stream=self.stream,
            subject_prefix=self.subject_prefix,
        )

    def publish(
        self,
        events: list[tuple[str, BaseModel, str]],
        log: dg.DagsterLogManager | None = None,
        attempts: int = PUBLISH_ATTEMPTS,
    ) -> bool:
        """Publishes (subject name, event, msg id) triples; retries, and never fails the caller's run."""
        settings = self.settings()
        if settings is None or not events:
            return False

        async def send() -> None:
            async with jetstream(settings) as js:
                await ensure_stream(js, settings, update=False)
                for name, event, msg_id in events:
                    await publish_event(js, settings, name, event, msg_id)

        for attempt in range(1, attempts + 1):
            try:
                asyncio.run(send())
                return True
            except Exception as exc:  # noqa: BLE001 - any NATS failure: retry, then report
                if log is not None:
                    log.warning(
                        f"publishing {len(events)} event(s) to {settings.display_url} failed "
                        f"(attempt {attempt}/{attempts}): {type(exc).__name__}: {exc}"
                    )
        return False
