import pytest

from fleet_dagster.core.request import DEFAULT_ROLES, RequestError, agent_id, parse_request


def test_defaults_need_only_a_task():
    request = parse_request({"task": "Design a rate limiter"})
    assert request.roles == list(DEFAULT_ROLES)
    assert (request.agents_per_role, request.rounds, request.deadline_s) == (3, 1, 900.0)
    assert request.expected_count == 9
    assert request.deliberation_id.startswith("delib-")


def test_generated_ids_differ_and_given_ids_are_kept():
    assert parse_request({"task": "t"}).deliberation_id != parse_request({"task": "t"}).deliberation_id
    assert parse_request({"task": "t", "deliberation_id": "abc_1.2-x"}).deliberation_id == "abc_1.2-x"
    assert parse_request({"task": "t", "deliberation_id": None}).deliberation_id.startswith("delib-")


def test_roles_are_normalized():
    assert parse_request({"task": "t", "roles": ["dev", " qa "]}).roles == ["DEV", "QA"]


@pytest.mark.parametrize(
    ("data", "field", "fragment"),
    [
        ({}, "task", "required"),
        ({"task": ""}, "task", "at least 1"),
        ({"task": "   "}, "task", "blank"),
        ({"task": "x" * 20_001}, "task", "at most 20000"),
        ({"task": "t", "roles": ["DEV", "WIZARD"]}, "roles", "unknown role(s) WIZARD"),
        ({"task": "t", "roles": []}, "roles", "at least 1"),
        ({"task": "t", "roles": ["DEV", "dev"]}, "roles", "must not repeat"),
        ({"task": "t", "agents_per_role": 0}, "agents_per_role", "greater than or equal to 1"),
        ({"task": "t", "agents_per_role": 17}, "agents_per_role", "less than or equal to 16"),
        ({"task": "t", "rounds": 6}, "rounds", "less than or equal to 5"),
        ({"task": "t", "deliberation_id": "-bad"}, "deliberation_id", "pattern"),
        ({"task": "t", "deliberation_id": "a" * 65}, "deliberation_id", "pattern"),
        ({"task": "t", "deadline_s": 0}, "deadline_s", "greater than 0"),
        ({"task": "t", "agents_per_role": "three"}, "agents_per_role", "valid integer"),
        ({"task": "t", "colour": "red"}, "colour", "Extra inputs"),
        ({"task": "t", "requirements": ["ok", " "]}, "request", "blank"),
    ],
)
def test_invalid_requests_name_the_field(data, field, fragment):
    with pytest.raises(RequestError) as caught:
        parse_request(data)
    fields = {f: m for f, m in caught.value.errors}
    assert field in fields, caught.value.errors
    assert fragment in fields[field]


def test_every_error_is_reported_at_once():
    with pytest.raises(RequestError) as caught:
        parse_request({"task": "", "agents_per_role": 0, "rounds": 9})
    assert {f for f, _ in caught.value.errors} == {"task", "agents_per_role", "rounds"}


def test_agent_ids():
    assert [agent_id("DEV", i) for i in range(3)] == ["agent-dev-001", "agent-dev-002", "agent-dev-003"]
