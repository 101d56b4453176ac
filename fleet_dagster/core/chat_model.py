"""What the deliberation needs from a language model: answers, and (for its token budget) their prompts' size."""

from typing import Protocol

from fleet_dagster.core.records import ChatRequest, ChatResult


class ChatModel(Protocol):
    async def complete(self, request: ChatRequest) -> ChatResult:
        """Answers one agent call. Failures come back as `ChatResult.error`, never as exceptions."""
        ...

    async def prompt_tokens(self, request: ChatRequest) -> int:
        """The call's prompt in tokens as its model counts them, chat template included; when the server
        cannot say, a bound of them (core/budget.py's `bounded_prompt_tokens`)."""
        ...
