"""The request sensor's time budget: set by the deployment, refused with its name when it cannot be one."""

import pytest

from fleet_dagster.core.env_settings import SettingsError
from fleet_dagster.deliberation.intake_settings import IntakeSettings
from fleet_dagster.deliberation.tick_budget import MIN_STEP_S, TickBudget

BUDGET = IntakeSettings.variables()["tick_budget_s"]


@pytest.mark.parametrize("raw", ["x", "0", "-3", "nan", "100"])
def test_a_budget_that_is_not_seconds_under_dagsters_limit_is_refused_by_name(raw):
    with pytest.raises(SettingsError, match=BUDGET):
        IntakeSettings.from_environ({BUDGET: raw})


def test_a_spent_budget_still_lets_a_step_run_briefly_and_triages_nothing_more():
    budget = TickBudget.start(IntakeSettings.from_environ({BUDGET: "20"}).tick_budget_s)
    assert budget.has_time() and budget.for_step_s(10.0) == 10.0
    spent = TickBudget(ends_at=budget.ends_at - 20, reserve_s=budget.reserve_s)
    assert not spent.has_time() and spent.for_step_s(10.0) == spent.after_triage_s(5.0) == MIN_STEP_S
