"""The backend for OpenAI's chat completions (vLLM, llama.cpp, most gateways), over the openai client."""

import time

import openai

from fleet_dagster.core.records import ChatRequest, ChatResult
from fleet_dagster.llm import sdk_calls
from fleet_dagster.llm.endpoint import LLMEndpoint
from fleet_dagster.llm.prepared_call import PreparedCall, prepare_call
from fleet_dagster.llm.tokenizer import Tokenizer


class OpenAIChatModel(sdk_calls.SdkBackend):
    sdk = openai
    client_class = openai.AsyncOpenAI

    def __init__(self, endpoint: LLMEndpoint):
        super().__init__(endpoint)
        self._tokenizer = Tokenizer(self._client)

    async def _answer(self, client: openai.AsyncOpenAI, call: PreparedCall, started: float) -> ChatResult:
        if self.endpoint.stream:
            return await self._streamed(client, call.arguments, started)
        return await self._answered(client, call.arguments)

    async def prompt_tokens(self, request: ChatRequest) -> int:
        call = prepare_call(self.endpoint, request)
        return await self._tokenizer.prompt_tokens(call.base_url, call.model, call.arguments["messages"])

    async def _with_usage(self, call: PreparedCall, result: ChatResult) -> ChatResult:
        """An answer's usage as the tokenizer counts it: an answer is never free because it was not reported."""
        if not result.ok or result.prompt_tokens or result.completion_tokens:
            return result
        prompt = await self._tokenizer.prompt_tokens(call.base_url, call.model, call.arguments["messages"])
        completion = await self._tokenizer.text_tokens(call.base_url, call.model, result.content or "")
        return result.model_copy(update={"prompt_tokens": prompt, "completion_tokens": completion})

    @staticmethod
    async def _answered(client: openai.AsyncOpenAI, arguments: dict) -> ChatResult:
        response = await client.chat.completions.create(**arguments)
        usage = response.usage
        content = response.choices[0].message.content if response.choices else None
        return _result(content, usage, response.model)

    @staticmethod
    async def _streamed(client: openai.AsyncOpenAI, arguments: dict, started: float) -> ChatResult:
        parts: list[str] = []
        first_token_ms = None
        usage = None
        model = ""
        stream = await client.chat.completions.create(**arguments, stream=True, stream_options={"include_usage": True})
        async with stream:  # a stream cut at the budget hands its connection back at once
            async for chunk in stream:
                model = chunk.model or model
                usage = chunk.usage or usage
                for choice in chunk.choices:
                    if choice.delta.content:
                        if first_token_ms is None:
                            first_token_ms = (time.perf_counter() - started) * 1000
                        parts.append(choice.delta.content)
        return _result("".join(parts), usage, model).model_copy(update={"first_token_ms": first_token_ms})


def _result(content: str | None, usage, model: str) -> ChatResult:
    prompt, completion = (usage.prompt_tokens, usage.completion_tokens) if usage else (0, 0)
    return sdk_calls.answered(content, prompt, completion, model)
