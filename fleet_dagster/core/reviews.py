"""Who reviews whom, and turning a model's review (untrusted text) into a Review."""

import json
import random
import re
from typing import Any

from fleet_dagster.core.json_text import find_json_object
from fleet_dagster.core.records import Review, ReviewMode
from fleet_dagster.core.request import CHARS_PER_TOKEN, estimated_tokens

SCORE_RANGE = (1.0, 10.0)
# A review's free-text lists: a few short points each (measured on vLLM with a small model: at 200
# characters a point, 10 of 10 guided reviews parsed; unbounded, 2 of 10 were cut at max_tokens).
REVIEW_LISTS = ("strengths", "weaknesses", "suggestions")
REVIEW_LIST_ITEMS = 3
REVIEW_ITEM_CHARS = 200


def review_assignments(
    agent_ids: list[str], mode: ReviewMode, *, seed: int, models: dict[str, str] | None = None
) -> list[tuple[str, str]]:
    """(reviewer, author) pairs; nobody reviews itself. Ring: agent i reviews agent i+1; all: everyone reviews
    every peer, in an order shuffled by `seed` (the order in which reviews reach each author's revision).
    `models` (agent -> model): only agents of different models review each other; in a ring, an agent reviews the
    next one along it of another model, and one whose peers all share its model reviews none."""
    if len(agent_ids) < 2:
        return []

    def may_review(reviewer: str, author: str) -> bool:
        return reviewer != author and (models is None or models[reviewer] != models[author])

    if mode == "ring":
        count = len(agent_ids)
        following = ([agent_ids[(i + step) % count] for step in range(1, count)] for i in range(count))
        nexts = [next((a for a in after if may_review(agent_ids[i], a)), None) for i, after in enumerate(following)]
        return [(reviewer, author) for reviewer, author in zip(agent_ids, nexts, strict=True) if author is not None]
    pairs = [(reviewer, author) for reviewer in agent_ids for author in agent_ids if may_review(reviewer, author)]
    random.Random(seed).shuffle(pairs)
    return pairs


def _id_pattern(agent_ids: list[str]) -> re.Pattern[str]:
    """Any of the ids in any case, its parts joined by any one separator ("Agent_Dev 001"); longest first, so
    that no id is cut short by another that begins it. No nested repetition: the match stays linear."""
    spelled = (r"[\s_.-]?".join(map(re.escape, re.split(r"[\s_.-]+", aid))) for aid in agent_ids)
    return re.compile("|".join(sorted(spelled, key=len, reverse=True)), re.IGNORECASE)


def redact_ids(text: str, agent_ids: list[str]) -> str:
    """The text with every agent id replaced: models sign their proposals, and judging is blind."""
    return _id_pattern(agent_ids).sub("[agent]", text) if agent_ids else text


def review_json_schema(criteria: list[str], max_tokens: int) -> dict[str, Any]:
    """Asks servers that support structured output (vLLM, llama.cpp) for exactly the review shape.

    Guided decoding lets a small model write inside a string until max_tokens, cutting the JSON: every
    string and list is bounded so that the longest review the schema admits fits max_tokens (at
    CHARS_PER_TOKEN characters a token), and no key beyond these may be added."""
    score = {"type": "integer", "minimum": 1, "maximum": 10}
    scores_tokens = estimated_tokens(json.dumps({"scores": dict.fromkeys(criteria, 10)}))
    lists_tokens = estimated_tokens(json.dumps(dict.fromkeys(REVIEW_LISTS, [""] * REVIEW_LIST_ITEMS)))
    item_chars = (
        (max_tokens - scores_tokens - lists_tokens) * CHARS_PER_TOKEN // (len(REVIEW_LISTS) * REVIEW_LIST_ITEMS)
    )
    strings = {
        "type": "array",
        "items": {"type": "string", "maxLength": max(0, min(REVIEW_ITEM_CHARS, item_chars))},
        "maxItems": REVIEW_LIST_ITEMS,
    }
    return {
        "type": "object",
        "properties": {
            "scores": {
                "type": "object",
                "properties": {criterion: score for criterion in criteria},
                "required": list(criteria),
                "additionalProperties": False,
            },
            **dict.fromkeys(REVIEW_LISTS, strings),
        },
        "required": ["scores", *REVIEW_LISTS],
        "additionalProperties": False,
    }


def _normalize_key(key: str) -> str:
    return re.sub(r"[\s-]+", "_", key.strip().lower())


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

    try:
        data, reason = find_json_object(raw)
        if data is None:
            return unparsed(reason)
        scores, rejected = _read_scores(data, criteria)
        # One unusable score makes the whole review unusable: a reviewer who wrote 0/9/0 meant no 9.
        if rejected:
            return unparsed(f"scores out of range or not numbers: {', '.join(rejected)}")
        if not scores:
            return unparsed(f"no 1-10 score for any of {', '.join(criteria)}")
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
    except Exception as exc:  # noqa: BLE001 - untrusted text costs at most its own review, never the role
        return unparsed(f"unreadable review: {type(exc).__name__}")


def _read_scores(data: dict[str, Any], criteria: list[str]) -> tuple[dict[str, float], list[str]]:
    """The usable score of each criterion (else the overall score), and the values that were not usable."""
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
    return scores, rejected
