"""Guided decoding fills a review up to what its schema allows: at its longest it must still fit the
call's max_tokens, or the server cuts the JSON (finish_reason length) and the review is lost."""

import json

import pytest

from fleet_dagster.core.profiles import available_roles, load_profile
from fleet_dagster.core.records import Proposal
from fleet_dagster.core.request import estimated_tokens
from fleet_dagster.core.reviews import parse_review, review_json_schema
from fleet_dagster.core.selection import ARCHITECT_MAX_TOKENS, architect_json_schema


def longest_instance(schema: dict) -> object:
    """The largest value the schema admits: every array full, every string at its maxLength, scores 10."""
    kind = schema.get("type")
    if kind == "object":
        return {key: longest_instance(sub) for key, sub in schema["properties"].items()}
    if kind == "array":
        return [longest_instance(schema["items"]) for _ in range(schema["maxItems"])]
    if kind == "string":
        if "enum" in schema:
            return max(schema["enum"], key=len)
        return "w" * schema["maxLength"]
    if kind == "integer":
        return schema["maximum"]
    raise AssertionError(f"unbounded schema part: {schema}")


@pytest.mark.parametrize("role", available_roles())
@pytest.mark.parametrize("max_tokens", [160, 256, 768])
def test_the_longest_review_the_schema_admits_fits_max_tokens_and_parses(role, max_tokens):
    criteria = load_profile(role).rubric
    schema = review_json_schema(criteria, max_tokens)
    longest = json.dumps(longest_instance(schema))
    assert estimated_tokens(longest) <= max_tokens, (len(longest), max_tokens)
    assert schema["additionalProperties"] is False and schema["properties"]["scores"]["additionalProperties"] is False
    review = parse_review(longest, criteria, reviewer="a", author="b", round=0)
    assert review.parsed


def test_the_architects_answer_fits_its_call():
    finalists = [
        Proposal(role="DEV", agent_id=f"agent-dev-{i:03d}", round=0, temperature=0.7, seed=i) for i in range(16)
    ]
    longest = json.dumps(longest_instance(architect_json_schema(finalists)))
    assert estimated_tokens(longest) <= ARCHITECT_MAX_TOKENS
