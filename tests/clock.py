"""A clock a test moves by hand: what expires, cools down or times out is decided by the test, never by the wall."""

from dataclasses import dataclass


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now
