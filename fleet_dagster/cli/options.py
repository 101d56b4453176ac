"""Command-line flags as values: a request's flags (declared by the request's own fields), the model server's."""

import os
import sys
from collections.abc import Callable
from typing import Literal, get_args, get_origin

import click

from fleet_dagster.cli.console import stderr_console
from fleet_dagster.core.request import MAX_TESTS_CHARS, DeliberationRequest, RequestError, parse_request
from fleet_dagster.llm.settings import LLM_ENV, LLMSettings, chosen_llm_settings
from fleet_dagster.nats_bridge.settings import NatsSettings


def _flag(field: str) -> str:
    """A request field as the user typed it on the command line: its flag, or TASK."""
    params = click.get_current_context().command.params
    flags = {p.name: p.opts[0] if isinstance(p, click.Option) else p.human_readable_name for p in params}
    return flags.get(field.split(".")[0], field)


def _request_option(flag: str, name: str, *, repeatable: bool = False) -> Callable:
    """A flag for the request field `name`: its default and description are the request's."""
    field = DeliberationRequest.model_fields[name]
    description = field.description or ""
    if repeatable:
        default = field.get_default(call_default_factory=True)
        described = f"{description} Repeatable." + (f" Default: {', '.join(default)}." if default else "")
        return click.option(flag, name, multiple=True, help=described)
    if field.annotation is bool:  # --name / --no-name
        return click.option(f"{flag}/--no-{flag[2:]}", name, default=field.default, show_default=True, help=description)
    choices = get_args(field.annotation) if get_origin(field.annotation) is Literal else ()
    # An optional field (`int | None`) is its type on the command line, absent when not given.
    value_type = next((t for t in get_args(field.annotation) if t is not type(None)), field.annotation)
    default = None if field.default_factory else field.default  # a factory's default is made per request
    return click.option(
        flag,
        name,
        type=click.Choice(choices) if choices else value_type,
        default=default,
        show_default=default not in (None, ""),
        help=description,
    )


def _read_tests(ctx: click.Context, param: click.Parameter, path: str | None) -> str:
    """The tests file's text, or the request's default; read as UTF-8, its size checked by the request."""
    if path is None:
        return DeliberationRequest.model_fields["tests"].get_default()
    try:
        with open(path, encoding="utf-8") as tests:
            return tests.read(MAX_TESTS_CHARS + 1)  # one more than the request takes: it says the file is too long
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"cannot read {path}: {exc}", param=param) from None


_tests_file_option = click.option(
    "--tests",
    "tests",
    type=click.Path(dir_okay=False),
    default=None,
    callback=_read_tests,
    help=f"A file holding the request's tests. {DeliberationRequest.model_fields['tests'].description}",
)


def request_options(command):
    """The flags that describe a deliberation request, shared by `deliberate` and `submit`."""
    options = [
        click.argument("task"),
        _request_option("--role", "roles", repeatable=True),
        _request_option("--agents", "agents_per_role"),
        _request_option("--rounds", "rounds"),
        _request_option("--requirement", "requirements", repeatable=True),
        _request_option("--rubric", "rubric"),
        _request_option("--deadline", "deadline_s"),
        _request_option("--id", "deliberation_id"),
        _request_option("--review-mode", "review_mode"),
        _request_option("--agent-model", "agent_models", repeatable=True),
        _request_option("--cross-model-reviews", "cross_model_reviews"),
        _request_option("--selection", "selection"),
        _request_option("--top-k", "select_top_k"),
        _request_option("--priority", "priority"),
        _request_option("--max-total-tokens", "max_total_tokens"),
        _request_option("--replay-answers", "replay_answers"),
        _request_option("--entry-point", "entry_point"),
        _request_option("--language", "language"),
        _request_option("--module", "module"),
        _tests_file_option,
        _request_option("--test-timeout", "test_timeout_s"),
        _request_option("--test-memory", "test_memory_mb"),
        _request_option("--test-output", "test_output_bytes"),
        _request_option("--traceparent", "traceparent"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def llm_options(command):
    """Where the model is: this process's deployment settings, as the environment would give them."""
    command = click.option(
        "--llm-model",
        envvar=LLM_ENV["model_override"],
        default=None,
        help="Serve every role with this model (a name the server serves).",
    )(command)
    return click.option(
        "--llm-url",
        envvar=LLM_ENV["base_url"],
        default=None,
        help="The model server (its protocol: FLEET_LLM_API); default: embedded.",
    )(command)


def refuse_what_the_server_cannot_serve(request) -> None:
    """Exit 2, before any run, when the deployment's server does not serve a role's model or its context
    cannot hold the request (the plan step checks again, for runs launched elsewhere)."""
    from fleet_dagster.llm.preflight import PreflightError
    from fleet_dagster.llm.resources import LLMResource

    try:
        LLMResource().preflight(request)
    except PreflightError as exc:
        stderr_console().print(f"Error: {exc}", markup=False)
        sys.exit(2)


def use_llm(llm_url: str | None, llm_model: str | None) -> None:
    """The flags over the environment's model settings, chosen for this process until the command ends (a URL
    and a model compose; the deployment's other settings, the key and per-model URLs, stay)."""
    chosen = {"base_url": llm_url, "model_override": llm_model}
    settings = LLMSettings.from_environ(os.environ).model_copy(update={k: v for k, v in chosen.items() if v})
    click.get_current_context().with_resource(chosen_llm_settings(settings))


def request_from_flags(task: str, roles: tuple[str, ...], fields: dict):
    # Repeatable flags come as tuples; the request holds lists.
    data = {"task": task, **{name: list(v) if isinstance(v, tuple) else v for name, v in fields.items()}}
    if roles:
        data["roles"] = list(roles)
    try:
        return parse_request(data)
    except RequestError as exc:
        field, _ = exc.errors[0]
        raise click.BadParameter(
            "; ".join(m for f, m in exc.errors if _flag(f) == _flag(field)), param_hint=_flag(field)
        ) from None


def deployed_nats() -> NatsSettings:
    settings = NatsSettings.deployed(os.environ)
    if settings is None:
        raise click.UsageError("NATS_URL is not set (e.g. export NATS_URL=nats://127.0.0.1:4222)")
    return settings
