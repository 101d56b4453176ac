"""Role profiles: `resources/roles/<ROLE>.yaml`.

Read from disk on every call: the long-lived Ray actors that start councils must see a profile as it is now (on
Kubernetes the folder is a ConfigMap, edited while they run, and an edit may keep the file's size and time).
Parsed once per content: a run asks for each profile about thirty times (config checks, request parse,
preflight, councils), and a parse takes 3 ms where a read takes microseconds.
"""

import functools
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fleet_dagster.core.resource_files import resources_dir

DEFAULT_CONTEXT_TOKENS = 8192
# What a role writes for a code task: the solution, run against the tests, or tests, run against every solution.
CodeWork = Literal["solution", "tests"]


class ProfileError(ValueError):
    """A role profile that cannot be read or is not a valid profile."""


# A served model's name as a request or profile may give it: vLLM serves Hugging Face ids ("org/name"), gateways
# add tags ("name:tag", "name@version").
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/@+-]{0,127}$"
# Kinds of agent in one council: each is a model (and its settings) some of the council's agents use.
MAX_AGENT_KINDS = 16


class AgentKind(BaseModel):
    """Agents of one kind in a council: a model, and what they use instead of the role's settings."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(pattern=MODEL_NAME_PATTERN, description="A model the deployment serves.")
    temperature: float | None = Field(
        None, ge=0.0, le=2.0, description="Every agent of this kind samples at it (default: the role's spread)."
    )
    system_prompt: str | None = Field(
        None,
        min_length=1,
        description="A variant of the role's system prompt for text tasks (default: the role's; a code task "
        "uses the role's code_system_prompt).",
    )
    weight: int = Field(1, ge=1, le=16, description="Its share of the council's agents, against the other kinds'.")


class RoleProfile(BaseModel):
    model_config = ConfigDict(frozen=True)  # shared by every caller of load_profile

    role: str
    system_prompt: str
    model: str = Field(description="Model name on the OpenAI-compatible endpoint that serves this role.")
    # A code task asks each role for code of one kind, or for text as any other task.
    code_work: CodeWork | None = Field(
        None,
        description="What this role writes for a code task: the solution (run against the tests), tests (run "
        "against every solution), or nothing of its own (unset: it deliberates in text).",
    )
    code_system_prompt: str | None = Field(
        None,
        description="The system prompt for a code task, when the role writes code: short, as small models "
        "code worse under a long role prompt (default: system_prompt).",
    )
    agents: list[AgentKind] = Field(
        default_factory=list,
        max_length=MAX_AGENT_KINDS,
        description="The kinds of agent a council of this role mixes (core/agent_mix.py says how); none: every "
        "agent uses `model`.",
    )
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    temperature_spread: float = Field(
        0.3, ge=0.0, le=1.0, description="Agents' temperatures are spread over +/- this around `temperature`."
    )
    max_tokens: int = Field(512, ge=16, le=32768)
    context_tokens: int = Field(
        DEFAULT_CONTEXT_TOKENS,
        ge=512,
        le=2_097_152,
        description="Context window of the model serving this role, prompt and answer together, in tokens "
        "(vLLM's --max-model-len). A request whose prompts cannot fit is refused.",
    )
    rubric: list[str] = Field(min_length=1, description="Criteria each reviewer scores from 1 to 10.")
    # Repetition controls: small models loop ("QA QA Agent, QA QA Agent, ...") without them.
    frequency_penalty: float = Field(
        0.0, ge=-2.0, le=2.0, description="OpenAI's frequency_penalty: lowers a token's odds by how often it came."
    )
    presence_penalty: float = Field(
        0.0, ge=-2.0, le=2.0, description="OpenAI's presence_penalty: lowers the odds of any token that came."
    )
    repetition_penalty: float | None = Field(
        None,
        gt=0.0,
        le=2.0,
        description="The engines' own multiplicative penalty (vLLM's repetition_penalty, llama.cpp's "
        "repeat_penalty; 1.0 is none); not sent when unset, for servers that accept neither.",
    )


def roles_dir() -> Path:
    return resources_dir() / "roles"


def available_roles() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in roles_dir().glob("*.yaml")))


def load_profile(role: str) -> RoleProfile:
    """Raises ProfileError, naming the file, when the profile cannot be read or is invalid."""
    path = roles_dir() / f"{role}.yaml"
    try:
        return _parsed_profile(role, path, path.read_text())
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ProfileError(f"role profile {path}: {exc}") from None


@functools.lru_cache(maxsize=256)
def _parsed_profile(role: str, path: Path, text: str) -> RoleProfile:
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ProfileError(f"role profile {path}: must be a mapping of settings")
    return RoleProfile.model_validate({"role": role, **data})
