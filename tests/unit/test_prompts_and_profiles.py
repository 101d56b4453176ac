import os
import shutil

import pytest

from fleet_dagster.core.profiles import ProfileError, available_roles, load_profile
from fleet_dagster.core.prompts import chat_messages, render
from fleet_dagster.core.records import Review
from fleet_dagster.core.resource_files import resources_dir


def test_every_role_profile_loads():
    assert {"DEV", "QA", "ARCHITECT", "DEVOPS", "DATA"} <= set(available_roles())
    for role in available_roles():
        profile = load_profile(role)
        assert profile.role == role and profile.rubric and profile.system_prompt


def test_resources_found_from_an_override(tmp_path, monkeypatch):
    (tmp_path / "roles").mkdir()
    monkeypatch.setenv("FLEET_RESOURCES_DIR", str(tmp_path))
    assert resources_dir() == tmp_path


@pytest.fixture
def resources_copy(tmp_path, monkeypatch):
    """A copy of resources/ where profiles can be edited, as a ConfigMap is on Kubernetes."""
    shutil.copytree(resources_dir(), tmp_path, dirs_exist_ok=True)
    monkeypatch.setenv("FLEET_RESOURCES_DIR", str(tmp_path))
    return tmp_path


def test_an_edited_profile_reaches_the_next_load(resources_copy):
    path = resources_copy / "roles" / "DEV.yaml"
    assert load_profile("DEV").temperature == 0.7
    stat = path.stat()
    # Same size and the same modification time: only the content tells the edit apart.
    path.write_text(path.read_text().replace("temperature: 0.7", "temperature: 0.2"))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert load_profile("DEV").temperature == 0.2


def test_a_new_profile_file_is_a_new_role(resources_copy):
    assert "WIZARD" not in available_roles()
    (resources_copy / "roles" / "WIZARD.yaml").write_text(
        (resources_copy / "roles" / "DEV.yaml").read_text().replace("software developer", "wizard")
    )
    assert "WIZARD" in available_roles()
    assert "wizard" in load_profile("WIZARD").system_prompt


def test_context_tokens_default_and_per_profile(resources_copy):
    path = resources_copy / "roles" / "QA.yaml"
    path.write_text("\n".join(line for line in path.read_text().splitlines() if "context_tokens" not in line))
    assert load_profile("QA").context_tokens == 8192
    path.write_text(path.read_text() + "\ncontext_tokens: 32768\n")
    assert load_profile("QA").context_tokens == 32768


@pytest.mark.parametrize("text", ["", "- a list\n", "model: [unclosed\n", "system_prompt: s\nmodel: m\nrubric: []\n"])
def test_a_broken_profile_is_a_profile_error(resources_copy, text):
    (resources_copy / "roles" / "DEV.yaml").write_text(text)
    with pytest.raises(ProfileError, match="DEV.yaml"):
        load_profile("DEV")


def test_propose_prompt_lists_requirements():
    text = render(
        "propose",
        task="Build X",
        role="DEV",
        agent_id="agent-dev-001",
        requirements=["must log", "must retry"],
        rubric="",
    )
    assert "Build X" in text and "- must log" in text and "- must retry" in text and "agent-dev-001" in text


def test_review_prompt_asks_for_every_criterion():
    text = render(
        "review",
        task="T",
        requirements=[],
        proposal="P",
        reviewer_id="b",
        criteria=["correctness", "simplicity"],
    )
    assert '"correctness": <integer 1-10>, "simplicity": <integer 1-10>' in text


def test_revise_prompt_carries_parsed_and_unparsed_reviews():
    reviews = [
        Review(reviewer="r1", author="a", round=1, parsed=True, scores={"x": 3}, weaknesses=["slow"]),
        Review(reviewer="r2", author="a", round=1, parsed=False, raw="meh it is fine"),
    ]
    messages = chat_messages("SYS", "revise", task="T", requirements=[], proposal="P", reviews=reviews, round=1)
    assert messages[0] == {"role": "system", "content": "SYS"}
    assert "slow" in messages[1]["content"] and "meh it is fine" in messages[1]["content"]
