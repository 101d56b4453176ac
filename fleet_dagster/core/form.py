"""Form before merit: deterministic flags for degenerate text (empty, loops, echoes of the prompt).

Small models often answer with nothing, with one phrase over and over, or with the task copied back; peers
scoring such text (small models too) and coverage counting the task's words let it win. A flagged proposal
never wins while an unflagged one exists (see selection.rank), and coverage only counts what an agent wrote
itself (see `own_words`).
"""

import re
import zlib
from collections.abc import Iterable

# Fewer words than this is no answer ("OK", "42"); "Answer: 42" is two.
MIN_WORDS = 2
# A loop repeats word sequences: in prose and code alike most 4-word sequences are distinct (measured on
# proposals of the embedded model and of the sim server: 0.85-1.0), in "QA QA Agent, QA QA Agent, ..." few.
LOOP_NGRAM = 4
MIN_DISTINCT_NGRAMS = 0.5
# Text that compresses to under a fifth of its size repeats itself (English prose and code compress to
# 0.3-0.6 with zlib); this catches loops without words, such as "<<<<<<<<" or "=-=-=-=-".
MIN_COMPRESSED_SHARE = 0.2
MIN_LOOP_WORDS = 24  # shorter answers have too few sequences to tell
MIN_LOOP_CHARS = 200
# Copying is a run of ECHO_NGRAM words found in the prompt; a shorter prompt counts when copied whole.
ECHO_NGRAM = 5
MIN_ECHO_SOURCE_WORDS = 3
MAX_ECHO_SHARE = 0.5
_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _ngrams(sequence: list[str], n: int) -> Iterable[tuple[str, ...]]:
    return (tuple(sequence[i : i + n]) for i in range(len(sequence) - n + 1))


def _source_ngrams(sources: Iterable[str]) -> tuple[set[tuple[str, ...]], set[tuple[str, ...]]]:
    """The prompt's ECHO_NGRAM-word runs, and the whole of each prompt text shorter than that."""
    runs: set[tuple[str, ...]] = set()
    whole: set[tuple[str, ...]] = set()
    for source in sources:
        source_words = words(source)
        if len(source_words) >= ECHO_NGRAM:
            runs.update(_ngrams(source_words, ECHO_NGRAM))
        elif len(source_words) >= MIN_ECHO_SOURCE_WORDS:
            whole.add(tuple(source_words))
    return runs, whole


def copied(text_words: list[str], sources: Iterable[str]) -> list[bool]:
    """For each word of the text, whether it lies in a run copied from one of the sources."""
    runs, whole = _source_ngrams(sources)
    mask = [False] * len(text_words)
    for n, found in [(ECHO_NGRAM, runs), *((len(w), {w}) for w in whole)]:
        for start, gram in enumerate(_ngrams(text_words, n)):
            if gram in found:
                mask[start : start + n] = [True] * n
    return mask


def own_words(text: str, sources: Iterable[str]) -> str:
    """The text's words outside the runs copied from the sources: what coverage may count."""
    text_words = words(text)
    return " ".join(w for w, was_copied in zip(text_words, copied(text_words, sources), strict=True) if not was_copied)


def _loop_reason(text: str, text_words: list[str]) -> str | None:
    if len(text_words) >= MIN_LOOP_WORDS:
        grams = list(_ngrams(text_words, LOOP_NGRAM))
        distinct = len(set(grams)) / len(grams)
        if distinct < MIN_DISTINCT_NGRAMS:
            return f"loop: only {distinct:.0%} of its {LOOP_NGRAM}-word sequences are distinct"
    raw = text.encode(errors="replace")  # model text may hold lone surrogates
    if len(raw) >= MIN_LOOP_CHARS:
        share = len(zlib.compress(raw, 9)) / len(raw)
        if share < MIN_COMPRESSED_SHARE:
            return f"loop: it compresses to {share:.0%} of its size"
    return None


def form_flags(text: str | None, sources: Iterable[str]) -> list[str]:
    """Why `text` is degenerate, one "kind: reason" per flag (empty, loop, echo); none for sound text.
    `sources`: what the agent was given (system prompt, task, requirements, rubric)."""
    if text is None:
        return []
    text_words = words(text)
    if len(text_words) < MIN_WORDS:
        return [f"empty: {len(text_words)} word{'' if len(text_words) == 1 else 's'}"]
    flags = []
    if loop := _loop_reason(text, text_words):
        flags.append(loop)
    share = sum(copied(text_words, sources)) / len(text_words)
    if share > MAX_ECHO_SHARE:
        flags.append(f"echo: {share:.0%} of its words are copied from the prompt")
    return flags
