"""How to reach NATS: from the environment only (never run config), so credentials stay out of runs."""

import os
import ssl

from pydantic import BaseModel, Field, SecretStr

MAX_REQUEST_BYTES = 1024 * 1024


async def _quiet(error: Exception) -> None:
    """The caller reports connection failures once; nats-py would log a traceback per attempt."""


class NatsSettings(BaseModel):
    url: str = Field(description="NATS_URL, e.g. nats://user:password@nats:4222")
    token: SecretStr | None = None
    creds_file: str | None = None
    tls_ca_file: str | None = None
    stream: str = "FLEET"
    subject_prefix: str = ""
    connect_timeout_s: float = 2.0

    @classmethod
    def from_env(cls) -> "NatsSettings | None":
        """None when NATS_URL is unset: the bridge is off and nothing is published."""
        url = os.environ.get("NATS_URL")
        if not url:
            return None
        return cls(
            url=url,
            token=os.environ.get("NATS_TOKEN") or None,
            creds_file=os.environ.get("NATS_CREDS") or None,
            tls_ca_file=os.environ.get("NATS_TLS_CA") or None,
            stream=os.environ.get("FLEET_NATS_STREAM", "FLEET"),
            subject_prefix=os.environ.get("FLEET_NATS_SUBJECT_PREFIX", ""),
        )

    def subject(self, name: str) -> str:
        return f"{self.subject_prefix}{name}"

    @property
    def stream_subjects(self) -> list[str]:
        return [self.subject("deliberation.>"), self.subject("agent.response.>")]

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
