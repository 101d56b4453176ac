"""ChatModel over the openai client: its retries of transient failures, within one budget per call."""

import asyncio
import time

import openai

from fleet_dagster.core.records import ChatRequest, ChatResult
from fleet_dagster.llm.call_arguments import call_arguments
from fleet_dagster.llm.endpoint import LLMEndpoint
from fleet_dagster.llm.tokenizer import Tokenizer


def _describe(exc: openai.APIError) -> str:
    if isinstance(exc, openai.APITimeoutError):
        return "timed out"
    if isinstance(exc, openai.APIStatusError):
        body = exc.body.get("error", exc.body) if isinstance(exc.body, dict) else None
        message = body.get("message") if isinstance(body, dict) else None
        return f"HTTP {exc.status_code}: {str(message or exc.message)[:300]}"
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def _is_endpoint_fault(exc: openai.APIError) -> bool:
    """The server could not answer at all: refused or dropped connections, HTTP 5xx (not timeouts)."""
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code >= 500
    return isinstance(exc, openai.APIConnectionError) and not isinstance(exc, openai.APITimeoutError)


class OpenAIChatModel:
    def __init__(self, endpoint: LLMEndpoint):
        self.endpoint = endpoint
        self._clients: dict[str, openai.AsyncOpenAI] = {}
        self._tokenizer = Tokenizer(self._client)

    def _client(self, base_url: str) -> openai.AsyncOpenAI:
        if base_url not in self._clients:
            self._clients[base_url] = openai.AsyncOpenAI(
                base_url=base_url,
                api_key=self.endpoint.api_key.get_secret_value(),
                max_retries=self.endpoint.max_retries,
            )
        return self._clients[base_url]

    async def complete(self, request: ChatRequest) -> ChatResult:
        base_url, arguments = call_arguments(self.endpoint, request)
        # The client's timeout bounds each attempt and each read, and it retries timeouts: only a bound on
        # the whole call (attempts, backoff, a body that trickles in) keeps it within the deadline.
        client = self._client(base_url).with_options(timeout=request.timeout_s)
        started = time.perf_counter()
        call = self._streamed(client, arguments, started) if self.endpoint.stream else self._answered(client, arguments)
        try:
            result = await asyncio.wait_for(call, request.timeout_s)
        except (openai.APITimeoutError, TimeoutError):
            result = ChatResult(error=f"timed out after {request.timeout_s:.1f}s")
        except openai.APIError as exc:
            result = ChatResult(error=_describe(exc), endpoint_fault=_is_endpoint_fault(exc))
        except ValueError as exc:  # a body that is not the JSON it claims to be
            result = ChatResult(error=f"malformed response: {str(exc)[:200]}")
        except Exception as exc:  # noqa: BLE001 - the ChatModel contract: failures are results, not raises
            result = ChatResult(error=f"{type(exc).__name__}: {str(exc)[:200]}")
        latency_ms = (time.perf_counter() - started) * 1000
        if result.ok and not (result.prompt_tokens or result.completion_tokens):  # the server reported no usage
            result = await self._counted(base_url, arguments["model"], request, result)
        return result.model_copy(update={"latency_ms": latency_ms, "model": result.model or arguments["model"]})

    async def prompt_tokens(self, request: ChatRequest) -> int:
        base_url, arguments = call_arguments(self.endpoint, request)
        return await self._tokenizer.prompt_tokens(base_url, arguments["model"], request.messages)

    async def _counted(self, base_url: str, model: str, request: ChatRequest, result: ChatResult) -> ChatResult:
        """An answer's usage as the tokenizer counts it: an answer is never free because it was not reported."""
        prompt = await self._tokenizer.prompt_tokens(base_url, model, request.messages)
        completion = await self._tokenizer.text_tokens(base_url, model, result.content or "")
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
    answered = bool(content and content.strip())
    return ChatResult(
        content=content if answered else None,
        error=None if answered else "the model returned an empty answer",
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
        model=model or "",
    )
