"""The deliberation request: one model for the CLI, the launchpad config and the NATS bridge.

A request comes from the network (NATS), the launchpad and the shell, and every agent's prompt carries
its text, so every field is bounded: the bounds below are declared once, with why.
"""

import json
import math
import re
import uuid
from collections.abc import Mapping
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fleet_dagster.core.admission import Priority
from fleet_dagster.core.execution import (
    DEFAULT_TEST_MEMORY_MB,
    DEFAULT_TEST_OUTPUT_BYTES,
    DEFAULT_TEST_TIMEOUT_S,
    MAX_TEST_MEMORY_MB,
    MAX_TEST_OUTPUT_BYTES,
    MAX_TEST_TIMEOUT_S,
    MIN_TEST_MEMORY_MB,
    MIN_TEST_OUTPUT_BYTES,
    ExecutionLimits,
    Language,
)
from fleet_dagster.core.profiles import MODEL_NAME_PATTERN, ProfileError, RoleProfile, available_roles, load_profile
from fleet_dagster.core.prompts import render
from fleet_dagster.core.records import ReviewMode, SelectionMethod
from fleet_dagster.core.trace import traceparent_problem

DELIBERATION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
DEFAULT_ROLES = ("DEV", "QA", "ARCHITECT")

# The task and the rubric are in prompts: what a model's context can hold is checked per role below,
# these only keep a request from carrying megabytes before that check.
MAX_TASK_CHARS = 20_000
MAX_RUBRIC_CHARS = 20_000
# A requirement is one line every proposal must address, and is scored one by one (coverage).
MAX_REQUIREMENTS = 32
MAX_REQUIREMENT_CHARS = 1_000
# Each role is a council: roles x agents calls in flight at once, on one model server.
MAX_ROLES = 16
MAX_AGENTS_PER_ROLE = 16
# Each round is a review and a revision of every proposal: rounds multiply the calls.
MAX_ROUNDS = 5
MAX_DEADLINE_S = 86_400
MAX_TOP_K = 16
# A budget below one small call's prompt and answer would refuse every call; above 100M is no budget.
MIN_TOTAL_TOKENS = 100
MAX_TOTAL_TOKENS = 100_000_000
# Metadata is carried along, not used: stored in the run's config and in events, a few labels at most.
MAX_METADATA_BYTES = 16 * 1024
MAX_METADATA_DEPTH = 8

# Tests are a file of test functions, run against every solution: a few hundred lines.
MAX_TESTS_CHARS = 20_000
# An entry point or module is a Python name that the tests import.
IDENTIFIER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"

# Prompt size estimate: English and code average about 4 characters a token, so 3 leaves room for the
# chat template; any other character counts as a token (CJK text is about that).
CHARS_PER_TOKEN = 3


def new_deliberation_id() -> str:
    return f"delib-{uuid.uuid4().hex[:12]}"


def _nesting_depth(value: Any, limit: int) -> int:
    """How deep dicts and lists nest in `value`, counted up to limit + 1: level by level, not recursively,
    so that a hostile value nested thousands deep (or a cycle) costs no more than the limit."""
    depth, level = 0, [value]
    while depth <= limit:
        containers = [item for item in level if isinstance(item, dict | list)]
        if not containers:
            break
        depth += 1
        level = [child for c in containers for child in (c.values() if isinstance(c, dict) else c)]
    return depth


class DeliberationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # What each field means is said here once; the launchpad config and the CLI flags show it.
    task: str = Field(
        min_length=1,
        max_length=MAX_TASK_CHARS,
        description=f"What the councils deliberate on (1..{MAX_TASK_CHARS:,} characters, and what each role's "
        "model context holds with its prompts and answers).",
    )
    roles: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ROLES),
        min_length=1,
        max_length=MAX_ROLES,
        description=f"Roles with a profile in resources/roles/, one council each (1..{MAX_ROLES}).",
    )
    # strict: JSON's `true` is not 1 agent; a deadline may still be given as an integer.
    agents_per_role: int = Field(
        3, ge=1, le=MAX_AGENTS_PER_ROLE, strict=True, description=f"Agents in each council (1..{MAX_AGENTS_PER_ROLE})."
    )
    rounds: int = Field(1, ge=0, le=MAX_ROUNDS, strict=True, description=f"Review-and-revise rounds (0..{MAX_ROUNDS}).")
    rubric: str = Field(
        "", max_length=MAX_RUBRIC_CHARS, description="Extra rubric text; its lines count towards coverage."
    )
    requirements: list[Annotated[str, Field(max_length=MAX_REQUIREMENT_CHARS)]] = Field(
        default_factory=list,
        max_length=MAX_REQUIREMENTS,
        description=f"Requirements every proposal must address (at most {MAX_REQUIREMENTS}, "
        f"{MAX_REQUIREMENT_CHARS:,} characters each).",
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description=f"Free-form JSON, carried along (at most {MAX_METADATA_BYTES:,} bytes, "
        f"{MAX_METADATA_DEPTH} levels deep).",
    )
    deliberation_id: str = Field(
        default_factory=new_deliberation_id,
        pattern=DELIBERATION_ID_PATTERN,
        description="Up to 64 letters, digits, '_', '.' and '-' (default: generated).",
    )
    deadline_s: float = Field(
        900.0,
        gt=0,
        le=MAX_DEADLINE_S,
        strict=True,
        description=f"Deadline of the whole deliberation, in seconds (at most {MAX_DEADLINE_S:,}).",
    )
    review_mode: ReviewMode = Field(
        "ring", description="ring: each agent reviews the next one's proposal; all: every other one's."
    )
    selection: SelectionMethod = Field(
        "score",
        description="How each role's winner is chosen: the best score; the architect among the top k; vote, the "
        "final answer most proposals give (a last 'Answer: ...' line or a JSON 'answer' field), ties and the pick "
        "among its proposals by score; weighted-vote, as vote with each vote weighted by its proposal's stated "
        "confidence (a 'Confidence: ...' line), calibrated as ReConcile does; or execution (a code task), the "
        "solution whose tests agree most with the other solutions' (dual execution agreement) and the test set that "
        "best separates the solutions.",
    )
    agent_models: list[Annotated[str, Field(pattern=MODEL_NAME_PATTERN)]] = Field(
        default_factory=list,
        max_length=MAX_AGENTS_PER_ROLE,
        description="Models the agents of every council take in turn (agent i the i-th, cycling): a mixed council, "
        "within the models the deployment serves (default: each role profile's agents).",
    )
    cross_model_reviews: bool = Field(
        False,
        strict=True,
        description="Reviews only between agents of different models: no model judges its own model's proposals "
        "(an agent whose peers all share its model reviews none).",
    )
    priority: Priority = Field(
        "normal",
        description="Which waiting deliberation the fleet admits first (low, normal, high; then first come), and "
        "whose calls a busy model server takes first; its run's place in Dagster's run queue too.",
    )
    select_top_k: int = Field(
        3, ge=2, le=MAX_TOP_K, strict=True, description=f"Finalists the architect chooses among (2..{MAX_TOP_K})."
    )

    max_total_tokens: int | None = Field(
        None,
        ge=MIN_TOTAL_TOKENS,
        le=MAX_TOTAL_TOKENS,
        strict=True,
        description="Token budget of the whole deliberation, all roles together (prompt and answer tokens); a "
        "call that could pass it is not made, and what finished is scored (default: no budget).",
    )

    replay_answers: bool = Field(
        True,
        strict=True,
        description="Answer a call made before with the same prompt and settings (by an earlier run of this id, or "
        "a council restarted after its runner died) from the response store, without asking the model; false: "
        "every call asks the model (its answer is still stored).",
    )

    # A code task: its solution is run against tests in a sandbox (core/execution.py).
    entry_point: str | None = Field(
        None,
        pattern=IDENTIFIER_PATTERN,
        description="The function the solution defines and the tests call; set, the request is a code task: "
        "solutions are run against tests in a sandbox (default: none, a text task).",
    )
    language: Language = Field("python", description="The language of a code task's solution and tests.")
    module: str = Field(
        "solution",
        pattern=IDENTIFIER_PATTERN,
        description="The module a code task's tests import the entry point from (`from solution import f`).",
    )
    tests: str = Field(
        "",
        max_length=MAX_TESTS_CHARS,
        description=f"A code task's tests (test_* functions with plain asserts, pytest style; at most "
        f"{MAX_TESTS_CHARS:,} characters): every solution is run against them after each version, a revision "
        "sees how it fared, and they decide before any test a council wrote.",
    )
    test_timeout_s: float = Field(
        DEFAULT_TEST_TIMEOUT_S,
        gt=0,
        le=MAX_TEST_TIMEOUT_S,
        strict=True,
        description=f"Wall time of one test run, in seconds (at most {MAX_TEST_TIMEOUT_S:.0f}); its CPU time "
        "is bounded alike.",
    )
    test_memory_mb: int = Field(
        DEFAULT_TEST_MEMORY_MB,
        ge=MIN_TEST_MEMORY_MB,
        le=MAX_TEST_MEMORY_MB,
        strict=True,
        description=f"Memory of one test run, in MB ({MIN_TEST_MEMORY_MB}..{MAX_TEST_MEMORY_MB}).",
    )
    test_output_bytes: int = Field(
        DEFAULT_TEST_OUTPUT_BYTES,
        ge=MIN_TEST_OUTPUT_BYTES,
        le=MAX_TEST_OUTPUT_BYTES,
        strict=True,
        description=f"Output one test run may write, in bytes ({MIN_TEST_OUTPUT_BYTES:,}..{MAX_TEST_OUTPUT_BYTES:,}); "
        "past it the run is stopped.",
    )

    traceparent: str | None = Field(
        None,
        description="W3C trace context (00-<trace id>-<span id>-<flags>) that run tags, events, status and every "
        "model call carry on (default: a new trace).",
    )

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

    @field_validator("requirements")
    @classmethod
    def requirements_not_blank(cls, requirements: list[str]) -> list[str]:
        if any(not r.strip() for r in requirements):
            raise ValueError("requirements must not contain blank entries")
        return requirements

    @field_validator("metadata")
    @classmethod
    def metadata_is_small(cls, metadata: dict[str, Any]) -> dict[str, Any]:
        if _nesting_depth(metadata, MAX_METADATA_DEPTH) > MAX_METADATA_DEPTH:
            raise ValueError(f"metadata nests deeper than {MAX_METADATA_DEPTH} levels")
        try:
            size = len(json.dumps(metadata).encode())
        except (TypeError, ValueError) as exc:
            raise ValueError(f"metadata must be JSON: {exc}") from None
        if size > MAX_METADATA_BYTES:
            raise ValueError(f"metadata is {size} bytes as JSON; at most {MAX_METADATA_BYTES} bytes")
        return metadata

    @model_validator(mode="after")
    def tests_need_an_entry_point(self) -> Self:
        if self.tests.strip() and self.entry_point is None:
            raise ValueError("tests need an entry_point: the function they test")
        if self.selection == "execution" and self.entry_point is None:
            raise ValueError("selection 'execution' needs a code task: set entry_point (and tests, or a QA role)")
        return self

    @field_validator("traceparent")
    @classmethod
    def traceparent_is_w3c(cls, traceparent: str | None) -> str | None:
        if traceparent is not None and (problem := traceparent_problem(traceparent)):
            raise ValueError(problem)
        return traceparent

    @field_validator("deliberation_id", mode="before")
    @classmethod
    def generate_when_absent(cls, value: str | None) -> str:
        return new_deliberation_id() if value is None else value

    @property
    def expected_count(self) -> int:
        return len(self.roles) * self.agents_per_role

    @property
    def is_code_task(self) -> bool:
        return self.entry_point is not None

    @property
    def test_limits(self) -> ExecutionLimits:
        return ExecutionLimits(
            wall_s=self.test_timeout_s, memory_mb=self.test_memory_mb, output_bytes=self.test_output_bytes
        )


def agent_id(role: str, index: int) -> str:
    return f"agent-{role.lower()}-{index + 1:03d}"


def estimated_tokens(text: str) -> int:
    """A conservative token count: CHARS_PER_TOKEN ASCII characters a token, one token per other character."""
    ascii_chars = len(text.encode("ascii", "ignore"))
    return math.ceil(ascii_chars / CHARS_PER_TOKEN) + len(text) - ascii_chars


def largest_call_tokens(request: DeliberationRequest, profile: RoleProfile) -> int:
    """Estimated tokens of the largest call a council makes: its prompt plus an answer of max_tokens.

    The review prompt (system prompt, task, requirements and a whole proposal of up to max_tokens) is
    counted with the rubric added, which only the propose prompt holds, so the sum bounds both. Reviews
    quoted in a revise prompt are not counted: they are answers of unknown length (a score per
    criterion and a few lines), and counting each at max_tokens would refuse any large `all` council.
    """
    last_agent = agent_id(profile.role, request.agents_per_role - 1)
    review_prompt = render(
        "review",
        task=request.task,
        requirements=request.requirements,
        proposal="",
        reviewer_id=last_agent,
        criteria=profile.rubric,
    )
    # The tests are shown in a code task's prompts; the largest system prompt a profile has (its kinds'), too.
    variants = [kind.system_prompt or "" for kind in profile.agents]
    system_prompt = max(profile.system_prompt, profile.code_system_prompt or "", *variants, key=len)
    text_tokens = estimated_tokens(system_prompt + review_prompt + request.rubric + request.tests)
    return text_tokens + 2 * profile.max_tokens  # the proposal under review, and the answer


def context_errors(
    request: DeliberationRequest, served_context: Mapping[str, int] | None = None
) -> list[tuple[str, str]]:
    """One error per role whose largest call cannot fit its model's context, on the longest text field.
    A role's context is its profile's, or what the server says its model holds when that is less."""
    sizes = {
        "task": len(request.task),
        "tests": len(request.tests),
        "requirements": sum(len(r) for r in request.requirements),
        "rubric": len(request.rubric),
    }
    field = max(sizes, key=sizes.__getitem__)
    errors = []
    for role in request.roles:
        try:
            profile = load_profile(role)
        except ProfileError as exc:
            errors.append(("roles", str(exc)))
            continue
        tokens = largest_call_tokens(request, profile)
        limit = min(profile.context_tokens, (served_context or {}).get(role, profile.context_tokens))
        if tokens > limit:
            errors.append(
                (
                    field,
                    f"role {role}: its largest call needs about {tokens} tokens (system prompt, task, "
                    f"requirements, rubric, a {profile.max_tokens}-token proposal to review and a "
                    f"{profile.max_tokens}-token answer, at {CHARS_PER_TOKEN} characters a token), more than "
                    f"the {limit}-token context of its model; shorten the {field}",
                )
            )
    return errors


class RequestError(ValueError):
    """A request that failed validation, with one (field, message) per problem."""

    def __init__(self, errors: list[tuple[str, str]]):
        self.errors = errors
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors))


def printable(text: str) -> str:
    """`text` with what UTF-8 cannot encode (lone surrogates) written as escapes: safe to log, store and publish."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _not_unicode(data: dict[str, Any]) -> list[tuple[str, str]]:
    """Fields holding text that is not Unicode: JSON may escape a lone surrogate (\\ud800), which no UTF-8
    store, log or message can hold, and which pydantic cannot even name in a validation error."""
    errors = []
    for name, value in data.items():
        try:
            json.dumps([name, value], ensure_ascii=False, default=repr).encode()
        except UnicodeEncodeError as exc:
            errors.append((printable(str(name)), f"holds text that is not Unicode ({exc.reason}); send UTF-8 text"))
        except (TypeError, ValueError, RecursionError):
            pass  # not JSON: validation says what is wrong with it
    return errors


def parse_request(data: dict[str, Any]) -> DeliberationRequest:
    """The request, once its fields are valid and every role's prompts fit that role's model context."""
    if errors := _not_unicode(data):
        raise RequestError(errors)
    try:
        request = DeliberationRequest.model_validate(data)
    except ValidationError as exc:
        raise RequestError(describe_validation_errors(exc)) from None
    if errors := context_errors(request):
        raise RequestError(errors)
    return request


def describe_validation_errors(exc: ValidationError) -> list[tuple[str, str]]:
    errors = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]) or "request"
        message = re.sub(r"^Value error, ", "", error["msg"])
        errors.append((field, message))
    return errors
