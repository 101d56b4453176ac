"""JSON that fits a requested JSON Schema, as a server with guided decoding (vLLM, llama.cpp) returns."""

import random
from typing import Any

PHRASES = ["clear structure", "few tests", "add a test for the failure path", "handles the edge cases"]


def instance_of(schema: dict[str, Any], rng: random.Random) -> Any:
    """A value valid for the subset of JSON Schema the councils ask for: objects, enums, bounded
    integers and numbers, strings and arrays of them."""
    if "enum" in schema:
        return rng.choice(schema["enum"])
    kind = schema.get("type", "string")
    if kind == "object":
        return {name: instance_of(sub, rng) for name, sub in schema.get("properties", {}).items()}
    if kind == "array":
        count = min(2, schema.get("maxItems", 2))
        return [instance_of(schema.get("items", {}), rng) for _ in range(count)]
    if kind == "integer":
        return rng.randint(schema.get("minimum", 0), schema.get("maximum", 100))
    if kind == "number":
        return round(rng.uniform(schema.get("minimum", 0.0), schema.get("maximum", 1.0)), 2)
    if kind == "boolean":
        return rng.random() < 0.5
    return rng.choice(PHRASES)
