"""A deployment's model server: read from the environment when a run needs it, never from run config.

Run config replaces a resource's whole configuration, so settings kept there were lost whenever a launch
set any other field (a URL given on the command line dropped the deployment's model), and a launch could
point the deployment's key at another host. The key comes from a Kubernetes Secret through the
environment. Kept free of heavy imports: the CLI reads it before it loads anything else.
"""

import json
import os
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, Field, SecretStr, ValidationError

from fleet_dagster.core.cost import ModelPrice
from fleet_dagster.llm.endpoint import Api

LLM_ENV = {
    "base_url": "FLEET_LLM_URL",
    "api": "FLEET_LLM_API",
    "api_key": "FLEET_LLM_API_KEY",
    "model_override": "FLEET_LLM_MODEL",
    "model_urls": "FLEET_LLM_MODEL_URLS",
    "max_in_flight": "FLEET_LLM_MAX_IN_FLIGHT",
    "prices": "FLEET_LLM_PRICES",
}
JSON_SETTINGS = ("model_urls", "prices")


def display_url(url: str) -> str:
    """The URL without any user:password in it: what logs, messages and metadata may show."""
    parts = urlsplit(url)
    host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=host))


class LLMSettingsError(ValueError):
    """An environment variable holds something the deployment cannot use."""


class LLMSettings(BaseModel):
    base_url: str | None = Field(default=None, description="The model server; unset: the embedded model.")
    api: Api = Field(default="openai", description="The protocol the server speaks.")
    api_key: SecretStr | None = None
    model_override: str | None = Field(default=None, description="One served model for every role.")
    # {"served model name": "http://vllm-<model>:8000/v1"}, as the Helm chart renders it.
    model_urls: dict[str, str] = Field(default_factory=dict)
    max_in_flight: int | None = Field(default=None, ge=1, description="Calls in flight to the server, cluster-wide.")
    # {"served model name": {"prompt": price per 1k prompt tokens, "completion": per 1k completion tokens}}
    prices: dict[str, ModelPrice] = Field(default_factory=dict)

    @property
    def display_url(self) -> str | None:
        return display_url(self.base_url) if self.base_url else None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "LLMSettings":
        values: dict[str, object] = {name: environ[var] for name, var in LLM_ENV.items() if environ.get(var)}
        for name in JSON_SETTINGS:
            if name in values:
                try:
                    values[name] = json.loads(str(values[name]))
                except (json.JSONDecodeError, RecursionError) as exc:
                    raise LLMSettingsError(f"{LLM_ENV[name]} is not JSON: {exc}") from None
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise LLMSettingsError(f"model settings in the environment: {exc}") from None
