"""A deployment's model server: read from the environment once, when a run's (or a tick's) resources are set up,
or chosen by the CLI for as long as its command (`chosen_llm_settings`); never from run config.

Run config replaces a resource's whole configuration, so settings kept there were lost whenever a launch
set any other field (a URL given on the command line dropped the deployment's model), and a launch could
point the deployment's key at another host. The key comes from a Kubernetes Secret through the
environment. Kept free of heavy imports: the CLI reads it before it loads anything else.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator

from fleet_dagster.core.cost import ModelPrice
from fleet_dagster.core.env_settings import EnvSettings, json_setting
from fleet_dagster.llm.endpoint import Api


def display_url(url: str) -> str:
    """The URL without any user:password in it: what logs, messages and metadata may show."""
    parts = urlsplit(url)
    host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=host))


class LLMSettings(EnvSettings):
    base_url: str | None = Field(
        default=None, validation_alias="FLEET_LLM_URL", description="The model server; unset: the embedded model."
    )
    api: Api = Field(default="openai", validation_alias="FLEET_LLM_API", description="The protocol it speaks.")
    api_key: SecretStr | None = Field(default=None, validation_alias="FLEET_LLM_API_KEY")
    model_override: str | None = Field(
        default=None, validation_alias="FLEET_LLM_MODEL", description="One served model for every role."
    )
    # {"served model name": "http://vllm-<model>:8000/v1"}, as the Helm chart renders it.
    model_urls: dict[str, str] = Field(default_factory=dict, validation_alias="FLEET_LLM_MODEL_URLS")
    max_in_flight: int | None = Field(
        default=None,
        ge=1,
        validation_alias="FLEET_LLM_MAX_IN_FLIGHT",
        description="Calls in flight to the server, cluster-wide.",
    )
    max_deliberations_in_flight: int | None = Field(
        default=None,
        ge=1,
        validation_alias="FLEET_MAX_DELIBERATIONS_IN_FLIGHT",
        description="Deliberations running councils at once, fleet-wide (admission); default: the server's bound "
        "on calls in flight, so each admitted deliberation has a call slot for its next call.",
    )
    # {"served model name": {"prompt": price per 1k prompt tokens, "completion": per 1k completion tokens}}
    prices: dict[str, ModelPrice] = Field(default_factory=dict, validation_alias="FLEET_LLM_PRICES")

    _json = field_validator("model_urls", "prices", mode="before")(json_setting)

    @property
    def display_url(self) -> str | None:
        return display_url(self.base_url) if self.base_url else None


LLM_ENV = LLMSettings.variables()
# The model server this process's edge chose (the CLI: its flags over its environment), innermost last.
_CHOSEN: list[LLMSettings] = []


@contextmanager
def chosen_llm_settings(settings: LLMSettings) -> Iterator[LLMSettings]:
    """While it lasts, this process's model server is `settings`, whatever its environment says."""
    _CHOSEN.append(settings)
    try:
        yield settings
    finally:
        _CHOSEN.remove(settings)


def process_llm_settings() -> LLMSettings:
    """The model server its edge chose for this process, else the one its environment names."""
    return _CHOSEN[-1] if _CHOSEN else LLMSettings.from_environ(os.environ)
