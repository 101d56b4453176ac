"""Form before merit: crafted degenerate proposals are flagged with the reason, sound ones are not, and neither
copying the task nor a flagged proposal's score can win."""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet_dagster.core.form import form_flags, own_words
from fleet_dagster.core.records import Proposal
from fleet_dagster.core.scoring import coverage_items, score_proposal
from fleet_dagster.core.selection import rank, select_by_score

TASK = "Design a rate limiter for the public API gateway. It must survive a restart of any replica."
SYSTEM = "You are a senior software developer on a council of developers."
SOUND = """A token bucket per API key, kept in Redis with a Lua script so that every replica shares it.
On restart a replica reads the buckets back from Redis, so no client gets a fresh allowance.
```python
def allow(bucket, now):
    return bucket.take(now)
```"""


def proposal(content: str | None, agent: str = "agent-dev-001") -> Proposal:
    return Proposal(role="DEV", agent_id=agent, round=0, content=content, temperature=0.7, seed=1)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("", "empty"),
        ("   \n\t ", "empty"),
        ("OK", "empty"),
        ("QA QA Agent, " * 60, "loop"),  # the QA proposal
        ("<" * 400, "empty"),  # no words at all
        ("My plan: " + "=-" * 200, "loop"),  # one pattern of characters over and over
        ("Step 1: check the limit. " * 30, "loop"),
        (f"<<< {TASK} {TASK} {TASK} {TASK} >>>", "echo"),  # the DEV winner, less its loop
        (f"{SYSTEM} {TASK}", "echo"),
    ],
)
def test_degenerate_text_is_flagged_with_its_reason(text: str, kind: str):
    flags = form_flags(text, [SYSTEM, TASK])
    assert [flag.split(":")[0] for flag in flags].count(kind) == 1, flags
    assert all(": " in flag and flag.split(": ", 1)[1] for flag in flags)  # a reason, not just a kind


@pytest.mark.parametrize(
    "text",
    [
        SOUND,
        "Answer: 42",
        # Quoting the task once, then writing an answer of its own, is sound.
        f"The task: {TASK}\n{SOUND}",
        Path(__file__).read_text()[:3000],  # code
    ],
)
def test_sound_text_is_not_flagged(text: str):
    assert form_flags(text, [SYSTEM, TASK]) == []


def test_no_text_has_no_flags():
    assert form_flags(None, [TASK]) == []


def test_a_short_prompt_copied_whole_is_an_echo():
    assert form_flags("What is 3 + 4 ? What is 3 + 4 ?", ["What is 3 + 4?"])[0].startswith("echo")


@given(st.text(max_size=3000), st.lists(st.text(max_size=300), max_size=4))
def test_flags_never_raise_on_any_text(text: str, sources: list[str]):
    flags = form_flags(text, sources)
    assert all(flag.split(":")[0] in {"empty", "loop", "echo"} for flag in flags)


def test_coverage_cannot_be_earned_by_copying_the_task():
    items = coverage_items(TASK, [], "")
    copied = score_proposal(proposal(f"{TASK}\n{TASK}"), [], items, [SYSTEM, TASK])
    assert copied.coverage == 0.0
    assert copied.flags and copied.flags[0].startswith("echo")
    own = score_proposal(
        proposal(
            "Our design: a rate limiter in front of the public API gateway; its state survives any replica restart."
        ),
        [],
        items,
        [SYSTEM, TASK],
    )
    assert own.coverage == 1.0 and own.flags == []
    assert own_words(f"{TASK} tokens", [TASK]) == "tokens"


def test_a_flagged_proposal_never_wins_while_an_unflagged_one_exists():
    items = coverage_items(TASK, [], "")
    echo = score_proposal(proposal(f"{TASK} {TASK}", "agent-dev-001"), [], items, [TASK])
    loop = score_proposal(proposal("QA QA Agent, " * 60, "agent-dev-002"), [], items, [TASK])
    weak = score_proposal(proposal("Some words about limits that say little.", "agent-dev-003"), [], items, [TASK])
    # Peers (small models too) may score degenerate text higher: form still comes first.
    echo, loop = (p.model_copy(update={"score": 9.9}) for p in (echo, loop))
    assert [p.agent_id for p in rank([echo, loop, weak])][0] == "agent-dev-003"
    selection = select_by_score([echo, loop, weak])
    assert selection.winner == "agent-dev-003" and "2 flagged" in selection.rationale
    # With nothing else left, a flagged proposal still wins (and says so): a weak answer beats none.
    only_flagged = select_by_score([echo, loop])
    assert only_flagged.winner == "agent-dev-001" and "flagged" in only_flagged.rationale
