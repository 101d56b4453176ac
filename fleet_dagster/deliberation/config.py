"""Launchpad / run config: every field but `task` has a default."""

from typing import Any, Literal

import dagster as dg
from pydantic import Field

from fleet_dagster.core.request import DEFAULT_ROLES, DeliberationRequest, parse_request


class DeliberationConfig(dg.Config):
    task: str = Field(description="What the councils deliberate on (1..20,000 characters).")
    roles: list[str] = Field(default=list(DEFAULT_ROLES), description="Roles with a profile in resources/roles/.")
    agents_per_role: int = Field(default=3, description="1..16 agents in each council.")
    rounds: int = Field(default=1, description="0..5 review-and-revise rounds.")
    rubric: str = Field(default="", description="Extra rubric text; its lines count towards coverage.")
    requirements: list[str] = Field(default=[], description="Requirements a proposal must address.")
    metadata: dict[str, Any] = Field(default={}, description="Free-form, carried along.")
    deadline_s: float = Field(default=900.0, description="Deadline of the whole deliberation, in seconds.")
    review_mode: Literal["ring", "all"] = Field(default="ring", description="ring: i reviews i+1; all: everyone.")
    selection: Literal["score", "architect"] = Field(default="score", description="How each role's winner is chosen.")
    select_top_k: int = Field(default=3, description="Finalists the architect chooses among.")

    def to_request(self, deliberation_id: str) -> DeliberationRequest:
        """Raises fleet_dagster.core.request.RequestError naming every bad field."""
        return parse_request({**self.model_dump(), "deliberation_id": deliberation_id})
