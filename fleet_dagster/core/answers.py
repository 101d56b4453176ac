"""A proposal's final answer: what `--selection vote` counts and what tells that a council's agents agree.

A task that wants a final answer asks for it in a stated form: a last line `Answer: <answer>`, or a JSON object
with an "answer" field. Answers are compared after normalizing case, spaces, markdown emphasis, trailing
punctuation and the form of numbers ("1,000" and "1000.0" are one vote).
"""

import re

from fleet_dagster.core.json_text import extract_json_object

# A final answer is a word, a number or a short phrase; longer text is prose, not an answer to count.
MAX_ANSWER_CHARS = 200
# The answer line ends the text: only its last 32,000 characters (about 8k tokens, more than a proposal's
# max_tokens) are searched for it, so that the work stays bounded whatever a server sends.
MAX_ANSWER_TEXT_CHARS = 32_000
# Matched against one line at a time, from its start: no part of it can cross a newline, and no two adjacent
# parts match the same character, so a failed match ends after one pass over the line.
_ANSWER_LINE = re.compile(r"[ \t>*_#-]*answer[ \t*_]*[:=](.*)", re.IGNORECASE)
_NUMBER = re.compile(r"[-+]?\d[\d,]*(?:\.\d+)?")


def normalize_answer(raw: str) -> str | None:
    """The answer as votes compare it; None when nothing is left of it or it is too long to be one."""
    text = re.sub(r"\s+", " ", raw.replace("*", "").replace("`", "")).strip().rstrip(".!;,").strip().lower()
    if not text or len(text) > MAX_ANSWER_CHARS:
        return None
    if _NUMBER.fullmatch(text):
        number = float(text.replace(",", ""))
        return str(int(number)) if number.is_integer() else repr(number)
    return text


def final_answer(text: str | None) -> str | None:
    """The answer on the last `Answer:` line, else the "answer" field of a JSON object in the text."""
    if not text:
        return None
    lines = [m.group(1) for m in map(_ANSWER_LINE.match, text[-MAX_ANSWER_TEXT_CHARS:].splitlines()) if m]
    if stated := [line for line in lines if line.strip()]:
        return normalize_answer(stated[-1])
    data = extract_json_object(text)
    if data is not None and isinstance(data.get("answer"), str | int | float) and not isinstance(data["answer"], bool):
        return normalize_answer(str(data["answer"]))
    return None


# A confidence line: "Confidence: 0.8", "confidence = 80%", "**Confidence:** 0.9."; matched line by line, as answers.
_CONFIDENCE_LINE = re.compile(r"[ \t>*_#-]*confidence[ \t*_]*[:=][ \t*_]*(\d{1,3}(?:\.\d+)?)[ \t]*(%?)", re.IGNORECASE)
# ReConcile (Chen et al. 2024) recalibrates what a model says of its confidence before it weighs a vote: models
# state 0.9 and above for most answers, right or wrong. Its steps: at least this stated confidence weighs this much.
CALIBRATION_STEPS = ((1.0, 1.0), (0.9, 0.8), (0.8, 0.5), (0.6, 0.3), (0.0, 0.1))


def stated_confidence(text: str | None) -> float | None:
    """The confidence on the last `Confidence:` line (0..1, or a percentage), else a JSON object's "confidence"
    field; None when absent or out of range (a confidence of 7 says nothing one could weigh)."""
    if not text:
        return None
    tail = text[-MAX_ANSWER_TEXT_CHARS:]
    stated = [m for m in map(_CONFIDENCE_LINE.match, tail.splitlines()) if m]
    if stated:
        number, percent = float(stated[-1].group(1)), stated[-1].group(2)
        value = number / 100 if percent or number > 1 else number
    else:
        data = extract_json_object(tail)
        field = data.get("confidence") if data is not None else None
        if not isinstance(field, int | float) or isinstance(field, bool):
            return None
        value = float(field)
    return value if 0.0 <= value <= 1.0 else None


def calibrated_confidence(confidence: float | None) -> float:
    """The weight of a vote stated with this confidence (CALIBRATION_STEPS); no stated confidence weighs least."""
    stated = 0.0 if confidence is None else confidence
    return next(weight for floor, weight in CALIBRATION_STEPS if stated >= floor)
