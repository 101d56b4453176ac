"""Which model each agent of a council calls: a pure rule over the profile's kinds or the request's models."""

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import ValidationError

from fleet_dagster.core.agent_mix import council_agents, council_models, kind_order
from fleet_dagster.core.profiles import AgentKind, load_profile
from fleet_dagster.core.request import RequestError, agent_id, parse_request


def ids(n: int) -> list[str]:
    return [agent_id("DEV", i) for i in range(n)]


def test_kinds_are_interleaved_by_weight():
    assert kind_order([1, 1], 4) == [0, 1, 0, 1]
    assert kind_order([2, 1], 3) == [0, 1, 0]
    assert kind_order([1, 2], 3) == [1, 0, 1]
    assert kind_order([3], 2) == [0, 0]


@given(st.lists(st.integers(1, 16), min_size=1, max_size=16), st.integers(1, 64))
@example(weights=[1, 1, 1, 1, 14, 14, 14], agents=33)  # smooth weighted round-robin gave a kind 9 of 10.04
def test_each_kind_holds_its_weighted_share_within_one_agent(weights: list[int], agents: int):
    order = kind_order(weights, agents)
    for kind, weight in enumerate(weights):
        assert abs(order.count(kind) - agents * weight / sum(weights)) < 1


def test_the_request_models_replace_the_profiles_kinds_and_keep_its_temperatures():
    profile = load_profile("DEV")
    agents = council_agents(profile, ids(3), ["a", "b"])
    assert [a.model for a in agents] == ["a", "b", "a"]
    assert [a.temperature for a in agents] == [0.4, 0.7, 1.0]  # the role's spread, as a one-model council's
    assert {a.system_prompt for a in agents} == {profile.system_prompt}
    assert [a.model for a in council_agents(profile, ids(2), [])] == [profile.model] * 2


def test_a_profiles_kinds_give_their_own_temperature_and_prompt():
    profile = load_profile("DEV").model_copy(
        update={
            "agents": [
                AgentKind(model="big", weight=2),
                AgentKind(model="small", temperature=0.1, system_prompt="Be terse."),
            ]
        }
    )
    agents = council_agents(profile, ids(3), [])
    assert [(a.model, a.system_prompt == "Be terse.") for a in agents] == [
        ("big", False),
        ("small", True),
        ("big", False),
    ]
    assert agents[1].temperature == 0.1
    assert council_models(profile, 1, []) == ["big"] and council_models(profile, 3, []) == ["big", "small"]


@pytest.mark.parametrize(
    "models", [["bad name"], ["a" * 200], [""], ["ok"] * 17, ["../../etc"], ["-flag"]], ids=lambda m: repr(m)[:20]
)
def test_agent_models_are_bounded_names(models: list[str]):
    with pytest.raises(RequestError) as caught:
        parse_request({"task": "t", "agent_models": models})
    assert caught.value.errors[0][0].startswith("agent_models")


def test_a_kind_refuses_what_it_does_not_know():
    with pytest.raises(ValidationError):
        AgentKind.model_validate({"model": "a", "endpoint": "http://elsewhere"})
