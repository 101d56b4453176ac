"""Reading a number answer out of free text."""

import re

# Possessive (never give back what they matched): each part stops where the next begins, so a failed match
# ends after one pass over its spaces instead of trying every way to split them between the parts.
_ANSWER_LINE = re.compile(r"answer\s*+(?:is)?+\s*+[:=]?+\s*+\**+\s*+(-?\d[\d,]*)", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d[\d,]*")


def extract_answer(text: str | None) -> int | None:
    """The number after the last 'Answer:', else the last number in the text; None if there is none."""
    if not text:
        return None
    marked = _ANSWER_LINE.findall(text)
    candidates = marked or _NUMBER.findall(text)
    return int(candidates[-1].replace(",", "")) if candidates else None
