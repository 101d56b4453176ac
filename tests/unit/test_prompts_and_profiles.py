from fleet_dagster.core.profiles import available_roles, load_profile
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
        author_id="a",
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
