"""What agent calls cost, at the per-model prices a deployment sets (per 1,000 prompt and completion tokens,
in its own currency). Calls to a model without a price cost nothing here and are named as unpriced."""

from collections.abc import Iterable, Mapping

from pydantic import BaseModel, ConfigDict, Field

from fleet_dagster.core.records import AgentCall


class ModelPrice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: float = Field(ge=0, description="Price of 1,000 prompt tokens.")
    completion: float = Field(ge=0, description="Price of 1,000 completion tokens.")


def call_cost(price: ModelPrice, prompt_tokens: int, completion_tokens: int) -> float:
    return (prompt_tokens * price.prompt + completion_tokens * price.completion) / 1000


class Cost(BaseModel):
    """The estimated cost of calls: total, per model, and the models that have no price."""

    estimated_cost: float | None = Field(description="None when no call has a price: nothing to estimate.")
    by_model: dict[str, float]
    unpriced_models: list[str]


def calls_cost(calls: Iterable[AgentCall], prices: Mapping[str, ModelPrice]) -> Cost:
    """Replayed calls were answered from the store: they cost nothing."""
    by_model: dict[str, float] = {}
    unpriced: set[str] = set()
    for call in calls:
        if call.replayed or not call.tokens:
            continue
        price = prices.get(call.model)
        if price is None:
            unpriced.add(call.model or "unknown")
            continue
        cost = call_cost(price, call.tokens - call.completion_tokens, call.completion_tokens)
        by_model[call.model] = by_model.get(call.model, 0.0) + cost
    return Cost(
        estimated_cost=round(sum(by_model.values()), 6) if by_model else None,
        by_model={model: round(cost, 6) for model, cost in sorted(by_model.items())},
        unpriced_models=sorted(unpriced),
    )
