"""Token counts as the served model makes them: vLLM's `POST /tokenize`, at the root of the endpoint's server.

Asked with the call's messages, it applies the chat template (`{"count": n, ...}`); asked with a text
(`"prompt"`), it counts an answer. A server that has no such route, or answers another form (llama.cpp's
takes `"content"` only, a gateway may have none), is remembered per server, and its counts are core/budget.py's
conservative bounds from then on; a server that fails to answer this time is bounded this time.
"""

from collections.abc import Callable

import openai

from fleet_dagster.core.budget import bounded_prompt_tokens, bounded_text_tokens
from fleet_dagster.llm.sdk_calls import COUNT_TOKENS_TIMEOUT_S

TOKENIZE_PATH = "/tokenize"
# What says a server cannot count for us: no route, no such method, a body it does not take.
NO_TOKENIZER_STATUSES = {400, 404, 405, 422, 501}


def server_root(base_url: str) -> str:
    """The server of an OpenAI-compatible base URL (vLLM serves /tokenize beside /v1, not under it)."""
    return base_url.rstrip("/").removesuffix("/v1")


class Tokenizer:
    """Counts on the server of each base URL, with the client `client_for` gives for it (its key, its pool)."""

    def __init__(self, client_for: Callable[[str], openai.AsyncOpenAI]) -> None:
        self._client_for = client_for
        self._absent: set[str] = set()

    async def prompt_tokens(self, base_url: str, model: str, messages: list[dict[str, str]]) -> int:
        counted = await self._count(base_url, {"model": model, "messages": messages})
        return bounded_prompt_tokens(messages) if counted is None else counted

    async def text_tokens(self, base_url: str, model: str, text: str) -> int:
        counted = await self._count(base_url, {"model": model, "prompt": text, "add_special_tokens": False})
        return bounded_text_tokens(text) if counted is None else counted

    async def _count(self, base_url: str, body: dict) -> int | None:
        if base_url in self._absent:
            return None
        client = self._client_for(base_url).with_options(timeout=COUNT_TOKENS_TIMEOUT_S, max_retries=0)
        try:
            answer = await client.post(server_root(base_url) + TOKENIZE_PATH, cast_to=object, body=body)
        except openai.APIStatusError as exc:
            if exc.status_code in NO_TOKENIZER_STATUSES:
                self._absent.add(base_url)
            return None
        except (openai.APIError, ValueError):  # unreachable, timed out, not JSON: this time only
            return None
        count = answer.get("count") if isinstance(answer, dict) else None
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            self._absent.add(base_url)  # a server that answers, but not with vLLM's count
            return None
        return count
