"""The first JSON object in a model's answer (untrusted text of any size and shape): the whole text, a fenced
block, or one embedded in prose. What reviews, the architect's pick and stated answers are read from."""

import itertools
import json
import re
from collections.abc import Iterator
from typing import Any

# A model's answer is untrusted text of any size and shape; these caps bound the work of reading it.
# A review or an architect's pick is a small JSON object (a few hundred tokens): 32,000 characters (about 8k
# tokens) leave room for prose around it, and what lies beyond is not read.
MAX_JSON_TEXT_CHARS = 32_000
# The review shape nests 2 levels; json itself recurses per level and raises RecursionError near 1,000.
MAX_JSON_DEPTH = 32
# Places tried as the start of the object (the whole text, fenced blocks, each "{"): each try reads at most
# the rest of the text, so the work is at most this many reads of MAX_JSON_TEXT_CHARS.
MAX_JSON_CANDIDATES = 32
# A JSON string (the closing quote optional, so that an unterminated one ends the scan instead of being
# retried from every later quote), or a bracket.
_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*+"?|[\[\]{}]', re.DOTALL)
_FENCE_LANGUAGE = re.compile(r"\s*(?:json\b)?", re.IGNORECASE)


def _too_deep(text: str, start: int = 0, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON value at `start` nests deeper than `limit`. Brackets outside strings are counted, so this
    never understates json's own depth; the scan stops where that value closes or gets too deep."""
    depth = 0
    for token in _JSON_TOKEN.finditer(text, start):
        opener = text[token.start()]
        if opener in "[{":
            depth += 1
            if depth > limit:
                return True
        elif opener in "]}":
            depth -= 1
        if depth <= 0:
            return False
    return False


def _candidates(text: str) -> Iterator[tuple[str, int]]:
    """(text, start) of each place a JSON object may begin, best first: the whole text, fenced blocks, each "{"."""
    yield text.strip(), 0
    # Between the odd and even fences: a fenced block; a split stays linear where a regex would backtrack.
    for block in text.split("```")[1::2]:
        language = _FENCE_LANGUAGE.match(block)  # matches the empty string: always a match
        yield block[language.end() if language else 0 :].strip(), 0
    for brace in re.finditer(r"\{", text):
        yield text, brace.start()


def find_json_object(text: str) -> tuple[dict[str, Any] | None, str]:
    """The first JSON object in the start of `text` (see MAX_JSON_TEXT_CHARS), or None and why there is none.
    Never raises: what json cannot read, or would read too deep, is skipped."""
    read = text[:MAX_JSON_TEXT_CHARS]
    decoder = json.JSONDecoder()
    deep = False
    for candidate, start in itertools.islice(_candidates(read), MAX_JSON_CANDIDATES):
        if _too_deep(candidate, start):
            deep = True
            continue
        try:
            value, _ = decoder.raw_decode(candidate, start)
        except Exception:  # noqa: BLE001 - ValueError for broken JSON; anything else is as unreadable
            continue
        if isinstance(value, dict):
            return value, ""
    reason = "no JSON object found"
    if deep:
        reason += f" (JSON nested deeper than {MAX_JSON_DEPTH} levels is not read)"
    if len(text) > len(read):
        reason += f" (only the first {MAX_JSON_TEXT_CHARS:,} characters of {len(text):,} are read)"
    return None, reason


def extract_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in `text`: the whole text, a fenced block, or one embedded in prose."""
    return find_json_object(text)[0]
