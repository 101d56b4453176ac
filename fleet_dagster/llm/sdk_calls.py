"""What every backend over a client SDK does: a client per server (its key, its connection pool), one time budget
for the whole call (attempts, backoff, a body that trickles in), failures as results, never raises. The openai
and anthropic clients share their classes' shapes and their errors' names, so a backend names its client's module
and class, and says how it asks for an answer."""

import asyncio
import time
from collections.abc import Awaitable
from types import ModuleType
from typing import Any

from fleet_dagster.core.records import ChatRequest, ChatResult
from fleet_dagster.llm.endpoint import LLMEndpoint
from fleet_dagster.llm.prepared_call import PreparedCall, prepare_call

# Counting a prompt's tokens takes a server milliseconds; longer means it is busy, and the bound answers instead.
COUNT_TOKENS_TIMEOUT_S = 5.0


class SdkBackend:
    sdk: ModuleType  # the client's module: its error classes
    client_class: Any  # its async client, built with base_url, api_key and max_retries

    def __init__(self, endpoint: LLMEndpoint):
        self.endpoint = endpoint
        self._clients: dict[str, Any] = {}

    def _client(self, base_url: str) -> Any:
        if base_url not in self._clients:
            self._clients[base_url] = self.client_class(
                base_url=base_url,
                api_key=self.endpoint.api_key.get_secret_value(),
                max_retries=self.endpoint.max_retries,
            )
        return self._clients[base_url]

    async def complete(self, request: ChatRequest) -> ChatResult:
        return await self.send(prepare_call(self.endpoint, request), request.timeout_s)

    async def send(self, call: PreparedCall, timeout_s: float) -> ChatResult:
        client = self._client(call.base_url).with_options(timeout=timeout_s)
        started = time.perf_counter()
        result = await within(self._answer(client, call, started), timeout_s, self.sdk)
        latency_ms = (time.perf_counter() - started) * 1000
        result = await self._with_usage(call, result)
        return result.model_copy(update={"latency_ms": latency_ms, "model": result.model or call.model})

    async def _answer(self, client: Any, call: PreparedCall, started: float) -> ChatResult:
        """The answer as the client gives it (streamed when the endpoint streams: `started` dates its first token)."""
        raise NotImplementedError

    async def _with_usage(self, call: PreparedCall, result: ChatResult) -> ChatResult:
        """The result with its usage where the server left it out."""
        return result


def describe(exc: Exception, sdk: ModuleType) -> str:
    if isinstance(exc, sdk.APITimeoutError):
        return "timed out"
    if isinstance(exc, sdk.APIStatusError):
        body = exc.body.get("error", exc.body) if isinstance(exc.body, dict) else None
        message = body.get("message") if isinstance(body, dict) else None
        return f"HTTP {exc.status_code}: {str(message or exc.message)[:300]}"
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def is_endpoint_fault(exc: Exception, sdk: ModuleType) -> bool:
    """The server could not answer at all: refused or dropped connections, HTTP 5xx (not timeouts)."""
    if isinstance(exc, sdk.APIStatusError):
        return exc.status_code >= 500
    return isinstance(exc, sdk.APIConnectionError) and not isinstance(exc, sdk.APITimeoutError)


async def within(call: Awaitable[ChatResult], timeout_s: float, sdk: ModuleType) -> ChatResult:
    """The call's result, or why there is none; the client's own timeout bounds each attempt and each read, and
    it retries timeouts: only a bound on the whole call keeps it within the deadline."""
    try:
        return await asyncio.wait_for(call, timeout_s)
    except (sdk.APITimeoutError, TimeoutError):
        return ChatResult(error=f"timed out after {timeout_s:.1f}s")
    except sdk.APIError as exc:
        return ChatResult(error=describe(exc, sdk), endpoint_fault=is_endpoint_fault(exc, sdk))
    except ValueError as exc:  # a body that is not the JSON it claims to be
        return ChatResult(error=f"malformed response: {str(exc)[:200]}")
    except Exception as exc:  # noqa: BLE001 - the ChatModel contract: failures are results, not raises
        return ChatResult(error=f"{type(exc).__name__}: {str(exc)[:200]}")


def answered(content: str | None, prompt_tokens: int, completion_tokens: int, model: str) -> ChatResult:
    """An answer; an empty one is a failure (nothing to score)."""
    ok = bool(content and content.strip())
    return ChatResult(
        content=content if ok else None,
        error=None if ok else "the model returned an empty answer",
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        model=model or "",
    )
