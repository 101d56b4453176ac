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
