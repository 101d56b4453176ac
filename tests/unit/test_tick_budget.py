"""The request sensor's time budget: set by the deployment, refused with its name when it cannot be one."""

import pytest

from fleet_dagster.deliberation.tick_budget import MIN_STEP_S, TICK_BUDGET_ENV, TickBudget


@pytest.mark.parametrize("raw", ["x", "0", "-3", "nan", "100"])
def test_a_budget_that_is_not_seconds_under_dagsters_limit_is_refused_by_name(monkeypatch, raw):
    monkeypatch.setenv(TICK_BUDGET_ENV, raw)
    with pytest.raises(ValueError, match=TICK_BUDGET_ENV):
        TickBudget.start()


def test_a_spent_budget_still_lets_a_step_run_briefly_and_triages_nothing_more(monkeypatch):
    monkeypatch.setenv(TICK_BUDGET_ENV, "20")
    budget = TickBudget.start()
    assert budget.has_time() and budget.for_step_s(10.0) == 10.0
    spent = TickBudget(ends_at=budget.ends_at - 20, reserve_s=budget.reserve_s)
    assert not spent.has_time() and spent.for_step_s(10.0) == spent.after_triage_s(5.0) == MIN_STEP_S
