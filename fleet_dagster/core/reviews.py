"""Who reviews whom, and turning a model's review (untrusted text) into a Review."""

import json
import re
from typing import Any, Literal

from fleet_dagster.core.records import Review

SCORE_RANGE = (1.0, 10.0)
_FENCED_JSON = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.DOTALL | re.IGNORECASE)


def review_assignments(agent_ids: list[str], mode: Literal["ring", "all"]) -> list[tuple[str, str]]:
    """(reviewer, author) pairs. Ring: agent i reviews agent i+1; all: everyone reviews every peer."""
    if len(agent_ids) < 2:
        return []
    if mode == "ring":
        return [(agent_ids[i], agent_ids[(i + 1) % len(agent_ids)]) for i in range(len(agent_ids))]
    return [(reviewer, author) for reviewer in agent_ids for author in agent_ids if reviewer != author]


def review_json_schema(criteria: list[str]) -> dict[str, Any]:
    """Asks servers that support structured output (vLLM, llama.cpp) for exactly the review shape."""
    score = {"type": "integer", "minimum": 1, "maximum": 10}
    strings = {"type": "array", "items": {"type": "string"}, "maxItems": 5}
    return {
        "type": "object",
        "properties": {
            "scores": {
                "type": "object",
                "properties": {criterion: score for criterion in criteria},
                "required": list(criteria),
            },
            "strengths": strings,
            "weaknesses": strings,
            "suggestions": strings,
        },
        "required": ["scores", "strengths", "weaknesses", "suggestions"],
    }


def _normalize_key(key: str) -> str:
    return re.sub(r"[\s-]+", "_", key.strip().lower())


def extract_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in `text`: the whole text, a fenced block, or one embedded in prose."""
    for candidate in (text.strip(), *(m.group(1) for m in _FENCED_JSON.finditer(text))):
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    decoder = json.JSONDecoder()
    for start in (m.start() for m in re.finditer(r"\{", text)):
        try:
            value, _ = decoder.raw_decode(text, start)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _as_score(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, int | float) and SCORE_RANGE[0] <= value <= SCORE_RANGE[1]:
        return float(value)
    return None


def _as_strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list):
        return [str(item) for item in value if str(item).strip()]
    return []


def parse_review(raw: str, criteria: list[str], *, reviewer: str, author: str, round: int) -> Review:
    """Never raises and never invents a score: what cannot be read is recorded as unparsed."""

    def unparsed(reason: str) -> Review:
        return Review(reviewer=reviewer, author=author, round=round, parsed=False, parse_error=reason, raw=raw)

    data = extract_json_object(raw)
    if data is None:
        return unparsed("no JSON object found in the review")
    raw_scores = data.get("scores")
    if not isinstance(raw_scores, dict):
        raw_scores = {}
    wanted = {_normalize_key(c): c for c in criteria}
    scores: dict[str, float] = {}
    rejected: list[str] = []
    for key, value in raw_scores.items():
        criterion = wanted.get(_normalize_key(str(key)))
        if criterion is None:
            continue
        score = _as_score(value)
        if score is None:
            rejected.append(f"{criterion}={value!r}")
        else:
            scores[criterion] = score
    if not scores:
        overall = _as_score(data.get("overall", data.get("score")))
        if overall is not None:
            scores["overall"] = overall
    if not scores:
        detail = f" (out of range or not numbers: {', '.join(rejected)})" if rejected else ""
        return unparsed(f"no usable 1-10 score for any of {', '.join(criteria)}{detail}")
    return Review(
        reviewer=reviewer,
        author=author,
        round=round,
        parsed=True,
        scores=scores,
        strengths=_as_strings(data.get("strengths")),
        weaknesses=_as_strings(data.get("weaknesses")),
        suggestions=_as_strings(data.get("suggestions")),
        raw=raw,
    )
