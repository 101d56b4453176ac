"""A deliberation's token budget (`max_total_tokens`), shared by all its councils.

A call is made only when its cost, estimated before it is sent (its prompt at CHARS_PER_TOKEN, plus its
max_tokens), fits what is left; once it is answered its estimate is replaced by what it really used. The
estimate bounds the real cost, so the calls made never pass the budget together, however many run at once.
"""

import threading
from typing import Protocol


class TokenBudget(Protocol):
    async def reserve(self, tokens: int) -> bool:
        """Whether a call estimated at `tokens` may be made; if so, they are held for it until `settle`."""
        ...

    async def settle(self, reserved: int, used: int) -> None:
        """The call that reserved `reserved` tokens is over and used `used` (0 when it failed unanswered)."""
        ...


class TokenLedger:
    """One deliberation's account. Thread-safe: the councils that share it may run on other threads."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.held = 0
        self._lock = threading.Lock()

    def reserve(self, tokens: int) -> bool:
        with self._lock:
            if self.used + self.held + tokens > self.limit:
                return False
            self.held += tokens
            return True

    def settle(self, reserved: int, used: int) -> None:
        with self._lock:
            self.held -= reserved
            self.used += used


class LocalTokenBudget:
    """A TokenBudget on a ledger in this process (the councils of one deliberation in one runner, or a test)."""

    def __init__(self, ledger: TokenLedger) -> None:
        self.ledger = ledger

    async def reserve(self, tokens: int) -> bool:
        return self.ledger.reserve(tokens)

    async def settle(self, reserved: int, used: int) -> None:
        self.ledger.settle(reserved, used)
