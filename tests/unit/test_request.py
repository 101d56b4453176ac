import shutil

import pytest

from fleet_dagster.core.request import DEFAULT_ROLES, RequestError, agent_id, parse_request
from fleet_dagster.core.resource_files import resources_dir


def nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


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
        ({"task": "t", "requirements": ["ok", " "]}, "requirements", "blank"),
        ({"task": "t", "requirements": [f"r{i}" for i in range(33)]}, "requirements", "at most 32 items"),
        ({"task": "t", "requirements": ["x" * 10_000_000]}, "requirements.0", "at most 1000 characters"),
        ({"task": "t", "roles": [f"R{i}" for i in range(17)]}, "roles", "at most 16 items"),
        ({"task": "t", "metadata": {"blob": "x" * 20_000}}, "metadata", "at most 16384 bytes"),
        ({"task": "t", "metadata": nested(9)}, "metadata", "deeper than 8 levels"),
        ({"task": "t", "metadata": nested(100_000)}, "metadata", "deeper than 8 levels"),
        ({"task": "t", "metadata": {"when": object()}}, "metadata", "JSON"),
        ({"task": "t", "agents_per_role": True}, "agents_per_role", "valid integer"),
        ({"task": "t", "rounds": False}, "rounds", "valid integer"),
        ({"task": "t", "select_top_k": True}, "select_top_k", "valid integer"),
        ({"task": "t", "deadline_s": True}, "deadline_s", "valid number"),
        ({"task": "t", "agents_per_role": 2.0}, "agents_per_role", "valid integer"),
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


def test_bounds_admit_what_they_name():
    request = parse_request(
        {
            "task": "t",
            "deadline_s": 60,
            "requirements": ["r" * 1000] * 3,
            "metadata": nested(8) | {"source": "jira"},
        }
    )
    assert request.deadline_s == 60.0 and isinstance(request.deadline_s, float)


def test_a_task_that_cannot_fit_the_context_is_refused_naming_the_role():
    # 20,000 characters (the field's own bound) are about 6,700 tokens: with the system prompt, a
    # proposal to review and an answer of 768 tokens each, over an 8,192-token context.
    with pytest.raises(RequestError) as caught:
        parse_request({"task": "word " * 4_000, "roles": ["DEV", "QA"]})
    errors = caught.value.errors
    assert [field for field, _ in errors] == ["task", "task"], errors
    assert [message.split(":")[0] for _, message in errors] == ["role DEV", "role QA"]
    assert all("8192-token context" in message for _, message in errors)


def test_requirements_that_cannot_fit_name_the_requirements():
    with pytest.raises(RequestError) as caught:
        parse_request({"task": "t", "roles": ["DEV"], "requirements": ["x" * 1000] * 20})
    assert [field for field, _ in caught.value.errors] == ["requirements"]


def test_a_task_that_fits_a_larger_context_is_accepted(tmp_path, monkeypatch):
    shutil.copytree(resources_dir(), tmp_path, dirs_exist_ok=True)
    profile = tmp_path / "roles" / "DEV.yaml"
    profile.write_text(profile.read_text().replace("context_tokens: 8192", "context_tokens: 32768"))
    monkeypatch.setenv("FLEET_RESOURCES_DIR", str(tmp_path))
    assert parse_request({"task": "word " * 4_000, "roles": ["DEV"]}).roles == ["DEV"]
    with pytest.raises(RequestError, match="QA"):
        parse_request({"task": "word " * 4_000, "roles": ["DEV", "QA"]})


def test_agent_ids():
    assert [agent_id("DEV", i) for i in range(3)] == ["agent-dev-001", "agent-dev-002", "agent-dev-003"]


def test_a_broken_profile_refuses_the_request_naming_the_role(tmp_path, monkeypatch):
    shutil.copytree(resources_dir(), tmp_path, dirs_exist_ok=True)
    (tmp_path / "roles" / "QA.yaml").write_text("model: [unclosed\n")
    monkeypatch.setenv("FLEET_RESOURCES_DIR", str(tmp_path))
    with pytest.raises(RequestError) as caught:
        parse_request({"task": "t", "roles": ["DEV", "QA"]})
    [(field, message)] = caught.value.errors
    assert field == "roles" and "QA.yaml" in message
