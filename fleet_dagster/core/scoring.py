"""Deterministic scoring of final proposals: peer reviews, coverage and check plugins."""

import itertools
import json
import re
from collections.abc import Callable, Iterator

import yaml

from fleet_dagster.core.answers import final_answer, stated_confidence
from fleet_dagster.core.form import form_flags, own_words
from fleet_dagster.core.records import CheckResult, Proposal, Review

# A code task's solutions are also run against its tests: the share passed outweighs all the rest together
# (3 of 4), and selection.rank puts a solution that passes every test before any that does not.
WEIGHTS = {"peer": 0.5, "coverage": 0.35, "checks": 0.15, "execution": 3.0}
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
_PREFIX = 5  # crude stemming: "limiting" and "limits" both match "limit"
# Stating a requirement puts its words together, in any order ("requests are limited per minute for each key");
# a salad of the requirements' words scatters them: a pair of neighbouring words of an item counts where the
# text has them at most PAIR_DISTANCE content words apart, and at least MIN_NEAR_PAIRS of those pairs must.
PAIR_DISTANCE = 3
MIN_NEAR_PAIRS = 0.5
# A proposal is untrusted text: these caps bound what its check plugins are given, so that no block makes a
# parser recurse past Python's limit and a proposal's checks stay under a second (PyYAML, the slowest, reads
# about 150,000 characters a second). 16,000 characters is about 400 lines, more than a proposal's example needs.
MAX_CHECK_CHARS = 16_000
# Python's own parser stops at 200 nested brackets; real code, JSON and YAML stay far below 100.
MAX_CHECK_DEPTH = 100
# Blocks checked per proposal, in order; later ones are not checked (and do not count).
MAX_CHECKED_BLOCKS = 8
_FENCE_LANGUAGE = re.compile(r"[A-Za-z0-9_+-]*")
_BRACKET = re.compile(r"[\[\](){}]")


def _content_words(text: str) -> list[str]:
    """The words that carry meaning, in order."""
    return [w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) >= 3 and w not in _STOPWORDS]


def _words(text: str) -> set[str]:
    return set(_content_words(text))


def _stem(word: str) -> str:
    return word[:_PREFIX]


def _near(first: list[int], second: list[int]) -> bool:
    """Whether two sorted position lists hold positions at most PAIR_DISTANCE apart (one merge, linear)."""
    i = j = 0
    while i < len(first) and j < len(second):
        if abs(first[i] - second[j]) <= PAIR_DISTANCE:
            return True
        if first[i] < second[j]:
            i += 1
        else:
            j += 1
    return False


def addresses(text: str, item: str, threshold: float = 0.6) -> bool:
    """Whether `text` mentions enough of the content words of `item` (a requirement or criterion), used together:
    of the item's neighbouring words found in the text, at least MIN_NEAR_PAIRS are near each other there."""
    wanted = list(dict.fromkeys(_stem(w) for w in _content_words(item)))
    if not wanted:
        return False
    positions: dict[str, list[int]] = {}
    for position, word in enumerate(_content_words(text)):
        positions.setdefault(_stem(word), []).append(position)
    present = [w for w in wanted if w in positions]
    if len(present) / len(wanted) < threshold:
        return False
    pairs = list(itertools.pairwise(present))
    near = sum(_near(positions[a], positions[b]) for a, b in pairs)
    return near >= MIN_NEAR_PAIRS * len(pairs)


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
        value = yaml.safe_load(code)
    except yaml.YAMLError as exc:
        return f"invalid YAML: {str(exc).splitlines()[0]}"
    # Any prose parses as a YAML string: only a mapping or a list is the document the block claims to be.
    if not isinstance(value, dict | list):
        return f"not a YAML mapping or list: {type(value).__name__}"
    return None


CHECK_PLUGINS: dict[str, Callable[[str], str | None]] = {
    "python": _check_python,
    "py": _check_python,
    "json": _check_json,
    "yaml": _check_yaml,
    "yml": _check_yaml,
}


def fenced_blocks(text: str) -> Iterator[tuple[str, str]]:
    """(language, code) of each fenced block: the text between an odd and the next even fence, whose first line
    names the language. A split stays linear where a regex over hostile text would backtrack."""
    for block in text.split("```")[1::2]:
        info, newline, code = block.partition("\n")
        if newline:
            language = _FENCE_LANGUAGE.match(info)  # matches the empty string: always a match
            yield (language.group().lower() if language else ""), code


def _bracket_depth(code: str) -> int:
    """Deepest nesting of brackets; those in strings and comments count too, which only errs towards deep."""
    depth = deepest = 0
    for bracket in _BRACKET.findall(code):
        depth = depth + 1 if bracket in "([{" else max(0, depth - 1)
        deepest = max(deepest, depth)
    return deepest


def _check_block(language: str, code: str) -> CheckResult:
    """One plugin's verdict on one block; whatever goes wrong fails this check only, with the reason."""
    error: str | None
    if len(code) > MAX_CHECK_CHARS:
        error = f"not checked: {len(code):,} characters, over the {MAX_CHECK_CHARS:,} characters checked"
    elif _bracket_depth(code) > MAX_CHECK_DEPTH:
        error = f"not checked: brackets nested deeper than {MAX_CHECK_DEPTH}"
    else:
        try:
            error = CHECK_PLUGINS[language](code)
        except Exception as exc:  # noqa: BLE001 - RecursionError, MemoryError (deep Python), a plugin's own bug...
            error = f"check failed: {type(exc).__name__}: {str(exc)[:200]}"
    return CheckResult(language=language, passed=error is None, error=error)


def run_checks(text: str) -> list[CheckResult]:
    """A check result for each of the first MAX_CHECKED_BLOCKS fenced blocks in a language with a plugin."""
    checkable = ((language, code) for language, code in fenced_blocks(text) if language in CHECK_PLUGINS)
    return [_check_block(language, code) for language, code in itertools.islice(checkable, MAX_CHECKED_BLOCKS)]


def peer_score(reviews: list[Review]) -> float | None:
    """Mean of the parsed reviews' mean scores (1-10); None when no review could be read."""
    means = [m for m in (r.mean_score for r in reviews) if m is not None]
    return sum(means) / len(means) if means else None


def score_proposal(proposal: Proposal, reviews: list[Review], items: list[str], sources: list[str]) -> Proposal:
    """Fills every score component and the form flags of a proposal that has content; the total is on a 0-10
    scale. `sources`: the prompt's texts (system prompt, task, requirements, rubric); what a proposal copied
    from them is flagged as an echo and earns no coverage."""
    if proposal.content is None:
        return proposal
    own = own_words(proposal.content, sources)
    addressed = [item for item in items if addresses(own, item)]
    checks = run_checks(proposal.content)
    components = {
        "peer": None if (p := peer_score(reviews)) is None else p / 10,
        "coverage": len(addressed) / len(items) if items else None,
        "checks": sum(c.passed for c in checks) / len(checks) if checks else None,
        "execution": None if proposal.execution is None else proposal.execution.pass_rate,
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
            "flags": form_flags(proposal.content, sources),
            "answer": final_answer(proposal.content),
            "confidence": stated_confidence(proposal.content),
        }
    )
