"""Which model serves each role, decided before any council starts: a pure check with the server's
listing injected (the real /v1/models is exercised against the simulated server and against vLLM)."""

import pytest

from fleet_dagster.core.request import parse_request
from fleet_dagster.llm.backends import sync_client
from fleet_dagster.llm.endpoint import LLMEndpoint
from fleet_dagster.llm.preflight import (
    PreflightError,
    ServedModel,
    ServerUnavailable,
    check_models,
    model_listing,
    preflight,
)

URL = "http://vllm:8000/v1"


def listing(*names: str, context: int | None = None):
    return lambda url: [ServedModel(name=name, max_model_len=context) for name in names]


def test_the_profiles_models_when_they_are_served():
    checked = check_models(
        LLMEndpoint(base_url=URL), {"DEV": ["big"], "QA": ["small"]}, listing("big", "small", context=4096)
    )
    assert checked.model_override is None and checked.context_tokens == {"DEV": 4096, "QA": 4096}


def test_the_one_served_model_serves_every_role_and_says_so():
    checked = check_models(LLMEndpoint(base_url=URL), {"DEV": ["big"], "QA": ["small"]}, listing("smollm2"))
    assert checked.model_override == "smollm2"
    assert checked.notes == [
        "every role uses smollm2, the one model served at http://vllm:8000/v1 (the profiles ask for big, small)"
    ]


def test_a_model_not_served_is_refused_naming_what_is_served():
    with pytest.raises(PreflightError) as caught:
        check_models(LLMEndpoint(base_url=URL), {"DEV": ["big"]}, listing("a", "b"))
    assert str(caught.value) == "role DEV: model 'big' is not served at http://vllm:8000/v1; served: a, b"


def test_an_override_is_never_replaced():
    endpoint = LLMEndpoint(base_url="http://user:secret@vllm:8000/v1", model_override="wanted")
    with pytest.raises(PreflightError) as caught:
        check_models(endpoint, {"DEV": ["big"]}, listing("smollm2"))
    message = str(caught.value)
    assert "'wanted' is not served" in message and "secret" not in message


def test_per_model_urls_are_asked_each_for_its_own_model():
    asked = []

    def served_at(url):
        asked.append(url)
        return [ServedModel(name="big" if "big" in url else "small")]

    endpoint = LLMEndpoint(base_url=URL, model_urls={"big": "http://vllm-big/v1", "small": "http://vllm-small/v1"})
    check_models(endpoint, {"DEV": ["big"], "QA": ["small"], "DATA": ["big"]}, served_at)
    assert asked == ["http://vllm-big/v1", "http://vllm-small/v1"]


def test_a_request_over_the_served_context_is_refused_naming_the_role():
    request = parse_request({"task": "Design a cache " * 400, "roles": ["DEV"], "deliberation_id": "long"})
    with pytest.raises(PreflightError) as caught:
        preflight(LLMEndpoint(base_url=URL), request, served_at=listing("smollm2", context=2048))
    assert "role DEV" in str(caught.value) and "2048-token context" in str(caught.value)
    # The same request fits a server with a longer context.
    assert preflight(LLMEndpoint(base_url=URL), request, served_at=listing("smollm2", context=32768)).model_override


def test_a_server_that_does_not_answer_is_asked_once_per_listing(monkeypatch):
    from fleet_dagster.llm import preflight as module

    asked = []
    real = module.list_served_models
    monkeypatch.setattr(module, "list_served_models", lambda url, *args: asked.append(url) or real(url, *args))
    endpoint = LLMEndpoint(base_url="http://127.0.0.1:9/v1")  # the discard port: nothing listens
    served_at = model_listing(endpoint)
    for _ in range(3):
        with pytest.raises(ServerUnavailable) as caught:
            served_at(endpoint.base_url)
    assert asked == [endpoint.base_url] and "did not list its models" in str(caught.value)


def test_listings_of_one_server_share_its_client_and_never_another_keys():
    """A new client builds an SSL context (tens of ms): a process lists a server's models with one client."""
    client = sync_client("openai", URL, "key-a")
    assert sync_client("openai", URL, "key-a") is client
    assert (
        sync_client("openai", URL, "key-b") is not client
        and sync_client("openai", "http://other/v1", "key-a") is not client
    )
    assert sync_client("anthropic", URL, "key-a") is not client


def test_every_model_of_a_mixed_council_is_checked_and_the_context_is_the_least():
    served_at = lambda url: [ServedModel(name="a", max_model_len=4096), ServedModel(name="b", max_model_len=2048)]  # noqa: E731
    checked = check_models(LLMEndpoint(base_url=URL), {"DEV": ["a", "b"]}, served_at, named=["a", "b"])
    assert checked.model_override is None and checked.context_tokens == {"DEV": 2048}


def test_a_model_the_request_names_is_never_stood_in_for_by_the_one_served_model():
    request = parse_request({"task": "t", "roles": ["DEV"], "agent_models": ["smollm2", "no-such-model"]})
    with pytest.raises(PreflightError) as caught:
        preflight(LLMEndpoint(base_url=URL), request, served_at=listing("smollm2"))
    assert caught.value.errors == [
        ("agent_models", "agent_models: model 'no-such-model' is not served at http://vllm:8000/v1; served: smollm2")
    ]


def test_a_mix_is_refused_where_the_deployment_serves_every_agent_with_one_model():
    request = parse_request({"task": "t", "roles": ["DEV"], "agent_models": ["a", "b"]})
    with pytest.raises(PreflightError) as caught:
        preflight(LLMEndpoint(base_url=URL, model_override="a"), request, served_at=listing("a", "b"))
    assert str(caught.value) == "agent_models: the deployment serves every agent with a; it cannot mix in b"
