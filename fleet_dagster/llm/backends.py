"""Which backend speaks an endpoint's protocol, and which client SDK: the one place that knows every protocol.
Each is imported when first used: a process that calls no model never loads a client."""

import functools
import importlib
from types import ModuleType
from typing import Any, Protocol

from fleet_dagster.core.chat_model import ChatModel
from fleet_dagster.core.records import ChatResult
from fleet_dagster.llm.endpoint import Api, LLMEndpoint
from fleet_dagster.llm.prepared_call import PreparedCall


class ChatBackend(ChatModel, Protocol):
    """A ChatModel that also sends a call prepared already (the guarded path prepares each call once)."""

    async def send(self, call: PreparedCall, timeout_s: float) -> ChatResult: ...


BACKENDS: dict[Api, str] = {
    "openai": "fleet_dagster.llm.openai_chat:OpenAIChatModel",
    "anthropic": "fleet_dagster.llm.anthropic_messages:AnthropicMessagesModel",
}


# Each protocol's SDK and its synchronous client, for what is asked outside a council's event loop (preflight).
SDK_CLIENTS: dict[Api, tuple[str, str]] = {"openai": ("openai", "OpenAI"), "anthropic": ("anthropic", "Anthropic")}


def sdk_client(api: Api) -> tuple[ModuleType, Any]:
    """The protocol's SDK module (its error classes) and its synchronous client class."""
    module, name = SDK_CLIENTS[api]
    sdk = importlib.import_module(module)
    return sdk, getattr(sdk, name)


@functools.lru_cache(maxsize=32)
def sync_client(api: Api, base_url: str, api_key: str) -> Any:
    """The protocol's synchronous client for one server and key, kept by this process (two tries a request; a
    caller sets its own timeout with `with_options`). A new client builds an SSL context, 40-120 ms of CPU measured
    here, and every sensor tick and every run's plan step lists the served models."""
    _, client_class = sdk_client(api)
    return client_class(base_url=base_url, api_key=api_key, max_retries=1)


def chat_backend(endpoint: LLMEndpoint) -> ChatBackend:
    module, name = BACKENDS[endpoint.api].split(":")
    return getattr(importlib.import_module(module), name)(endpoint)
