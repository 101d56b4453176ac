"""Final answers (what votes count) and the token ledger, as plain functions."""

import asyncio
import threading

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from fleet_dagster.core.answers import MAX_ANSWER_CHARS, MAX_ANSWER_TEXT_CHARS, final_answer
from fleet_dagster.core.budget import LocalTokenBudget, TokenLedger, bounded_prompt_tokens, bounded_text_tokens
from fleet_dagster.sim_llm.server import prompt_tokens as sim_prompt_tokens
from fleet_dagster.sim_llm.server import text_tokens as sim_text_tokens


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

    def spend(thread: int):
        for call in range(100):
            key = f"{thread}/{call}"
            if ledger.reserve(key, 30):
                granted.append(30)
                ledger.settle(key, 20, replayed=False)  # the call used less than its estimate

    threads = [threading.Thread(target=spend, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ledger.used <= 1000 and ledger.held == 0
    assert ledger.used == 20 * len(granted) and ledger.used > 1000 - 30


def test_a_local_budget_refuses_what_would_pass_and_frees_a_failed_calls_reservation():
    budget = LocalTokenBudget(TokenLedger(100))

    async def scenario():
        assert await budget.reserve("a", 60)
        assert not await budget.reserve("b", 60)  # 60 held + 60 > 100
        await budget.settle("a", 0, replayed=False)  # failed unanswered: nothing used
        assert await budget.reserve("b", 100)

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


def test_a_call_asked_again_is_charged_once():
    """A council restarted on another runner asks its calls again: the answered ones come from the store, and
    one its lost predecessor was making settles the reservation that predecessor held."""
    ledger = TokenLedger(100)
    assert ledger.reserve("answered", 50) and ledger.reserve("in-flight", 40)
    ledger.settle("answered", 45, replayed=False)
    # The restarted council: no room for either estimate, yet neither is refused nor charged again.
    assert ledger.reserve("answered", 50) and ledger.reserve("in-flight", 40)
    ledger.settle("answered", 45, replayed=True)
    ledger.settle("in-flight", 35, replayed=True)
    assert (ledger.used, ledger.held) == (80, 0)
    ledger.settle("answered", 45, replayed=False)  # made again (no store): it cost again
    assert ledger.used == 125 and not ledger.reserve("new", 1)


def test_a_ledger_rebuilt_from_its_charges_goes_on_where_it_was():
    ledger = TokenLedger(100)
    assert ledger.reserve("held", 30) and ledger.reserve("settled", 30)
    ledger.settle("settled", 25, replayed=False)
    again = TokenLedger(100, ledger.charges)
    assert (again.used, again.held) == (25, 30)
    assert again.reserve("held", 30) and not again.reserve("new", 50)


@given(st.text(max_size=3000))
@example("A0A")  # hypothesis found it: a digit ends a run of letters, and each run starts a token of its own
@example("a1b2c3d4")
def test_the_fallback_count_bounds_a_tokenizer_that_counts_digits(text):
    """The sim counts as real tokenizers do with numbers (a token a digit, a word a token): the bound holds."""
    assert bounded_text_tokens(text) >= sim_text_tokens(text)
    messages = [{"role": "system", "content": text[:100]}, {"role": "user", "content": text}]
    assert bounded_prompt_tokens(messages) >= sim_prompt_tokens(messages)
