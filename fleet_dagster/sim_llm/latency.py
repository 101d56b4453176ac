"""The simulated engine's load: a fixed number of sequences decoded at once (continuous batching in
miniature), requests beyond it waiting in a queue, and how busy the slots were over time."""

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class EngineLoad:
    """Counts busy slots over time, so that a benchmark can report how saturated the engine was."""

    capacity: int
    clock: Callable[[], float] = time.time
    _busy: int = 0
    _changes: list[tuple[float, int]] = field(default_factory=list)  # (clock(), busy slots from then on)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _slots: threading.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self._slots = threading.Semaphore(self.capacity)

    def acquire(self) -> None:
        """Blocks until a slot is free."""
        self._slots.acquire()
        self._change(+1)

    def release(self) -> None:
        self._change(-1)
        self._slots.release()

    def _change(self, by: int) -> None:
        with self._lock:
            self._busy += by
            self._changes.append((self.clock(), self._busy))

    def reset(self) -> None:
        """Forgets the past: `utilization` counts from the next busy moment (or from now, if busy now)."""
        with self._lock:
            self._changes = [(self.clock(), self._busy)] if self._busy else []

    def utilization(self, since: float | None = None) -> float:
        """Mean busy slots / capacity from `since` (by default the first busy moment) to the last
        moment the engine went idle, or now while busy."""
        with self._lock:
            changes, busy_now = list(self._changes), self._busy
        if since is not None:
            before = [busy for at, busy in changes if at <= since]
            changes = [(since, before[-1] if before else 0)] + [(at, busy) for at, busy in changes if at > since]
        if not changes:
            return 0.0
        end = self.clock() if busy_now else changes[-1][0]
        area = sum(
            busy * (min(next_at, end) - at) for (at, busy), (next_at, _) in itertools.pairwise([*changes, (end, 0)])
        )
        span = end - changes[0][0]
        return area / (span * self.capacity) if span > 0 else 0.0
