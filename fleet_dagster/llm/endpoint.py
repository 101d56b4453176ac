"""Where agent calls go: an OpenAI-compatible endpoint and how to call it."""

from pydantic import BaseModel, Field, SecretStr


class LLMEndpoint(BaseModel):
    base_url: str = Field(description="OpenAI-compatible base URL, e.g. http://vllm:8000/v1")
    api_key: SecretStr = SecretStr("not-needed")
    model_override: str | None = Field(None, description="Serve every role with this model instead of its profile's.")
    model_urls: dict[str, str] = Field(
        default_factory=dict, description="Per-model base URLs (one vLLM server per model); others use base_url."
    )
    max_tokens_cap: int | None = Field(None, description="Upper bound on any call's max_tokens (small engines).")
    max_retries: int = Field(2, ge=0, description="Retries of transient HTTP failures (429, 5xx, connection).")
    structured_output: bool = Field(True, description="Ask for JSON-schema constrained reviews.")
    stream: bool = Field(False, description="Stream answers, which measures the time to first token.")

    @property
    def cache_key(self) -> tuple:
        """Every field: a cached model answers with the settings of the endpoint it was built for."""
        return (self.model_dump_json(exclude={"api_key"}), self.api_key.get_secret_value())
