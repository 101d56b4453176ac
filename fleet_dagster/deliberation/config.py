"""Launchpad / run config: the request's fields, with the request's defaults and descriptions.

What Dagster's config schema can say, it says here, so the launchpad refuses before launch and helps while
typing: the roles are an enum of the profiles found. Bounds it cannot express are checked by the
config mapping (see assets.py), which names every bad field.
"""

import enum
from typing import Any

import dagster as dg
from pydantic import Field

from fleet_dagster.core.admission import Priority
from fleet_dagster.core.execution import Language
from fleet_dagster.core.profiles import available_roles
from fleet_dagster.core.records import ReviewMode, SelectionMethod
from fleet_dagster.core.request import DeliberationRequest, parse_request

Role = enum.StrEnum("Role", {role: role for role in available_roles()})  # type: ignore[misc]  # built from the profiles


def unlaunchable_roles(request: DeliberationRequest) -> list[tuple[str, str]]:
    """Roles whose profile came after this code location loaded: the request is valid, but no run config with
    them passes `Role` (so the daemon could not create the run) until the code location is reloaded."""
    missing = [role for role in request.roles if role not in Role.__members__]
    if not missing:
        return []
    message = (
        f"role(s) {', '.join(missing)}: profile added after the code location loaded; its run config accepts "
        f"{', '.join(Role.__members__)}: reload the code location, then publish the request again"
    )
    return [("roles", message)]


def _as_in_request(name: str) -> Any:
    """The request field's default and description: declared once, in DeliberationRequest."""
    field = DeliberationRequest.model_fields[name]
    if field.is_required():
        return Field(description=field.description)
    return Field(default=field.get_default(call_default_factory=True), description=field.description)


class DeliberationConfig(dg.Config):
    task: str = _as_in_request("task")
    roles: list[Role] = _as_in_request("roles")
    agents_per_role: int = _as_in_request("agents_per_role")
    rounds: int = _as_in_request("rounds")
    rubric: str = _as_in_request("rubric")
    requirements: list[str] = _as_in_request("requirements")
    metadata: dict[str, Any] = _as_in_request("metadata")
    deadline_s: float = _as_in_request("deadline_s")
    review_mode: ReviewMode = _as_in_request("review_mode")
    agent_models: list[str] = _as_in_request("agent_models")
    cross_model_reviews: bool = _as_in_request("cross_model_reviews")
    selection: SelectionMethod = _as_in_request("selection")
    priority: Priority = _as_in_request("priority")
    select_top_k: int = _as_in_request("select_top_k")
    max_total_tokens: int | None = _as_in_request("max_total_tokens")
    replay_answers: bool = _as_in_request("replay_answers")
    traceparent: str | None = _as_in_request("traceparent")
    entry_point: str | None = _as_in_request("entry_point")
    language: Language = _as_in_request("language")
    module: str = _as_in_request("module")
    tests: str = _as_in_request("tests")
    test_timeout_s: float = _as_in_request("test_timeout_s")
    test_memory_mb: int = _as_in_request("test_memory_mb")
    test_output_bytes: int = _as_in_request("test_output_bytes")

    def to_request(self, deliberation_id: str) -> DeliberationRequest:
        """Raises fleet_dagster.core.request.RequestError naming every bad field."""
        return parse_request({**self.model_dump(mode="json"), "deliberation_id": deliberation_id})
