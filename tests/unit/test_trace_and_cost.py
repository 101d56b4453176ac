"""Trace context and cost: pure functions, fuzzed where they read untrusted input."""

import asyncio
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet_dagster.core.cost import ModelPrice, calls_cost
from fleet_dagster.core.council import Council, run_council
from fleet_dagster.core.profiles import load_profile
from fleet_dagster.core.records import AgentCall
from fleet_dagster.core.request import RequestError, parse_request
from fleet_dagster.core.trace import (
    child_traceparent,
    derived_traceparent,
    new_traceparent,
    trace_id,
    traceparent_problem,
)
from tests.unit.test_council import ScriptedModel

W3C_EXAMPLE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_the_w3c_example_and_what_this_fleet_makes_are_valid():
    assert traceparent_problem(W3C_EXAMPLE) is None
    made = [new_traceparent(), derived_traceparent("seq", "1"), child_traceparent(W3C_EXAMPLE)]
    assert all(traceparent_problem(value) is None for value in made), made
    assert derived_traceparent("a", "b") == derived_traceparent("a", "b") != derived_traceparent("a", "c")


def test_a_child_span_keeps_the_trace_and_flags_with_a_new_span():
    child = child_traceparent(W3C_EXAMPLE)
    assert trace_id(child) == trace_id(W3C_EXAMPLE) and child.endswith("-01")
    assert child.split("-")[2] != W3C_EXAMPLE.split("-")[2]


@pytest.mark.parametrize(
    "value",
    [
        W3C_EXAMPLE.upper(),  # the spec: lower case only
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        W3C_EXAMPLE + "-extra",  # version 00 has four fields
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-" + "x" * 200,
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\n",  # a header line of its own
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-\r\nX-Injected: 1",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-é",
        "",
    ],
)
def test_malformed_traceparents_are_refused_with_a_reason(value):
    assert traceparent_problem(value)
    with pytest.raises(RequestError) as refused:
        parse_request({"task": "t", "roles": ["DEV"], "traceparent": value})
    assert refused.value.errors[0][0] == "traceparent"


def test_a_later_version_with_more_fields_is_carried_on():
    assert traceparent_problem("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next") is None


@given(st.text(max_size=200))
def test_any_text_is_either_a_valid_traceparent_or_a_reason(value):
    problem = traceparent_problem(value)
    if problem is None:  # it can go into an HTTP header as it is
        assert value.isascii() and value.isprintable() and " " not in value
        assert trace_id(child_traceparent(value)) == value.split("-")[1]


def test_every_model_call_is_a_span_of_the_requests_trace():
    model = ScriptedModel()
    request = parse_request({"task": "Design a rate limiter", "roles": ["DEV"], "traceparent": W3C_EXAMPLE})
    seen = []
    council = Council(
        request, load_profile("DEV"), model, deadline_at=time.time() + 60, call_timeout_s=5, on_call=seen.append
    )
    result = asyncio.run(run_council(council))
    sent = [r.traceparent for r in model.requests]
    assert sent and all(trace_id(tp) == trace_id(W3C_EXAMPLE) for tp in sent)
    assert len(set(sent)) == len(sent)  # a span per call
    assert [c.traceparent for c in result.calls] == [c.traceparent for c in seen]
    assert seen == result.calls  # the hook saw every recorded call, once


def call(model: str, tokens: int, completion: int, replayed: bool = False) -> AgentCall:
    return AgentCall(
        agent_id="a", role="DEV", phase="propose", round=0, ok=True, tokens=tokens, completion_tokens=completion,
        model=model, replayed=replayed,
    )  # fmt: skip


def test_cost_per_model_at_its_prices_and_unpriced_models_named():
    prices = {"big": ModelPrice(prompt=0.5, completion=1.5), "small": ModelPrice(prompt=0.1, completion=0.2)}
    calls = [call("big", 1500, 500), call("small", 3000, 1000), call("other", 10, 5), call("big", 900, 100, True)]
    cost = calls_cost(calls, prices)
    assert cost.by_model == {"big": 0.5 + 0.75, "small": 0.2 + 0.2}
    assert cost.estimated_cost == pytest.approx(1.65)
    assert cost.unpriced_models == ["other"]
    assert calls_cost(calls, {}).estimated_cost is None


def test_prices_are_non_negative_and_need_both_parts():
    with pytest.raises(ValueError):
        ModelPrice(prompt=-1, completion=0)
    with pytest.raises(ValueError):
        ModelPrice.model_validate({"prompt": 1})
