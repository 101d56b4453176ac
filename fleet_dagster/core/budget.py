"""A deliberation's token budget (`max_total_tokens`), shared by all its councils.

A call is made only when its cost, counted before it is sent, fits what is left: its prompt as the served
model's tokenizer counts it (the chat template included; `bounded_prompt_tokens` when the server has no
tokenizer to ask), plus its max_tokens. Once it is answered, that count is replaced by what it really used.
The count bounds the real cost, so the calls made never pass the budget together, however many run at once.

Each call is charged once, by its key (`call_key`): a council restarted after its runner died asks its calls
again, and they are answered from the response store (or join the call still running) at no new cost; the
reservation its lost predecessor held is the one its call settles.
"""

import math
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from fleet_dagster.core.records import ChatRequest

# Without the server's tokenizer: digits, punctuation and symbols are often a token each (numbers and hex
# are), letters and spaces at least 2 characters a token, any other character up to a token per UTF-8 byte
# (byte fallback); each message is wrapped in the chat template's role markers, and some templates add a
# default system prompt.
LETTERS_PER_TOKEN = 2
TEMPLATE_TOKENS_PER_MESSAGE = 8
TEMPLATE_TOKENS = 32


# Runs of ASCII letters and spaces: a tokenizer starts a new token where a run starts (after a digit, say).
_LETTER_RUN = re.compile(r"[A-Za-z\t-\r\x1c-\x1f ]+")  # what str.isalpha() or str.isspace() take in ASCII


def bounded_text_tokens(text: str) -> int:
    """A conservative token count of a text, for when no tokenizer answers."""
    runs = [len(run) for run in _LETTER_RUN.findall(text)]
    letters = sum(runs)
    marks = sum(1 for c in text if c.isascii()) - letters
    return sum(math.ceil(run / LETTERS_PER_TOKEN) for run in runs) + marks + len(text.encode()) - letters - marks


def bounded_prompt_tokens(messages: list[dict[str, str]]) -> int:
    """A conservative token count of a chat prompt, template included, for when no tokenizer answers."""
    return TEMPLATE_TOKENS + sum(TEMPLATE_TOKENS_PER_MESSAGE + bounded_text_tokens(m["content"]) for m in messages)


def call_key(request: ChatRequest, target: str | None) -> str:
    """Which call this is: the same whichever council instance asks it."""
    return f"{request.deliberation_id}/{request.role}/{request.agent_id}/{request.phase}/{request.round}/{target or ''}"


class TokenBudget(Protocol):
    async def reserve(self, key: str, tokens: int) -> bool:
        """Whether the call `key`, counted at `tokens`, may be made; if so, they are held for it until `settle`.
        A call reserved or answered before may always be asked again: it is not charged twice."""
        ...

    async def settle(self, key: str, used: int, replayed: bool) -> None:
        """The call is over and used `used` (0 when it failed unanswered); `replayed`: answered from the store."""
        ...


@dataclass(frozen=True)
class Charge:
    """One call's part of the budget: held (its count, while it runs) or settled (what it used)."""

    tokens: int
    settled: bool


class TokenLedger:
    """One deliberation's account, by call. Thread-safe: the councils that share it may run on other threads."""

    def __init__(self, limit: int, charges: Mapping[str, Charge] | None = None) -> None:
        self.limit = limit
        self.charges = dict(charges or {})
        self.used = sum(c.tokens for c in self.charges.values() if c.settled)
        self.held = sum(c.tokens for c in self.charges.values() if not c.settled)
        self._lock = threading.Lock()

    def reserve(self, key: str, tokens: int) -> bool:
        with self._lock:
            if key in self.charges:
                return True
            if self.used + self.held + tokens > self.limit:
                return False
            self.charges[key] = Charge(tokens, settled=False)
            self.held += tokens
            return True

    def settle(self, key: str, used: int, replayed: bool) -> None:
        with self._lock:
            charge = self.charges.get(key)
            if charge is None or (charge.settled and (replayed or not used)):
                return  # never reserved here, or paid for when first answered
            if charge.settled:  # made again (no store kept its answer): it cost again
                self.charges[key] = Charge(charge.tokens + used, settled=True)
                self.used += used
                return
            self.held -= charge.tokens
            if used:
                self.charges[key] = Charge(used, settled=True)
                self.used += used
            else:  # failed unanswered: it may be asked again, and must fit again
                del self.charges[key]


class LocalTokenBudget:
    """A TokenBudget on a ledger in this process (the councils of one deliberation in one runner, or a test)."""

    def __init__(self, ledger: TokenLedger) -> None:
        self.ledger = ledger

    async def reserve(self, key: str, tokens: int) -> bool:
        return self.ledger.reserve(key, tokens)

    async def settle(self, key: str, used: int, replayed: bool) -> None:
        self.ledger.settle(key, used, replayed)
