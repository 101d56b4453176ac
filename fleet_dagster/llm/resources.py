"""The language model as a Dagster resource: an OpenAI-compatible URL, or the embedded default."""

import dagster as dg
from pydantic import Field

from fleet_dagster.llm.embedded import EMBEDDED_MODEL_NAME, MAX_SLOTS
from fleet_dagster.llm.endpoint import LLMEndpoint


class LLMResource(dg.ConfigurableResource):
    base_url: str | None = Field(
        default=None, description="OpenAI-compatible endpoint (vLLM); unset = the embedded model."
    )
    api_key: str | None = Field(default=None, description="Only ever set from the environment (FLEET_LLM_API_KEY).")
    model_override: str | None = Field(default=None, description="One model for every role, instead of the profiles'.")
    model_urls: dict[str, str] = Field(default_factory=dict, description="Per-model URLs (FLEET_LLM_MODEL_URLS).")
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

    def served_endpoint(self) -> LLMEndpoint | None:
        """The configured server; None means the embedded model, which runs on Ray (see ray_cluster)."""
        if not self.base_url:
            return None
        return LLMEndpoint(
            base_url=self.base_url,
            api_key=self.api_key or "not-needed",
            model_urls=self.model_urls,
            model_override=self.model_override,
            max_retries=self.max_retries,
        )

    def embedded_endpoint(self, base_url: str) -> LLMEndpoint:
        """The embedded engine's endpoint, once it serves at base_url."""
        return LLMEndpoint(
            base_url=base_url,
            model_override=EMBEDDED_MODEL_NAME,
            max_tokens_cap=self.embedded_max_tokens,
            max_retries=self.max_retries,
        )

    @property
    def description(self) -> str:
        return self.base_url or f"embedded {EMBEDDED_MODEL_NAME}"
