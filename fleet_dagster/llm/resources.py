"""The language model as a Dagster resource: an OpenAI-compatible URL, or the embedded default."""

import dagster as dg
import ray
from pydantic import Field

from fleet_dagster.llm.embedded import EMBEDDED_MODEL_NAME, MAX_SLOTS, gguf_path
from fleet_dagster.llm.endpoint import LLMEndpoint


class LLMResource(dg.ConfigurableResource):
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint (vLLM); unset = the embedded model.")
    api_key: str | None = Field(None, description="Only ever set from the environment (FLEET_LLM_API_KEY).")
    model_override: str | None = Field(None, description="One model for every role, instead of the profiles'.")
    model_urls: dict[str, str] = Field(default_factory=dict, description="Per-model URLs (FLEET_LLM_MODEL_URLS).")
    max_retries: int = Field(2, ge=0, description="Retries of transient HTTP failures per agent call.")
    call_timeout_s: float = Field(120.0, gt=0, description="Timeout of one agent call (within the deadline).")
    embedded_slots: int = Field(
        4, ge=1, le=MAX_SLOTS, description="Parallel sequences the embedded engine batches (when it starts)."
    )
    embedded_threads: int | None = Field(
        None, ge=1, description="Decode threads, at most the cores (default: the cores, at most 4; when it starts)."
    )
    embedded_max_tokens: int = Field(256, ge=16, description="Cap on answers from the small embedded model.")

    def endpoint(self) -> LLMEndpoint:
        """Needs a Ray connection when embedded: the engine is a detached actor shared by all runs, started
        with the settings of the first run that needs it."""
        if self.base_url:
            return LLMEndpoint(
                base_url=self.base_url,
                api_key=self.api_key or "not-needed",
                model_urls=self.model_urls,
                model_override=self.model_override,
                max_retries=self.max_retries,
            )
        from fleet_dagster.ray_cluster.actors import embedded_llm

        gguf_path()  # a clear error here beats one from inside an actor
        engine = embedded_llm(self.embedded_slots, self.embedded_threads)
        slots, threads = ray.get(engine.settings.remote())
        if slots != self.embedded_slots or threads != (self.embedded_threads or threads):
            dg.get_dagster_logger().warning(
                f"The embedded engine runs with {slots} slots and {threads} threads, not the "
                f"{self.embedded_slots} slots and {self.embedded_threads or 'default'} threads asked for: "
                "it is shared by the whole cluster and was started (or clamped to the cores) that way."
            )
        return LLMEndpoint(
            base_url=ray.get(engine.base_url.remote()),
            model_override=EMBEDDED_MODEL_NAME,
            max_tokens_cap=self.embedded_max_tokens,
            max_retries=self.max_retries,
        )

    @property
    def description(self) -> str:
        return self.base_url or f"embedded {EMBEDDED_MODEL_NAME}"
