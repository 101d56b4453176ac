"""Which backend speaks an endpoint's protocol: the one place that knows every backend. Each is imported when
first used: a process that calls no model never loads a client."""

import importlib
from typing import Protocol

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


def chat_backend(endpoint: LLMEndpoint) -> ChatBackend:
    module, name = BACKENDS[endpoint.api].split(":")
    return getattr(importlib.import_module(module), name)(endpoint)
