"""The two chat protocols the simulated server speaks: OpenAI's chat completions and Anthropic's messages.

A wire turns its request body into the neutral form the server generates from (OpenAI's: `messages` with the
system prompt first, `model`, `max_tokens`, `seed`, `response_format`, `stream`) and shapes the answer, its
stream of events and its errors as that protocol does.
"""

import json
import time
import uuid
import zlib
from collections.abc import Iterator
from typing import Protocol

Usage = tuple[int, int]  # prompt (input) tokens, completion (output) tokens


class Wire(Protocol):
    def neutral(self, body: dict, agent: str) -> dict: ...

    def answer(self, model: str, content: str, usage: Usage | None) -> dict: ...

    def error(self, status: int, message: str) -> dict: ...

    def events(self, model: str, tokens: list[str], usage: Usage | None) -> Iterator[tuple[bytes, bool]]:
        """The stream's server-sent events in order, each with whether it carries a token (the server takes a
        token's time after it); `usage` None: the answer reports none."""
        ...


class OpenAIWire:
    def neutral(self, body: dict, agent: str) -> dict:
        return body

    def answer(self, model: str, content: str, usage: Usage | None) -> dict:
        answer = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
        }
        return answer | ({"usage": _openai_usage(usage)} if usage else {})

    def error(self, status: int, message: str) -> dict:
        return {"error": {"message": message, "type": "sim_fault", "code": status}}

    def events(self, model: str, tokens: list[str], usage: Usage | None) -> Iterator[tuple[bytes, bool]]:
        chunk_id = f"chatcmpl-{uuid.uuid4().hex[:12]}"

        def chunk(delta: dict, finish: str | None = None) -> dict:
            return {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        yield _data(chunk({"role": "assistant", "content": ""})), False
        for index, token in enumerate(tokens):
            yield _data(chunk({"content": token if index == 0 else f" {token}"})), True
        yield _data(chunk({}, "stop")), False
        if usage is not None:
            yield _data({**chunk({}), "choices": [], "usage": _openai_usage(usage)}), False
        yield b"data: [DONE]\n\n", False


def _openai_usage(usage: Usage) -> dict:
    prompt, completion = usage
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class AnthropicWire:
    """Anthropic's Messages API: the system prompt beside the messages, `x-api-key`, no seed (the server varies
    its sampling per agent instead), content blocks, and named stream events."""

    def neutral(self, body: dict, agent: str) -> dict:
        system = body.get("system")
        if isinstance(system, list):  # system as text blocks
            system = "".join(block.get("text", "") for block in system if isinstance(block, dict))
        messages = [{"role": "system", "content": system}] if system else []
        for message in body.get("messages", []):
            content = message.get("content")
            if isinstance(content, list):
                content = "".join(block.get("text", "") for block in content if isinstance(block, dict))
            messages.append({"role": message.get("role"), "content": content or ""})
        return {
            "model": body.get("model"),
            "messages": messages,
            "max_tokens": body.get("max_tokens"),
            "temperature": body.get("temperature"),
            "seed": zlib.crc32(agent.encode()) or None,
            "stream": body.get("stream", False),
        }

    def answer(self, model: str, content: str, usage: Usage | None) -> dict:
        return {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": content}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": _anthropic_usage(usage or (0, 0)),
        }

    def error(self, status: int, message: str) -> dict:
        kinds = {401: "authentication_error", 404: "not_found_error", 429: "rate_limit_error", 529: "overloaded_error"}
        return {"type": "error", "error": {"type": kinds.get(status, "api_error"), "message": message}}

    def events(self, model: str, tokens: list[str], usage: Usage | None) -> Iterator[tuple[bytes, bool]]:
        prompt, completion = usage or (0, 0)
        message = self.answer(model, "", (prompt, 0)) | {"content": [], "stop_reason": None}
        yield _named({"type": "message_start", "message": message}), False
        yield _named({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}), False
        for index, token in enumerate(tokens):
            text = token if index == 0 else f" {token}"
            delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}
            yield _named(delta), True
        yield _named({"type": "content_block_stop", "index": 0}), False
        yield (
            _named(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": completion},
                }
            ),
            False,
        )
        yield _named({"type": "message_stop"}), False


def _anthropic_usage(usage: Usage) -> dict:
    return {"input_tokens": usage[0], "output_tokens": usage[1]}


def _data(event: dict) -> bytes:
    return f"data: {json.dumps(event)}\n\n".encode()


def _named(event: dict) -> bytes:
    """Anthropic's events say their type twice: as the event's name and in its data."""
    return f"event: {event['type']}\n".encode() + _data(event)
