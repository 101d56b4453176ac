"""Before any council starts: is each role's model served where its calls go, and does the request fit
that model's context? A server asked for a model it does not serve answers every call with HTTP 404,
and one whose context is too short cuts answers silently: both are refused up front, saying why."""

from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from pydantic import BaseModel

from fleet_dagster.core.agent_mix import council_models
from fleet_dagster.core.profiles import load_profile
from fleet_dagster.core.request import MAX_AGENTS_PER_ROLE, DeliberationRequest, context_errors
from fleet_dagster.llm.backends import sdk_client, sync_client
from fleet_dagster.llm.endpoint import Api, LLMEndpoint
from fleet_dagster.llm.settings import display_url

PREFLIGHT_TIMEOUT_S = 10.0


class ServedModel(BaseModel):
    name: str
    max_model_len: int | None = None  # vLLM reports it; other servers may not


class PreflightError(ValueError):
    """The deliberation cannot run on these servers: one (request field, message) per problem."""

    def __init__(self, errors: list[tuple[str, str]]):
        self.errors = errors
        super().__init__("; ".join(message for _, message in errors))


class ServerUnavailable(PreflightError):
    """The server did not list its models: a problem of the deployment (down, wrong key), not of a request."""


@dataclass(frozen=True)
class Preflight:
    model_override: str | None  # the endpoint's, or the one model served when the profiles' are not
    context_tokens: dict[str, int] = field(default_factory=dict)  # role -> the least its served models hold
    notes: list[str] = field(default_factory=list)


def list_served_models(
    base_url: str, api_key: str, timeout_s: float = PREFLIGHT_TIMEOUT_S, api: Api = "openai"
) -> list[ServedModel]:
    """The server's models as its protocol lists them (GET models), each of two tries within `timeout_s`. Raises
    PreflightError when the server does not answer with a list."""
    sdk, _ = sdk_client(api)
    try:
        page = sync_client(api, base_url, api_key).with_options(timeout=timeout_s).models.list()
    except sdk.APIError as exc:
        message = f"the model server at {display_url(base_url)} did not list its models: {exc}"
        raise ServerUnavailable([("model", message)]) from None
    return [ServedModel(name=m.id, max_model_len=(m.model_extra or {}).get("max_model_len")) for m in page.data]


def check_models(
    endpoint: LLMEndpoint,
    models_by_role: dict[str, list[str]],
    served_at: Callable[[str], list[ServedModel]],
    named: Collection[str] = (),
) -> Preflight:
    """Which model serves each of a role's agents, with the server's listing injected (pure otherwise). `named`:
    the models a request chose (agent_models), which must be served as named: the one-model fallback stands in
    for a profile's model, never for a request's choice."""
    listings: dict[str, list[ServedModel]] = {}
    override = endpoint.model_override
    notes: list[str] = []
    errors: list[tuple[str, str]] = []
    context: dict[str, int] = {}
    single_url = not endpoint.model_urls
    profile_models = sorted({m for models in models_by_role.values() for m in models if m not in named})
    for role, models in models_by_role.items():
        for asked in models:
            chosen = asked in named
            model = asked if chosen else (override or asked)
            url = endpoint.url_for(model)
            if url not in listings:
                listings[url] = served_at(url)
            served = {m.name: m for m in listings[url]}
            if model not in served and not chosen and override is None and single_url and len(served) == 1:
                override = model = next(iter(served))
                notes.append(
                    f"every role uses {model}, the one model served at {display_url(url)} "
                    f"(the profiles ask for {', '.join(profile_models)})"
                )
            if model not in served:
                field, whose = ("agent_models", "agent_models") if chosen else ("roles", f"role {role}")
                errors.append(
                    (
                        field,
                        f"{whose}: model {model!r} is not served at {display_url(url)}; "
                        f"served: {', '.join(sorted(served)) or 'none'}",
                    )
                )
            elif (max_model_len := served[model].max_model_len) is not None:
                context[role] = min(max_model_len, context.get(role, max_model_len))
    if override is not None and (others := sorted(set(named) - {override})):
        # Every call would go to the override (LLMEndpoint.route): a mix the deployment cannot give is refused.
        errors.append(
            (
                "agent_models",
                f"agent_models: the deployment serves every agent with {override}; it cannot mix in "
                f"{', '.join(others)}",
            )
        )
    if errors:
        raise PreflightError(errors)
    return Preflight(model_override=override, context_tokens=context, notes=notes)


def model_listing(
    endpoint: LLMEndpoint, timeout_s: Callable[[], float] = lambda: PREFLIGHT_TIMEOUT_S
) -> Callable[[str], list[ServedModel]]:
    """The servers' model lists, each asked once for as long as the returned lookup is kept: a server that
    did not answer is not asked again (a sensor tick checks many requests). `timeout_s()` is each try's limit
    when a server is asked (a sensor tick gives what is left of its time)."""
    listings: dict[str, list[ServedModel] | ServerUnavailable] = {}

    def served_at(url: str) -> list[ServedModel]:
        if url not in listings:
            try:
                listings[url] = list_served_models(url, endpoint.api_key.get_secret_value(), timeout_s(), endpoint.api)
            except ServerUnavailable as exc:
                listings[url] = exc
        listing = listings[url]
        if isinstance(listing, ServerUnavailable):
            raise listing
        return listing

    return served_at


def council_models_by_role(roles: list[str], agents: int, agent_models: list[str]) -> dict[str, list[str]]:
    return {role: council_models(load_profile(role), agents, agent_models) for role in roles}


def served_roles_endpoint(
    endpoint: LLMEndpoint, roles: list[str], agents: int = MAX_AGENTS_PER_ROLE, agent_models: list[str] | None = None
) -> tuple[LLMEndpoint, list[str]]:
    """The endpoint that serves these roles' calls (the one served model when none of the profiles' is),
    and what was decided: for councils of up to `agents` agents, of `agent_models` when given. Raises
    PreflightError when a model is not served."""
    models = council_models_by_role(roles, agents, agent_models or [])
    checked = check_models(endpoint, models, model_listing(endpoint), named=agent_models or ())
    return endpoint.model_copy(update={"model_override": checked.model_override}), checked.notes


def preflight(
    endpoint: LLMEndpoint,
    request: DeliberationRequest,
    served_at: Callable[[str], list[ServedModel]] | None = None,
) -> Preflight:
    """Every model the request's agents will call is served, and its largest call fits the served context."""
    models = council_models_by_role(request.roles, request.agents_per_role, request.agent_models)
    checked = check_models(endpoint, models, served_at or model_listing(endpoint), named=request.agent_models)
    if errors := context_errors(request, checked.context_tokens):
        raise PreflightError(errors)
    return checked
