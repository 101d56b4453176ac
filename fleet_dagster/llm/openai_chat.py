"""ChatModel over the openai client: timeouts and retries are the client's own."""

import time

import openai

from fleet_dagster.core.records import ChatRequest, ChatResult
from fleet_dagster.llm.endpoint import LLMEndpoint


def _describe(exc: openai.APIError) -> str:
    if isinstance(exc, openai.APITimeoutError):
        return "timed out"
    if isinstance(exc, openai.APIStatusError):
        body = exc.body.get("error", exc.body) if isinstance(exc.body, dict) else None
        message = body.get("message") if isinstance(body, dict) else None
        return f"HTTP {exc.status_code}: {str(message or exc.message)[:300]}"
    return f"{type(exc).__name__}: {str(exc)[:300]}"


class OpenAIChatModel:
    def __init__(self, endpoint: LLMEndpoint):
        self.endpoint = endpoint
        self.client = openai.AsyncOpenAI(
            base_url=endpoint.base_url,
            api_key=endpoint.api_key.get_secret_value(),
            max_retries=endpoint.max_retries,
        )

    async def complete(self, request: ChatRequest) -> ChatResult:
        model = self.endpoint.model_override or request.model
        max_tokens = min(request.max_tokens, self.endpoint.max_tokens_cap or request.max_tokens)
        extra = {}
        if request.json_schema is not None and self.endpoint.structured_output:
            extra["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": f"{request.phase}", "schema": request.json_schema},
            }
        started = time.perf_counter()
        try:
            response = await self.client.with_options(timeout=request.timeout_s).chat.completions.create(
                model=model,
                messages=request.messages,
                temperature=request.temperature,
                max_tokens=max_tokens,
                seed=request.seed,
                # Lets an endpoint (or a test server) tell agents apart; not a secret.
                extra_headers={
                    "X-Fleet-Agent-Id": request.agent_id,
                    "X-Fleet-Deliberation-Id": request.deliberation_id,
                },
                **extra,
            )
        except openai.APIError as exc:
            error = _describe(exc)
            if isinstance(exc, openai.APITimeoutError):
                error = f"timed out after {request.timeout_s:.1f}s"
            return ChatResult(error=error, latency_ms=(time.perf_counter() - started) * 1000, model=model)
        latency_ms = (time.perf_counter() - started) * 1000
        usage = response.usage
        content = response.choices[0].message.content if response.choices else None
        return ChatResult(
            content=content if content and content.strip() else None,
            error=None if content and content.strip() else "the model returned an empty answer",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            latency_ms=latency_ms,
            model=response.model or model,
        )
