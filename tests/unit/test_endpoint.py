from fleet_dagster.llm.endpoint import LLMEndpoint, ModelCache
from fleet_dagster.llm.openai_chat import OpenAIChatModel


def test_endpoints_that_answer_differently_never_share_a_cached_model():
    plain = LLMEndpoint(base_url="http://vllm:8000/v1")
    assert plain.cache_key == LLMEndpoint(base_url="http://vllm:8000/v1").cache_key
    for changed in ({"stream": True}, {"max_tokens_cap": 64}, {"model_override": "m"}, {"structured_output": False}):
        assert plain.model_copy(update=changed).cache_key != plain.cache_key, changed
    assert LLMEndpoint(base_url=plain.base_url, api_key="k1").cache_key != plain.cache_key


def test_the_model_cache_keeps_only_the_most_recently_used_endpoints():
    built: list[str] = []

    def build(endpoint: LLMEndpoint) -> OpenAIChatModel:
        built.append(endpoint.base_url)
        return OpenAIChatModel(endpoint)

    cache = ModelCache(build, size=2)
    a, b, c = (LLMEndpoint(base_url=f"http://{name}:8000/v1") for name in "abc")
    first = cache.get(a)
    cache.get(b)
    assert cache.get(a) is first  # a hit, and now the most recent
    cache.get(c)  # evicts b, the least recently used
    assert len(cache) == 2 and cache.get(a) is first
    cache.get(b)
    assert built == [a.base_url, b.base_url, c.base_url, b.base_url]
