"""An agent call as it leaves the caller, prepared once: where it goes, what it asks (in the chat-completions
form every backend translates from) and the response store's key.

Kept free of any model client, so that a council runner can compute keys (and route by them) without one.
"""

import hashlib
import json
from dataclasses import dataclass

from fleet_dagster.core.records import ChatRequest
from fleet_dagster.llm.endpoint import LLMEndpoint
from fleet_dagster.llm.settings import display_url

# The deliberation's session key on every call, so that a router can send a deliberation's calls to one replica,
# whose prefix cache holds what they share (core/prompts.py): vLLM production-stack's session router hashes the
# header its `--session-key` names (`--routing-logic session --session-key X-Session-Id`), as do gateways that hash
# on a header (Envoy, Caddy); llm-d's and Ray Serve LLM's prefix-aware routers read the prompt itself. The id is
# the deliberation's, never a credential.
SESSION_HEADER = "X-Session-Id"

# What determines an answer. Headers (agent and deliberation ids), streaming and the key do not.
ANSWER_FIELDS = (
    "model",
    "messages",
    "temperature",
    "max_tokens",
    "seed",
    "response_format",
    "frequency_penalty",
    "presence_penalty",
    "extra_body",
)


@dataclass(frozen=True)
class PreparedCall:
    base_url: str
    arguments: dict  # of `chat.completions.create`
    key: str  # the response store's

    @property
    def model(self) -> str:
        return self.arguments["model"]

    @property
    def display_url(self) -> str:
        return display_url(self.base_url)


def prepare_call(endpoint: LLMEndpoint, request: ChatRequest) -> PreparedCall:
    model, base_url = endpoint.route(request.model)
    arguments: dict = {
        "model": model,
        "messages": request.messages,
        "temperature": request.temperature,
        "max_tokens": min(request.max_tokens, endpoint.max_tokens_cap or request.max_tokens),
        "seed": request.seed,
        # Lets an endpoint (or a test server) tell agents apart; not a secret. vLLM's OpenTelemetry tracing
        # continues the call's trace from its traceparent.
        "extra_headers": {
            "X-Fleet-Agent-Id": request.agent_id,
            "X-Fleet-Deliberation-Id": request.deliberation_id,
            SESSION_HEADER: request.deliberation_id,
            **({"traceparent": request.traceparent} if request.traceparent else {}),
        },
    }
    # Sent only when set: a default of 0 is every server's own, and some servers reject what they do not know.
    if request.frequency_penalty:
        arguments["frequency_penalty"] = request.frequency_penalty
    if request.presence_penalty:
        arguments["presence_penalty"] = request.presence_penalty
    if request.repetition_penalty is not None:
        arguments["extra_body"] = {endpoint.repetition_penalty_param: request.repetition_penalty}
    if request.json_schema is not None and endpoint.structured_output:
        arguments["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": f"{request.phase}", "schema": request.json_schema},
        }
    return PreparedCall(base_url, arguments, response_key(base_url, arguments))


def response_key(base_url: str, arguments: dict) -> str:
    """The store's key: the server (a different build or quantization answers differently; never its
    credentials) and what determines the answer."""
    answer = {name: arguments[name] for name in ANSWER_FIELDS if name in arguments}
    canonical = json.dumps({"url": display_url(base_url), **answer}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
