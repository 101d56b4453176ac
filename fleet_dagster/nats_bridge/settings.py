"""How to reach NATS: from the environment only (never run config), so credentials stay out of runs."""

import ssl
from collections.abc import Mapping

from pydantic import Field, SecretStr

from fleet_dagster.core.env_settings import EnvSettings
from fleet_dagster.nats_bridge.subjects import STREAM_SUBJECT_FILTERS

MAX_REQUEST_BYTES = 1024 * 1024
# Retention of the stream when the bridge creates it (an operator's limits on an existing stream are kept):
# every agent call adds an event, so an unlimited stream grows forever.
DEFAULT_MAX_AGE_S = 7 * 24 * 3600.0
DEFAULT_MAX_BYTES = 1024**3
# How long a run keeps publishing its events through a NATS outage before it leaves them to the outbox sensor.
DEFAULT_PUBLISH_RETRY_S = 60.0


async def _quiet(error: Exception) -> None:
    """The caller reports connection failures once; nats-py would log a traceback per attempt."""


class NatsSettings(EnvSettings):
    """Credentials come from a Kubernetes Secret through the environment."""

    url: str = Field(validation_alias="NATS_URL", description="e.g. nats://user:password@nats:4222")
    token: SecretStr | None = Field(None, validation_alias="NATS_TOKEN")
    creds_file: str | None = Field(None, validation_alias="NATS_CREDS")
    tls_ca_file: str | None = Field(None, validation_alias="NATS_TLS_CA")
    stream: str = Field("FLEET", validation_alias="FLEET_NATS_STREAM")
    subject_prefix: str = Field("", validation_alias="FLEET_NATS_SUBJECT_PREFIX")
    connect_timeout_s: float = 2.0
    max_age_s: float = Field(DEFAULT_MAX_AGE_S, gt=0, validation_alias="FLEET_NATS_MAX_AGE_S")
    max_bytes: int = Field(DEFAULT_MAX_BYTES, gt=0, validation_alias="FLEET_NATS_MAX_BYTES")
    publish_retry_s: float = Field(DEFAULT_PUBLISH_RETRY_S, ge=0, validation_alias="FLEET_NATS_PUBLISH_RETRY_S")

    @classmethod
    def deployed(cls, environ: Mapping[str, str]) -> "NatsSettings | None":
        """None when NATS_URL is unset: the bridge is off and nothing is published."""
        return cls.from_environ(environ) if environ.get(cls.variables()["url"]) else None

    def subject(self, name: str) -> str:
        return f"{self.subject_prefix}{name}"

    @property
    def stream_subjects(self) -> list[str]:
        return [self.subject(name) for name in STREAM_SUBJECT_FILTERS]

    def connect_options(self) -> dict:
        options: dict = {
            "servers": [self.url],
            "connect_timeout": self.connect_timeout_s,
            "allow_reconnect": False,
            # nats-py treats 0 as "no limit" on the initial connect; 1 means: one retry, then NoServersError.
            "max_reconnect_attempts": 1,
            "reconnect_time_wait": 0.2,
            "error_cb": _quiet,
        }
        if self.token:
            options["token"] = self.token.get_secret_value()
        if self.creds_file:
            options["user_credentials"] = self.creds_file
        if self.tls_ca_file:
            options["tls"] = ssl.create_default_context(cafile=self.tls_ca_file)
        return options

    @property
    def display_url(self) -> str:
        """The URL without any user:password, for logs and skip reasons."""
        scheme, _, rest = self.url.rpartition("://")
        return f"{scheme}://{rest.rsplit('@', 1)[-1]}" if scheme else rest.rsplit("@", 1)[-1]


NATS_ENV = NatsSettings.variables()
