"""Which model (and settings) each agent of a council uses: councils may mix models.

The kinds a council mixes are the request's `agent_models` when it names any (one kind each, equal weights), else
the role profile's `agents`, else one kind: the profile's model. Agent i of N takes its kind by smooth weighted
round-robin: every kind gains its weight, the kind furthest ahead (the earlier one on a tie) takes the agent and
gives back the total weight. Kinds are interleaved in proportion to their weights (weights 2 and 1: A, B, A), so a
council of two already mixes two kinds and a larger one holds each kind's share within one agent.
"""

from dataclasses import dataclass

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
    """The kind of each of `agents` agents, as indexes into `weights` (smooth weighted round-robin)."""
    total = sum(weights)
    current = [0] * len(weights)
    order = []
    for _ in range(agents):
        current = [c + w for c, w in zip(current, weights, strict=True)]
        chosen = max(range(len(weights)), key=lambda k: (current[k], -k))
        current[chosen] -= total
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
