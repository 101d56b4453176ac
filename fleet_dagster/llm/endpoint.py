"""Where agent calls go: a model server, the protocol it speaks, and how to call it."""

import math
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, Literal, TypeVar

from pydantic import BaseModel, Field, SecretStr

from fleet_dagster.core.chat_model import ChatModel
from fleet_dagster.core.cost import ModelPrice

Model = TypeVar("Model", bound=ChatModel)

# A server batching C sequences stays busy with a few calls waiting in it: each call's round trip and
# prompt leave its slot idle otherwise. Measured with bench/saturation.py (C = 16): a bound of C kept the
# engine 0.874 busy, C + 25 % 0.970, 2 C 0.989. More only queues calls where no deadline sees them.
ENGINE_HEADROOM = 1.25


def max_in_flight_for(capacity: int) -> int:
    """The bound on calls in flight that keeps a server of this capacity busy."""
    return math.ceil(capacity * ENGINE_HEADROOM)


DEFAULT_MAX_IN_FLIGHT = max_in_flight_for(256)  # vLLM's default --max-num-seqs
# The protocol a server speaks: OpenAI's chat completions (vLLM, llama.cpp, most gateways) or Anthropic's messages.
Api = Literal["openai", "anthropic"]


class LLMEndpoint(BaseModel):
    base_url: str = Field(
        description="The server's base URL, e.g. http://vllm:8000/v1 (openai), https://host (anthropic)"
    )
    api: Api = Field("openai", description="The protocol the server speaks.")
    api_key: SecretStr = SecretStr("not-needed")
    model_override: str | None = Field(None, description="Serve every role with this model instead of its profile's.")
    model_urls: dict[str, str] = Field(
        default_factory=dict, description="Per-model base URLs (one vLLM server per model); others use base_url."
    )
    max_tokens_cap: int | None = Field(None, description="Upper bound on any call's max_tokens (small engines).")
    max_retries: int = Field(2, ge=0, description="Retries of transient HTTP failures (429, 5xx, connection).")
    structured_output: bool = Field(True, description="Ask for JSON-schema constrained reviews.")
    stream: bool = Field(False, description="Stream answers, which measures the time to first token.")
    max_in_flight: int = Field(
        DEFAULT_MAX_IN_FLIGHT,
        ge=1,
        description="Calls in flight to this server at once, over the whole cluster; the rest wait their turn, "
        "fairly between deliberations (max_in_flight_for(the server's capacity: vLLM's --max-num-seqs)).",
    )
    repetition_penalty_param: str = Field(
        "repetition_penalty",
        description="What the server calls a role's repetition_penalty (vLLM: repetition_penalty; llama.cpp: "
        "repeat_penalty).",
    )
    circuit_failures: int = Field(5, ge=1, description="Endpoint faults in a row that open the circuit.")
    circuit_cooldown_s: float = Field(10.0, gt=0, description="How long calls fail fast once the circuit opens.")
    prices: dict[str, ModelPrice] = Field(
        default_factory=dict, description="Per served model: price per 1k prompt and completion tokens (cost metrics)."
    )

    def url_for(self, model: str) -> str:
        """Where calls to this model go: its own server when model_urls names one, else base_url."""
        return self.model_urls.get(model, self.base_url)

    def route(self, requested: str) -> tuple[str, str]:
        """The model a call that asks for `requested` gets (the override, when set) and where it goes."""
        model = self.model_override or requested
        return model, self.url_for(model)

    @property
    def cache_key(self) -> tuple:
        """Every field: a cached model answers with the settings of the endpoint it was built for."""
        return (self.model_dump_json(exclude={"api_key"}), self.api_key.get_secret_value())


class ModelCache(Generic[Model]):
    """The models of the `size` most recently called endpoints. Endpoints come with the calls, so a
    long-lived caller that kept one model (and its connection pool) per endpoint ever seen would grow forever."""

    def __init__(self, build: Callable[[LLMEndpoint], Model], size: int = 16) -> None:
        self._build = build
        self._size = size
        self._models: OrderedDict[tuple, Model] = OrderedDict()

    def get(self, endpoint: LLMEndpoint) -> Model:
        key = endpoint.cache_key
        if key in self._models:
            self._models.move_to_end(key)
        else:
            self._models[key] = self._build(endpoint)
            if len(self._models) > self._size:
                # Dropped, not closed: a call in flight may still use it, and the openai client closes its
                # connections itself once nothing refers to it.
                self._models.popitem(last=False)
        return self._models[key]

    def __len__(self) -> int:
        return len(self._models)
