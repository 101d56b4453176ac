"""Final answers (what votes count) and the token ledger, as plain functions."""

import asyncio
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet_dagster.core.answers import MAX_ANSWER_CHARS, MAX_ANSWER_TEXT_CHARS, final_answer
from fleet_dagster.core.budget import LocalTokenBudget, TokenLedger


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("3 + 4 = 7\nAnswer: 7", "7"),
        ("Answer: 1,000.\nsome words after", "1000"),
        ("answer = **12.0**", "12"),
        ("Answer: 3\nno wait\nAnswer: 4", "4"),  # the last line counts
        ("> **Answer:** Use Redis.", "use redis"),
        ('{"answer": "B", "why": "simpler"}', "b"),
        ('```json\n{"answer": 42}\n```', "42"),
        ("The answer is 7", None),  # not the stated form
        ("Answer:   ", None),
        (f"Answer: {'x' * (MAX_ANSWER_CHARS + 1)}", None),
        ('{"answer": true}', None),
        (None, None),
    ],
)
def test_final_answer(text, answer):
    assert final_answer(text) == answer


@given(st.text(max_size=2000))
def test_final_answer_never_raises(text):
    answer = final_answer(text)
    assert answer is None or 0 < len(answer) <= MAX_ANSWER_CHARS


def test_the_ledger_never_lets_reservations_pass_the_limit_across_threads():
    ledger = TokenLedger(1000)
    granted = []

    def spend():
        for _ in range(100):
            if ledger.reserve(30):
                granted.append(30)
                ledger.settle(30, 20)  # the call used less than its estimate

    threads = [threading.Thread(target=spend) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ledger.used <= 1000 and ledger.held == 0
    assert ledger.used == 20 * len(granted) and ledger.used > 1000 - 30


def test_a_local_budget_refuses_what_would_pass_and_frees_a_failed_calls_reservation():
    budget = LocalTokenBudget(TokenLedger(100))

    async def scenario():
        assert await budget.reserve(60)
        assert not await budget.reserve(60)  # 60 held + 60 > 100
        await budget.settle(60, 0)  # failed unanswered: nothing used
        assert await budget.reserve(100)

    asyncio.run(scenario())


def test_an_answer_line_ends_at_its_line():
    """The prefix and the answer stay on one line: a pattern free to cross newlines retries from each of them
    (quadratic: seconds on 24,000 newlines), and "Answer:" with nothing after it states no answer."""
    assert final_answer("Answer:\n42") is None
    assert final_answer("Answer:\n\nAnswer: 42") == "42"


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("\n" * 24_000 + "Answer: 7", "7"),
        ("\n" * 24_000 + "x", None),
        ("Answer: 7" + " " * 24_000 + "\n", "7"),
        (">" * 24_000 + "\n" * 24_000, None),
        ("answer:\n" * 24_000 + "Answer: 9", "9"),
    ],
    ids=["newlines", "newlines-no-answer", "trailing-spaces", "prefix-marks", "empty-answer-lines"],
)
def test_hostile_shapes_are_read_correctly(text, answer):
    assert final_answer(text) == answer


def test_only_the_end_of_a_huge_text_is_searched_for_an_answer_line():
    assert final_answer("Answer: 7\n" + "x " * MAX_ANSWER_TEXT_CHARS) is None
    assert final_answer("x " * MAX_ANSWER_TEXT_CHARS + "\nAnswer: 7") == "7"


HOSTILE_LINE = st.lists(st.sampled_from([*" \t\n>*_#-:=aA", "answer", "Answer:", "x"]), max_size=400).map("".join)


@given(HOSTILE_LINE, st.integers(-(10**6), 10**6))
def test_a_last_answer_line_is_read_after_any_hostile_text(before, number):
    assert final_answer(f"{before}\nAnswer: {number}\n") == str(number)
