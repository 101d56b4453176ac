"""Which backend speaks an endpoint's protocol, and which client SDK: the one place that knows every protocol.
Each is imported when first used: a process that calls no model never loads a client."""

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


def chat_backend(endpoint: LLMEndpoint) -> ChatBackend:
    module, name = BACKENDS[endpoint.api].split(":")
    return getattr(importlib.import_module(module), name)(endpoint)
