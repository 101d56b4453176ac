"""The one thing the deliberation needs from a language model."""

from typing import Protocol

from fleet_dagster.core.records import ChatRequest, ChatResult


class ChatModel(Protocol):
    async def complete(self, request: ChatRequest) -> ChatResult:
        """Answers one agent call. Failures come back as `ChatResult.error`, never as exceptions."""
        ...
