"""The simulated engine's load: a fixed number of sequences decoded at once (continuous batching in
miniature), requests beyond it waiting in a queue, and how busy the slots were over time."""

import threading
import time
from dataclasses import dataclass, field


@dataclass
class EngineLoad:
    """Counts busy slots over time, so that a benchmark can report how saturated the engine was."""

    capacity: int
    _busy: int = 0
    _busy_area: float = 0.0  # integral of busy slots over time (slot-seconds)
    _since: float = field(default_factory=time.monotonic)
    _first_busy: float | None = None
    _last_idle: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _slots: threading.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self._slots = threading.Semaphore(self.capacity)

    def _account(self, now: float) -> None:
        self._busy_area += self._busy * (now - self._since)
        self._since = now

    def acquire(self) -> None:
        """Blocks until a slot is free."""
        self._slots.acquire()
        with self._lock:
            now = time.monotonic()
            self._account(now)
            self._busy += 1
            if self._first_busy is None:
                self._first_busy = now

    def release(self) -> None:
        with self._lock:
            now = time.monotonic()
            self._account(now)
            self._busy -= 1
            if self._busy == 0:
                self._last_idle = now
        self._slots.release()

    def reset(self) -> None:
        with self._lock:
            self._busy_area, self._since = 0.0, time.monotonic()
            self._first_busy = self._last_idle = None

    def utilization(self) -> float:
        """Mean busy slots / capacity between the first request and the last moment the engine went idle."""
        with self._lock:
            if self._first_busy is None:
                return 0.0
            end = time.monotonic() if self._busy else (self._last_idle or time.monotonic())
            self._account(time.monotonic())
            span = end - self._first_busy
            return self._busy_area / (span * self.capacity) if span > 0 else 0.0
