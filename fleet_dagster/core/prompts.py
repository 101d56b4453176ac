"""Prompt templates (`resources/prompts/*.j2`) rendered into chat messages.

Every prompt opens with what the calls of a council share, byte for byte: the system prompt (the same for every
agent of a kind; an agent's id is never in it), then the task and requirements (`_context.j2`, alike in every
phase), then the phase's rubric and instructions; what differs per call (the agent's id, the proposal under
review, its own proposal and reviews) comes last. A serving engine's prefix cache (vLLM's automatic prefix
caching) then computes the shared text once per council and reuses it for every other call."""

from functools import cache
from typing import Any

import jinja2

from fleet_dagster.core.resource_files import resources_dir


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(resources_dir() / "prompts"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        autoescape=False,
    )


def render(template: str, **values: Any) -> str:
    return _environment().get_template(f"{template}.j2").render(**values).strip()


def chat_messages(system_prompt: str, template: str, **values: Any) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": system_prompt},
        {"role": "user", "content": render(template, **values)},
    ]
