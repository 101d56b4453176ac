"""The backend for Anthropic's messages API, over the anthropic client. The call, prepared in the
chat-completions form, is translated: the system prompt goes beside the messages; the temperature, the seed,
the penalties and `response_format` are not sent (the API takes none of them: agents differ by the model's own
sampling, and reviews are read from the answer's text). Usage is always reported; prompts are counted by the
API's count_tokens."""

import time

import anthropic

from fleet_dagster.core.budget import bounded_prompt_tokens
from fleet_dagster.core.records import ChatRequest, ChatResult
from fleet_dagster.llm import sdk_calls
from fleet_dagster.llm.prepared_call import PreparedCall, prepare_call


def messages_arguments(call: PreparedCall) -> dict:
    """The arguments of `messages.create` for a prepared call."""
    messages = call.arguments["messages"]
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    arguments = {
        "model": call.model,
        "max_tokens": call.arguments["max_tokens"],
        "messages": [{"role": m["role"], "content": m["content"]} for m in messages if m["role"] != "system"],
        "extra_headers": call.arguments["extra_headers"],
    }
    return arguments | ({"system": system} if system else {})


class AnthropicMessagesModel(sdk_calls.SdkBackend):
    sdk = anthropic
    client_class = anthropic.AsyncAnthropic

    async def _answer(self, client: anthropic.AsyncAnthropic, call: PreparedCall, started: float) -> ChatResult:
        arguments = messages_arguments(call)
        if self.endpoint.stream:
            return await self._streamed(client, arguments, started)
        return await self._answered(client, arguments)

    async def prompt_tokens(self, request: ChatRequest) -> int:
        call = prepare_call(self.endpoint, request)
        arguments = messages_arguments(call)
        client = self._client(call.base_url).with_options(timeout=sdk_calls.COUNT_TOKENS_TIMEOUT_S, max_retries=0)
        try:
            counted = await client.messages.count_tokens(
                **{name: arguments[name] for name in ("model", "messages", "system") if name in arguments}
            )
        except anthropic.APIError:
            return bounded_prompt_tokens(call.arguments["messages"])
        return counted.input_tokens

    @staticmethod
    async def _answered(client: anthropic.AsyncAnthropic, arguments: dict) -> ChatResult:
        response = await client.messages.create(**arguments)
        content = "".join(block.text for block in response.content if block.type == "text")
        return sdk_calls.answered(content, response.usage.input_tokens, response.usage.output_tokens, response.model)

    @staticmethod
    async def _streamed(client: anthropic.AsyncAnthropic, arguments: dict, started: float) -> ChatResult:
        parts: list[str] = []
        first_token_ms = None
        prompt_tokens = completion_tokens = 0
        model = ""
        stream = await client.messages.create(**arguments, stream=True)
        async with stream:  # a stream cut at the budget hands its connection back at once
            async for event in stream:
                if event.type == "message_start":
                    model, prompt_tokens = event.message.model, event.message.usage.input_tokens
                elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                    if first_token_ms is None:
                        first_token_ms = (time.perf_counter() - started) * 1000
                    parts.append(event.delta.text)
                elif event.type == "message_delta":
                    completion_tokens = event.usage.output_tokens
        result = sdk_calls.answered("".join(parts), prompt_tokens, completion_tokens, model)
        return result.model_copy(update={"first_token_ms": first_token_ms})
