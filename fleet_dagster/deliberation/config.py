"""Launchpad / run config: every field but `task` has a default."""

from typing import Any, Literal

import dagster as dg
from pydantic import Field

from fleet_dagster.core.request import (
    DEFAULT_ROLES,
    MAX_AGENTS_PER_ROLE,
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MAX_REQUIREMENT_CHARS,
    MAX_REQUIREMENTS,
    MAX_TASK_CHARS,
    DeliberationRequest,
    parse_request,
)


class DeliberationConfig(dg.Config):
    task: str = Field(
        description=f"What the councils deliberate on (1..{MAX_TASK_CHARS:,} characters, and what each role's "
        "model context holds with its prompts and answers)."
    )
    roles: list[str] = Field(default=list(DEFAULT_ROLES), description="Roles with a profile in resources/roles/.")
    agents_per_role: int = Field(default=3, description=f"1..{MAX_AGENTS_PER_ROLE} agents in each council.")
    rounds: int = Field(default=1, description="0..5 review-and-revise rounds.")
    rubric: str = Field(default="", description="Extra rubric text; its lines count towards coverage.")
    requirements: list[str] = Field(
        default=[],
        description=f"Requirements a proposal must address (at most {MAX_REQUIREMENTS}, "
        f"{MAX_REQUIREMENT_CHARS:,} characters each).",
    )
    metadata: dict[str, Any] = Field(
        default={},
        description=f"Free-form JSON, carried along (at most {MAX_METADATA_BYTES:,} bytes, "
        f"{MAX_METADATA_DEPTH} levels deep).",
    )
    deadline_s: float = Field(default=900.0, description="Deadline of the whole deliberation, in seconds.")
    review_mode: Literal["ring", "all"] = Field(default="ring", description="ring: i reviews i+1; all: everyone.")
    selection: Literal["score", "architect"] = Field(default="score", description="How each role's winner is chosen.")
    select_top_k: int = Field(default=3, description="Finalists the architect chooses among.")

    def to_request(self, deliberation_id: str) -> DeliberationRequest:
        """Raises fleet_dagster.core.request.RequestError naming every bad field."""
        return parse_request({**self.model_dump(), "deliberation_id": deliberation_id})
