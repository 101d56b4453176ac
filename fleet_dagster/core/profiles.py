"""Role profiles: `resources/roles/<ROLE>.yaml`."""

from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, Field

from fleet_dagster.core.resource_files import resources_dir


class RoleProfile(BaseModel):
    role: str
    system_prompt: str
    model: str = Field(description="Model name on the OpenAI-compatible endpoint that serves this role.")
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    temperature_spread: float = Field(
        0.3, ge=0.0, le=1.0, description="Agents' temperatures are spread over +/- this around `temperature`."
    )
    max_tokens: int = Field(512, ge=16, le=32768)
    rubric: list[str] = Field(min_length=1, description="Criteria each reviewer scores from 1 to 10.")


def roles_dir() -> Path:
    return resources_dir() / "roles"


@cache
def available_roles() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in roles_dir().glob("*.yaml")))


@cache
def load_profile(role: str) -> RoleProfile:
    path = roles_dir() / f"{role}.yaml"
    data = yaml.safe_load(path.read_text())
    return RoleProfile.model_validate({"role": role, **data})
