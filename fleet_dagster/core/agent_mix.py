"""Which model (and settings) each agent of a council uses: councils may mix models.

The kinds a council mixes are the request's `agent_models` when it names any (one kind each, equal weights), else
the role profile's `agents`, else one kind: the profile's model. Agent i of N takes its kind so that kinds are
interleaved in proportion to their weights (weights 2 and 1: A, B, A): a council of two already mixes two kinds,
and at every size each kind holds its share within one agent (`kind_order`).
"""

from dataclasses import dataclass
from fractions import Fraction

from fleet_dagster.core.profiles import AgentKind, RoleProfile


@dataclass(frozen=True)
class AgentSpec:
    """One agent of a council as it calls its model."""

    agent_id: str
    model: str
    temperature: float
    system_prompt: str


def council_kinds(profile: RoleProfile, agent_models: list[str]) -> list[AgentKind]:
    if agent_models:
        return [AgentKind(model=model) for model in agent_models]
    return profile.agents or [AgentKind(model=profile.model)]


def kind_order(weights: list[int], agents: int) -> list[int]:
    """The kind of each of `agents` agents, as indexes into `weights`. Tijdeman's rule for the chairman assignment
    problem (1980): kind k's share is p_k = weight / total; agent t goes, among the kinds that would not get ahead of
    their share by C = 1 - 1/(2(m - 1)) agents (m kinds), to the one that would fall C behind it soonest (the
    earlier kind on a tie). Every kind then holds its share within C < 1 agent at every council size; smooth
    weighted round-robin, used before, did not (weights 1, 1, 1, 1, 14, 14, 14 gave a kind 9 of 33 agents, its share
    10.04)."""
    if len(weights) == 1:
        return [0] * agents
    total = sum(weights)
    shares = [Fraction(weight, total) for weight in weights]
    ahead_at_most = 1 - Fraction(1, 2 * (len(weights) - 1))
    counts = [0] * len(weights)
    order = []
    for t in range(1, agents + 1):
        eligible = [k for k, share in enumerate(shares) if t * share - counts[k] >= 1 - ahead_at_most]
        chosen = min(eligible, key=lambda k: ((counts[k] + ahead_at_most) / shares[k], k))
        counts[chosen] += 1
        order.append(chosen)
    return order


def agent_temperature(profile: RoleProfile, index: int, agents: int) -> float:
    """Temperatures spread evenly over [t - spread, t + spread] so that agents explore differently."""
    if agents == 1:
        return profile.temperature
    offset = profile.temperature_spread * (2 * index / (agents - 1) - 1)
    return round(min(2.0, max(0.0, profile.temperature + offset)), 3)


def council_agents(profile: RoleProfile, agent_ids: list[str], agent_models: list[str]) -> list[AgentSpec]:
    """Each agent's model, temperature (its kind's, else the role's spread) and system prompt."""
    kinds = council_kinds(profile, agent_models)
    order = kind_order([kind.weight for kind in kinds], len(agent_ids))
    specs = []
    for i, (aid, k) in enumerate(zip(agent_ids, order, strict=True)):
        temperature = kinds[k].temperature
        specs.append(
            AgentSpec(
                agent_id=aid,
                model=kinds[k].model,
                temperature=agent_temperature(profile, i, len(agent_ids)) if temperature is None else temperature,
                system_prompt=kinds[k].system_prompt or profile.system_prompt,
            )
        )
    return specs


def council_models(profile: RoleProfile, agents: int, agent_models: list[str]) -> list[str]:
    """The models a council of `agents` agents calls, each once, in the order its agents first use them."""
    kinds = council_kinds(profile, agent_models)
    return list(dict.fromkeys(kinds[k].model for k in kind_order([kind.weight for kind in kinds], agents)))
