"""The response store: keyed by what determines an answer, bounded, and never holding a credential."""

import asyncio
from pathlib import Path

from pydantic import SecretStr

from fleet_dagster.core.records import ChatRequest, ChatResult
from fleet_dagster.core.request import parse_request
from fleet_dagster.llm.endpoint import LLMEndpoint
from fleet_dagster.llm.prepared_call import prepare_call
from fleet_dagster.llm.response_store import (
    ReplayDocument,
    ResponseStoreSettings,
    SqliteResponseStore,
    replay_document,
    sqlite_response_store,
)
from tests.clock import Clock

SECRET = "sk-do-not-store-me"
# An endpoint with a credential in every place one can be: the key, and user:password in each URL.
CREDENTIALS = (SECRET, "url-password", "models-password")
CREDENTIALED_ENDPOINT = {
    "base_url": "http://fleet:url-password@llm:8000/v1",
    "api_key": SecretStr(SECRET),
    "model_urls": {"m": "http://fleet:models-password@vllm-m:8000/v1"},
}


def chat_request(**changes) -> ChatRequest:
    fields = {
        "deliberation_id": "d1",
        "agent_id": "agent-dev-001",
        "role": "DEV",
        "phase": "propose",
        "round": 0,
        "model": "m",
        "messages": [{"role": "user", "content": "Design a cache"}],
        "temperature": 0.7,
        "max_tokens": 100,
        "seed": 7,
        "timeout_s": 30.0,
    }
    return ChatRequest(**{**fields, **changes})


def key_of(request: ChatRequest, **endpoint) -> str:
    return prepare_call(LLMEndpoint(base_url="http://llm:8000/v1", **endpoint), request).key


def test_the_key_changes_with_what_determines_the_answer_only():
    base = key_of(chat_request())
    for change in (
        {"seed": 8},
        {"temperature": 0.2},
        {"max_tokens": 50},
        {"model": "other"},
        {"messages": [{"role": "user", "content": "Design a queue"}]},
        {"json_schema": {"type": "object"}},
        {"frequency_penalty": 0.3},
        {"presence_penalty": 0.3},
        {"repetition_penalty": 1.1},
    ):
        assert key_of(chat_request(**change)) != base, change
    # Who asks, how long it may take and the key it sends do not change the answer.
    assert key_of(chat_request(agent_id="agent-qa-001", timeout_s=5, deadline_at=1.0)) == base
    assert key_of(chat_request(), api_key=SecretStr(SECRET)) == base
    assert key_of(chat_request(), max_tokens_cap=50) == key_of(chat_request(max_tokens=50))
    assert key_of(chat_request(), model_override="other") == key_of(chat_request(model="other"))
    other_server = prepare_call(LLMEndpoint(base_url="http://llm-2:8000/v1"), chat_request()).key
    assert other_server != base
    with_password = LLMEndpoint(base_url="http://user:pw@llm:8000/v1")
    assert prepare_call(with_password, chat_request()).key == base  # the URL's password is no part


def test_repetition_controls_go_by_the_names_the_server_knows():
    unset = prepare_call(LLMEndpoint(base_url="http://llm:8000/v1"), chat_request()).arguments
    assert not {"frequency_penalty", "presence_penalty", "extra_body"} & set(unset)  # the server's own defaults
    request = chat_request(frequency_penalty=0.3, presence_penalty=0.2, repetition_penalty=1.15)
    vllm = prepare_call(LLMEndpoint(base_url="http://llm:8000/v1"), request).arguments
    assert vllm["frequency_penalty"] == 0.3 and vllm["presence_penalty"] == 0.2
    assert vllm["extra_body"] == {"repetition_penalty": 1.15}
    llama = prepare_call(LLMEndpoint(base_url="http://llm:8000/v1", repetition_penalty_param="repeat_penalty"), request)
    assert llama.arguments["extra_body"] == {"repeat_penalty": 1.15}


def test_answers_are_kept_failures_are_not(tmp_path: Path):
    store = SqliteResponseStore(tmp_path / "r.sqlite", ttl_s=60, max_entries=10)
    answer = ChatResult(
        content="use an LRU", prompt_tokens=5, completion_tokens=3, model="m", latency_ms=900, queue_ms=4
    )
    asyncio.run(store.put("k", answer))
    asyncio.run(store.put("failed", ChatResult(error="HTTP 500")))
    kept = ChatResult(content="use an LRU", prompt_tokens=5, completion_tokens=3, model="m")
    assert asyncio.run(store.get("k")) == kept
    assert asyncio.run(store.get("failed")) is None and len(store) == 1
    # Another process (a second caller) sees the same file.
    assert asyncio.run(SqliteResponseStore(tmp_path / "r.sqlite", ttl_s=60, max_entries=10).get("k")) == kept


def test_bounded_by_age_and_by_entries(tmp_path: Path):
    clock = Clock()
    store = SqliteResponseStore(tmp_path / "r.sqlite", ttl_s=60, max_entries=3, clock=clock)
    for index in range(5):
        asyncio.run(store.put(f"k{index}", ChatResult(content=f"answer {index}")))
        clock.now += 1
    store.prune()
    assert len(store) == 3 and asyncio.run(store.get("k0")) is None and asyncio.run(store.get("k4")) is not None
    clock.now += 60
    assert asyncio.run(store.get("k4")) is None  # too old to replay, even before a prune
    store.prune()
    assert len(store) == 0


def test_the_replay_document_keeps_the_request_and_the_endpoint_without_a_credential(tmp_path: Path):
    store = SqliteResponseStore(tmp_path / "r.sqlite", ttl_s=60, max_entries=3)
    request = parse_request({"task": "Design a cache", "roles": ["DEV"], "deliberation_id": "d9"})
    endpoint = LLMEndpoint(**CREDENTIALED_ENDPOINT, max_tokens_cap=64)
    asyncio.run(store.put_deliberation("d9", replay_document(request, endpoint)))
    stored = ReplayDocument.model_validate_json(asyncio.run(store.deliberation("d9")) or "")
    assert stored.request == request and stored.endpoint.max_tokens_cap == 64
    for call in (chat_request(), chat_request(model="other")):  # replay asks for the keys the run stored under
        assert prepare_call(stored.endpoint, call).key == prepare_call(endpoint, call).key
    kept = [(tmp_path / name).read_bytes().decode("latin-1") for name in ("r.sqlite", "r.sqlite-wal")]
    assert [secret for secret in CREDENTIALS for text in kept if secret in text] == []


def test_the_environment_places_the_store(tmp_path: Path):
    settings = ResponseStoreSettings.from_environ({"FLEET_RESPONSE_STORE": str(tmp_path / "x.sqlite")})
    assert sqlite_response_store(settings).path == tmp_path / "x.sqlite"
    assert ResponseStoreSettings.from_environ({"FLEET_RESPONSE_TTL_S": "3600"}).ttl_s == 3600
