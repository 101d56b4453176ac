from fleet_dagster.core.records import AgentCall, CouncilResult, Proposal, Selection
from fleet_dagster.core.selection import blind_order, parse_architect_choice, rank, select_by_score, select_by_vote
from fleet_dagster.core.status import DeliberationStatus, final_status


def proposal(agent: str, score: float | None, peer: float | None = None, coverage: float | None = None) -> Proposal:
    return Proposal(
        role="DEV",
        agent_id=agent,
        round=1,
        content=None if score is None else "x",
        temperature=0.5,
        seed=1,
        score=score,
        peer_score=peer,
        coverage=coverage,
    )


def council(
    role: str,
    proposals: list[Proposal],
    failed_calls: int = 0,
    timed_out: bool = False,
    error: str | None = None,
) -> CouncilResult:
    calls = [AgentCall(agent_id="a", role=role, phase="propose", round=0, ok=True)]
    calls += [AgentCall(agent_id="a", role=role, phase="review", round=1, ok=False, error="x")] * failed_calls
    return CouncilResult(
        role=role,
        expected_agents=len(proposals),
        proposals=proposals,
        reviews=[],
        calls=calls,
        selection=Selection(winner=None, method="score", rationale=""),
        timed_out=timed_out,
        error=error,
        started_at=0,
        finished_at=1,
    )


def test_completed_when_every_call_succeeded():
    assert final_status(["DEV"], [council("DEV", [proposal("a", 5)])]) is DeliberationStatus.COMPLETED


def test_partial_when_some_call_failed_but_every_role_has_a_proposal():
    councils = [
        council("DEV", [proposal("a", 5), proposal("b", None)], failed_calls=1),
        council("QA", [proposal("c", 1)]),
    ]
    assert final_status(["DEV", "QA"], councils) is DeliberationStatus.PARTIAL


def test_failed_when_a_role_has_no_scored_proposal_or_is_missing():
    assert (
        final_status(["DEV", "QA"], [council("DEV", [proposal("a", 5)]), council("QA", [proposal("b", None)])])
        is DeliberationStatus.FAILED
    )
    assert final_status(["DEV", "QA"], [council("DEV", [proposal("a", 5)])]) is DeliberationStatus.FAILED


def test_council_error_is_partial_while_its_role_has_a_scored_proposal():
    councils = [council("DEV", [proposal("a", 5)], error="RuntimeError: x"), council("QA", [proposal("b", 3)])]
    assert final_status(["DEV", "QA"], councils) is DeliberationStatus.PARTIAL
    councils[0] = council("DEV", [proposal("a", None)], error="the council was lost on Ray")
    assert final_status(["DEV", "QA"], councils) is DeliberationStatus.FAILED


def test_timeout_wins_and_keeps_results():
    councils = [council("DEV", [proposal("a", 5)], timed_out=True)]
    assert final_status(["DEV"], councils) is DeliberationStatus.TIMEOUT


def test_rank_breaks_ties_deterministically():
    proposals = [proposal("c", 5, 6), proposal("b", 5, 7), proposal("a", 5, 7), proposal("d", None), proposal("e", 9)]
    assert [p.agent_id for p in rank(proposals)] == ["e", "a", "b", "c"]
    assert select_by_score(proposals).winner == "e"
    assert select_by_score([proposal("x", None)]).winner is None


def test_architect_choice_must_name_a_finalist_by_its_label():
    finalists = [proposal("agent-dev-001", 5), proposal("agent-dev-002", 4)]
    choice = parse_architect_choice('{"winner": "B", "rationale": "simpler"}', finalists)
    assert choice.winner == "agent-dev-002" and choice.method == "architect" and choice.rationale == "simpler"
    assert choice.candidate_order == ["agent-dev-001", "agent-dev-002"]
    assert parse_architect_choice('{"winner": "C"}', finalists) is None
    assert parse_architect_choice('{"winner": "agent-dev-001"}', finalists) is None  # ids are never shown
    assert parse_architect_choice("I like the second one", finalists) is None


def test_the_architect_sees_finalists_in_a_seeded_shuffled_order():
    finalists = [proposal(f"agent-dev-{i:03d}", 9 - i) for i in range(5)]
    orders = {tuple(p.agent_id for p in blind_order(finalists, seed)) for seed in range(8)}
    assert len(orders) > 1  # not by score: the best is not always first
    assert blind_order(finalists, 3) == blind_order(finalists, 3)
    assert sorted(p.agent_id for p in blind_order(finalists, 3)) == [p.agent_id for p in finalists]


def test_architect_choice_in_hostile_answers_is_none():
    finalists = [proposal("agent-dev-001", 5), proposal("agent-dev-002", 4)]
    for raw in ['{"winner": ' + "[" * 1000, '{"a":' * 1000, "{" * 100_000]:
        assert parse_architect_choice(raw, finalists) is None
    assert parse_architect_choice('{"winner": ["A"]}', finalists) is None


def test_a_budget_that_left_calls_unmade_is_partial_and_agents_that_agreed_are_complete():
    stopped = council("DEV", [proposal("a", 5)]).model_copy(update={"budget_exhausted": True, "calls_not_made": 3})
    assert final_status(["DEV"], [stopped]) is DeliberationStatus.PARTIAL
    agreed = council("DEV", [proposal("a", 5)]).model_copy(update={"early_stop": "agree", "calls_saved": 6})
    assert final_status(["DEV"], [agreed]) is DeliberationStatus.COMPLETED


def answering(agent: str, score: float, answer: str | None, flags: list[str] | None = None) -> Proposal:
    return proposal(agent, score).model_copy(update={"answer": answer, "flags": flags or []})


def test_vote_picks_the_most_frequent_final_answer_and_its_best_proposal():
    proposals = [
        answering("a", 9.5, "9"),  # the best score, alone with its answer
        answering("b", 6.0, "7"),
        answering("c", 7.0, "7"),
        answering("d", 8.0, None),  # states no answer: no vote
    ]
    selection = select_by_vote(proposals)
    assert selection.method == "vote" and selection.answer == "7" and selection.winner == "c"
    assert selection.votes == {"7": 2, "9": 1}
    assert "2 of 3 final answers are '7'" in selection.rationale


def test_a_tie_goes_to_the_answer_whose_best_proposal_scores_higher():
    proposals = [answering("a", 5.0, "1"), answering("b", 8.0, "2"), answering("c", 6.0, "1"), answering("d", 7, "2")]
    selection = select_by_vote(proposals)
    assert selection.answer == "2" and selection.winner == "b" and selection.votes == {"1": 2, "2": 2}


def test_flagged_proposals_do_not_vote_while_unflagged_ones_exist():
    proposals = [
        answering("a", 9.0, "5", ["loop: x"]),
        answering("b", 9.0, "5", ["echo: x"]),
        answering("c", 4.0, "6"),
    ]
    selection = select_by_vote(proposals)
    assert selection.winner == "c" and selection.votes == {"6": 1}
    assert "2 flagged proposals set aside" in selection.rationale


def test_vote_without_any_final_answer_falls_back_to_the_score():
    selection = select_by_vote([answering("a", 3.0, None), answering("b", 4.0, None)])
    assert (
        selection.winner == "b"
        and selection.method == "score"
        and "no proposal states a final answer" in (selection.rationale)
    )
