from fleet_dagster.llm.endpoint import LLMEndpoint


def test_endpoints_that_answer_differently_never_share_a_cached_model():
    plain = LLMEndpoint(base_url="http://vllm:8000/v1")
    assert plain.cache_key == LLMEndpoint(base_url="http://vllm:8000/v1").cache_key
    for changed in ({"stream": True}, {"max_tokens_cap": 64}, {"model_override": "m"}, {"structured_output": False}):
        assert plain.model_copy(update=changed).cache_key != plain.cache_key, changed
    assert LLMEndpoint(base_url=plain.base_url, api_key="k1").cache_key != plain.cache_key
