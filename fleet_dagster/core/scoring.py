"""Deterministic scoring of final proposals: peer reviews, coverage and check plugins."""

import json
import re
from collections.abc import Callable

import yaml

from fleet_dagster.core.records import CheckResult, Proposal, Review

WEIGHTS = {"peer": 0.5, "coverage": 0.35, "checks": 0.15}
_STOPWORDS = frozenset(
    [
        "the",
        "and",
        "for",
        "with",
        "that",
        "this",
        "from",
        "into",
        "must",
        "should",
        "shall",
        "will",
        "can",
        "are",
        "was",
        "were",
        "has",
        "have",
        "had",
        "not",
        "but",
        "all",
        "any",
        "each",
        "every",
        "its",
        "our",
        "your",
        "their",
        "them",
        "they",
        "you",
        "use",
        "using",
        "per",
        "via",
        "when",
        "what",
        "which",
        "who",
        "how",
        "why",
        "than",
        "then",
        "there",
        "these",
        "those",
        "been",
        "being",
        "also",
        "only",
        "such",
        "more",
        "most",
        "other",
        "some",
        "very",
    ]
)
_FENCED_BLOCK = re.compile(r"```([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)
_PREFIX = 5  # crude stemming: "limiting" and "limits" both match "limit"


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) >= 3 and w not in _STOPWORDS}


def _stem(word: str) -> str:
    return word[:_PREFIX]


def addresses(text: str, item: str, threshold: float = 0.6) -> bool:
    """Whether `text` mentions enough of the content words of `item` (a requirement or criterion)."""
    wanted = {_stem(w) for w in _words(item)}
    if not wanted:
        return False
    present = {_stem(w) for w in _words(text)}
    return len(wanted & present) / len(wanted) >= threshold


def coverage_items(task: str, requirements: list[str], rubric: str) -> list[str]:
    """Requirements and rubric lines; without either, the sentences of the task itself."""
    rubric_lines = [line.strip(" -*\t") for line in rubric.splitlines() if line.strip(" -*\t")]
    items = [*requirements, *rubric_lines]
    if not items:
        items = [s.strip() for s in re.split(r"[.;\n]+", task) if _words(s)][:10]
    return items


def _check_python(code: str) -> str | None:
    try:
        compile(code, "<proposal>", "exec")
    except SyntaxError as exc:
        return f"SyntaxError: {exc.msg} (line {exc.lineno})"
    return None


def _check_json(code: str) -> str | None:
    try:
        json.loads(code)
    except ValueError as exc:
        return f"invalid JSON: {exc}"
    return None


def _check_yaml(code: str) -> str | None:
    try:
        yaml.safe_load(code)
    except yaml.YAMLError as exc:
        return f"invalid YAML: {str(exc).splitlines()[0]}"
    return None


CHECK_PLUGINS: dict[str, Callable[[str], str | None]] = {
    "python": _check_python,
    "py": _check_python,
    "json": _check_json,
    "yaml": _check_yaml,
    "yml": _check_yaml,
}


def run_checks(text: str) -> list[CheckResult]:
    results = []
    for language, code in _FENCED_BLOCK.findall(text):
        check = CHECK_PLUGINS.get(language.lower())
        if check is not None:
            error = check(code)
            results.append(CheckResult(language=language.lower(), passed=error is None, error=error))
    return results


def peer_score(reviews: list[Review]) -> float | None:
    """Mean of the parsed reviews' mean scores (1-10); None when no review could be read."""
    means = [m for m in (r.mean_score for r in reviews) if m is not None]
    return sum(means) / len(means) if means else None


def score_proposal(proposal: Proposal, reviews: list[Review], items: list[str]) -> Proposal:
    """Fills every score component of a proposal that has content; the total is on a 0-10 scale."""
    if proposal.content is None:
        return proposal
    addressed = [item for item in items if addresses(proposal.content, item)]
    checks = run_checks(proposal.content)
    components = {
        "peer": None if (p := peer_score(reviews)) is None else p / 10,
        "coverage": len(addressed) / len(items) if items else None,
        "checks": sum(c.passed for c in checks) / len(checks) if checks else None,
    }
    present = {name: value for name, value in components.items() if value is not None}
    total_weight = sum(WEIGHTS[name] for name in present)
    total = 10 * sum(WEIGHTS[name] * value for name, value in present.items()) / total_weight if present else 0.0
    return proposal.model_copy(
        update={
            "peer_score": None if components["peer"] is None else components["peer"] * 10,
            "coverage": components["coverage"],
            "checks": components["checks"],
            "score": round(total, 4),
            "addressed": addressed,
            "missed": [item for item in items if item not in addressed],
            "check_results": checks,
        }
    )
