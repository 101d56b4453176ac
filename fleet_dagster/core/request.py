"""The deliberation request: one model for the CLI, the launchpad config and the NATS bridge."""

import re
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fleet_dagster.core.profiles import available_roles

DELIBERATION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
DEFAULT_ROLES = ("DEV", "QA", "ARCHITECT")


def new_deliberation_id() -> str:
    return f"delib-{uuid.uuid4().hex[:12]}"


class DeliberationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: str = Field(min_length=1, max_length=20_000)
    roles: list[str] = Field(default_factory=lambda: list(DEFAULT_ROLES), min_length=1)
    agents_per_role: int = Field(3, ge=1, le=16)
    rounds: int = Field(1, ge=0, le=5)
    rubric: str = Field("", max_length=20_000)
    requirements: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    deliberation_id: str = Field(default_factory=new_deliberation_id, pattern=DELIBERATION_ID_PATTERN)
    deadline_s: float = Field(900.0, gt=0, le=86_400)
    review_mode: Literal["ring", "all"] = "ring"
    selection: Literal["score", "architect"] = "score"
    select_top_k: int = Field(3, ge=2, le=16)

    @field_validator("task")
    @classmethod
    def task_not_blank(cls, task: str) -> str:
        if not task.strip():
            raise ValueError("task must not be blank")
        return task

    @field_validator("roles")
    @classmethod
    def roles_have_profiles(cls, roles: list[str]) -> list[str]:
        normalized = [r.strip().upper() for r in roles]
        known = available_roles()
        unknown = [r for r in normalized if r not in known]
        if unknown:
            raise ValueError(f"unknown role(s) {', '.join(unknown)}; roles with a profile: {', '.join(known)}")
        if len(set(normalized)) != len(normalized):
            raise ValueError("roles must not repeat")
        return normalized

    @field_validator("deliberation_id", mode="before")
    @classmethod
    def generate_when_absent(cls, value: str | None) -> str:
        return new_deliberation_id() if value is None else value

    @model_validator(mode="after")
    def requirements_not_blank(self) -> "DeliberationRequest":
        if any(not r.strip() for r in self.requirements):
            raise ValueError("requirements must not contain blank entries")
        return self

    @property
    def expected_count(self) -> int:
        return len(self.roles) * self.agents_per_role


def agent_id(role: str, index: int) -> str:
    return f"agent-{role.lower()}-{index + 1:03d}"


class RequestError(ValueError):
    """A request that failed validation, with one (field, message) per problem."""

    def __init__(self, errors: list[tuple[str, str]]):
        self.errors = errors
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors))


def parse_request(data: dict[str, Any]) -> DeliberationRequest:
    try:
        return DeliberationRequest.model_validate(data)
    except ValidationError as exc:
        raise RequestError(describe_validation_errors(exc)) from None


def describe_validation_errors(exc: ValidationError) -> list[tuple[str, str]]:
    errors = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "request"
        message = re.sub(r"^Value error, ", "", error["msg"])
        errors.append((field, message))
    return errors
