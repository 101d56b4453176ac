"""Prompt templates (`resources/prompts/*.j2`) rendered into chat messages."""

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
