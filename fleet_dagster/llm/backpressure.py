"""A bound on an endpoint's calls in flight, shared fairly between deliberations.

A model server batches a fixed number of sequences; calls beyond that only wait in its queue, where a
deadline cannot see them and one large deliberation pushes every small one back. Here they wait in ours:
when a slot frees, the deliberation of the highest priority waiting gets it (its request's `priority`); among
those, the one with the fewest calls in flight (the earliest waiter breaks ties), so each deliberation gets its
share whatever its size.
"""

import asyncio
import itertools
import time
from collections import Counter, deque


class FairLimiter:
    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self._in_flight: Counter[str] = Counter()
        self._waiting: dict[str, deque[tuple[int, asyncio.Future[None]]]] = {}
        self._priority: dict[str, int] = {}  # of the owners waiting
        self._arrivals = itertools.count()

    @property
    def in_flight(self) -> int:
        return sum(self._in_flight.values())

    @property
    def waiting(self) -> int:
        return sum(len(queue) for queue in self._waiting.values())

    def in_flight_of(self, owner: str) -> int:
        return self._in_flight[owner]

    def set_limit(self, limit: int) -> None:
        """The endpoint's bound as its latest call states it; a raised bound lets waiters in at once."""
        self.limit = max(1, limit)
        self._grant()

    async def acquire(self, owner: str, timeout_s: float, priority: int = 0) -> float:
        """Waits for a slot for `owner` (a deliberation, of `priority`) up to timeout_s; returns the seconds waited.
        Raises TimeoutError when none came in time. Every acquire that returns needs one `release`."""
        started = time.perf_counter()
        if self.in_flight < self.limit and not self._waiting:
            self._in_flight[owner] += 1
            return 0.0
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(owner, deque()).append((next(self._arrivals), granted))
        self._priority[owner] = priority
        try:
            async with asyncio.timeout(max(timeout_s, 0.0)):
                await granted
        except BaseException:
            if granted.done() and not granted.cancelled():
                self.release(owner)  # granted as the wait ended: hand the slot on
            else:
                granted.cancel()
                self._forget_cancelled(owner)
            raise
        return time.perf_counter() - started

    def release(self, owner: str) -> None:
        self._in_flight[owner] -= 1
        if self._in_flight[owner] <= 0:
            del self._in_flight[owner]
        self._grant()

    def _forget_cancelled(self, owner: str) -> None:
        queue = deque(entry for entry in self._waiting.get(owner, ()) if not entry[1].done())
        if queue:
            self._waiting[owner] = queue
        else:
            self._waiting.pop(owner, None)
            self._priority.pop(owner, None)

    def _grant(self) -> None:
        while self.in_flight < self.limit and self._waiting:
            owner = min(self._waiting, key=lambda o: (-self._priority[o], self._in_flight[o], self._waiting[o][0][0]))
            queue = self._waiting[owner]
            _, granted = queue.popleft()
            if not queue:
                del self._waiting[owner]
                del self._priority[owner]
            if not granted.done():
                self._in_flight[owner] += 1
                granted.set_result(None)
