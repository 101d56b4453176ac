"""A circuit breaker per endpoint: a server that is down costs each call nothing, not its retries and timeout.

Closed: calls go through. After `threshold` endpoint faults in a row (connection refused or reset, HTTP
5xx, as the openai client reports them once its own retries are spent) it opens: calls fail at once for
`cooldown_s`. Then one call goes through as a probe: its success closes the circuit, its fault opens it
for another cool-down. Timeouts do not count: a slow answer under load is not a server that is down.
"""

import time
from collections.abc import Callable
from typing import Literal

CircuitState = Literal["closed", "open", "half-open"]


class CircuitBreaker:
    def __init__(self, threshold: int, cooldown_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = max(1, threshold)
        self.cooldown_s = cooldown_s
        self._clock = clock
        self.state: CircuitState = "closed"
        self.faults_in_a_row = 0
        self._opened_at = 0.0

    def refusal(self) -> str | None:
        """Why a call may not go through now, without claiming the probe; None when it may."""
        if self.state == "closed":
            return None
        wait_s = self._opened_at + self.cooldown_s - self._clock()
        if self.state == "open" and wait_s <= 0:
            return None
        when = f"next probe in {wait_s:.1f} s" if self.state == "open" else "a probe call is in flight"
        return f"endpoint unavailable (circuit open after {self.faults_in_a_row} failures in a row; {when})"

    def admit(self) -> str | None:
        """As `refusal`, and a call admitted once the cool-down is over is the probe: the others wait for it."""
        refused = self.refusal()
        if refused is None and self.state == "open":
            self.state = "half-open"
        return refused

    def record(self, endpoint_fault: bool) -> None:
        if not endpoint_fault:
            self.state, self.faults_in_a_row = "closed", 0
            return
        self.faults_in_a_row += 1
        if self.state == "half-open" or self.faults_in_a_row >= self.threshold:
            self.state, self._opened_at = "open", self._clock()

    def abandon(self) -> None:
        """An admitted call ended without an answer either way (cancelled): a probe leaves the next call to probe."""
        if self.state == "half-open":
            self.state, self._opened_at = "open", self._clock() - self.cooldown_s
