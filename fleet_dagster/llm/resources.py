"""The language model as a Dagster resource: the deployment's server (from the environment, see settings.py),
or the embedded default; run config tunes only how calls are made."""

import dagster as dg
from pydantic import Field, PrivateAttr, SecretStr

from fleet_dagster.core.cost import ModelPrice
from fleet_dagster.core.request import DeliberationRequest
from fleet_dagster.llm.embedded import EMBEDDED_MODEL_NAME, LLAMA_CPP_REPETITION_PENALTY, MAX_SLOTS
from fleet_dagster.llm.endpoint import DEFAULT_MAX_IN_FLIGHT, LLMEndpoint, max_in_flight_for
from fleet_dagster.llm.preflight import Preflight, preflight
from fleet_dagster.llm.settings import LLMSettings, process_llm_settings


class LLMResource(dg.ConfigurableResource):
    max_retries: int = Field(default=2, ge=0, description="Retries of transient HTTP failures per agent call.")
    call_timeout_s: float = Field(default=120.0, gt=0, description="Timeout of one agent call (within the deadline).")
    embedded_slots: int = Field(
        default=4, ge=1, le=MAX_SLOTS, description="Parallel sequences the embedded engine batches (when it starts)."
    )
    embedded_threads: int | None = Field(
        default=None,
        ge=1,
        description="Decode threads, at most the cores (default: the cores, at most 4; when it starts).",
    )
    embedded_max_tokens: int = Field(default=256, ge=16, description="Cap on answers from the small embedded model.")

    _settings: LLMSettings | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._settings = process_llm_settings()  # a run's (or a tick's) model server, read once

    def settings(self) -> LLMSettings:
        """The model server this resource was set up with; outside a run, the process's (llm/settings.py)."""
        return self._settings or process_llm_settings()

    def served_endpoint(self) -> LLMEndpoint | None:
        """The deployment's server; None means the embedded model, which runs on Ray (see ray_cluster). Raises
        SettingsError for settings it cannot use."""
        settings = self.settings()
        if not settings.base_url:
            return None
        return LLMEndpoint(
            base_url=settings.base_url,
            api=settings.api,
            api_key=settings.api_key or SecretStr("not-needed"),
            model_urls=settings.model_urls,
            model_override=settings.model_override,
            max_retries=self.max_retries,
            max_in_flight=settings.max_in_flight or DEFAULT_MAX_IN_FLIGHT,
            prices=settings.prices,
        )

    def preflight(self, request: DeliberationRequest) -> Preflight | None:
        """The deployment's server checked for the request (llm/preflight.py), before any council starts; None for
        the embedded model, which serves every role. Raises PreflightError."""
        served = self.served_endpoint()
        return None if served is None else preflight(served, request)

    def embedded_endpoint(self, base_url: str, slots: int) -> LLMEndpoint:
        """The embedded engine's endpoint, once it serves at base_url with `slots` sequences at once."""
        return LLMEndpoint(
            base_url=base_url,
            model_override=EMBEDDED_MODEL_NAME,
            max_tokens_cap=self.embedded_max_tokens,
            max_retries=self.max_retries,
            repetition_penalty_param=LLAMA_CPP_REPETITION_PENALTY,
            max_in_flight=max_in_flight_for(slots),
        )

    def admission_limit(self, endpoint: LLMEndpoint) -> int:
        """How many deliberations the fleet runs at once (core/admission.py): the deployment's setting, else one
        per call slot of the server `endpoint` is (more would only queue their calls; fewer would leave slots idle
        while admitted deliberations are between calls, collecting or scoring)."""
        return self.settings().max_deliberations_in_flight or endpoint.max_in_flight

    def prices(self) -> dict[str, ModelPrice]:
        """The deployment's per-model prices (FLEET_LLM_PRICES); none for the embedded model."""
        return self.settings().prices

    @property
    def description(self) -> str:
        return self.settings().display_url or f"embedded {EMBEDDED_MODEL_NAME}"
