"""Admission: how many deliberations the fleet runs at once, and which waiting one goes next.

Dagster's run queue bounds runs (processes, pods); the model server's load is bounded by the calls in flight
(llm/backpressure.py). Neither says how many deliberations should hold councils at once, so a request's
councils wait for its run, and runs start at the launcher's pace. Admission is that third bound, shared by every
launch path (the request sensor on arrival, a run's plan step from the UI or the CLI): a deliberation is admitted
when its councils run, or when a slot was granted to it and its asker has not started them yet.

Waiting deliberations go in order of priority, then of their first ask. Askers ask again (the sensor each
tick, a plan step while it waits); one that stops asking (its run was cancelled, its tick failed) stops holding
its place, and a slot granted to it and never used returns after `GRANT_TTL_S`.
"""

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, get_args

# A request's priority: the order of admission and, at the model server, of calls waiting for a slot.
Priority = Literal["low", "normal", "high"]
PRIORITY_RANK: dict[str, int] = {level: rank - 1 for rank, level in enumerate(get_args(Priority))}

# A grant is used (councils started) within the asker's tick or step: seconds. Unused this long, it returns.
GRANT_TTL_S = 30.0
# Askers ask again at least every sensor interval (at most 60 s in practice) or plan-step poll.
WAITING_TTL_S = 120.0


@dataclass(frozen=True)
class Admitted:
    """Of the ids asked, each once, in the order asked: those to start now, and those whose councils are kept."""

    to_start: list[str]
    hosted: list[str]

    def admits(self, deliberation_id: str) -> bool:
        return deliberation_id in self.to_start or deliberation_id in self.hosted


@dataclass
class _Waiter:
    priority: int
    arrival: int
    asked_at: float


class Admission:
    """`running`, at each decision, is the ids whose councils run now, wherever (asked of the runners, so a slot
    frees as soon as a deliberation's last council ends, and a runner that restarted empty counts what it runs)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._granted: dict[str, float] = {}  # id -> when its grant lapses unless its councils run by then
        self._waiting: dict[str, _Waiter] = {}
        self._arrivals = itertools.count()

    def admit(self, asks: Iterable[tuple[str, int]], limit: int, running: set[str], hosted: set[str]) -> Admitted:
        """`asks`: (deliberation id, priority) in the asker's order; `hosted`: the ids whose councils were started
        and are kept (running or done, not yet collected): admitted already. The others wait their turn, or are
        granted a slot now (or were, and have not started yet)."""
        now = self._clock()
        asks = list(asks)
        for deliberation_id, priority in asks:
            if deliberation_id in hosted or deliberation_id in self._granted:
                continue
            waiter = self._waiting.get(deliberation_id)
            if waiter is None:
                self._waiting[deliberation_id] = _Waiter(priority, next(self._arrivals), now)
            else:
                waiter.priority, waiter.asked_at = priority, now
        self._grant_in_turn(now, limit, running)
        asked = list(dict.fromkeys(d for d, _ in asks))
        return Admitted(to_start=[d for d in asked if d in self._granted], hosted=[d for d in asked if d in hosted])

    def grant_waiting(self, limit: int, running: set[str]) -> set[str]:
        """Between asks (a slot freed): grants the waiting their turn; every id holding an unused grant now."""
        self._grant_in_turn(self._clock(), limit, running)
        return set(self._granted)

    def pending(self) -> set[str]:
        """The ids that hold a place: waiting, or granted and not started yet."""
        return self._waiting.keys() | self._granted.keys()

    def _grant_in_turn(self, now: float, limit: int, running: set[str]) -> None:
        self._expire(now, running)
        in_flight = len(running | self._granted.keys())
        for deliberation_id in sorted(self._waiting, key=self._turn):
            if in_flight >= limit:
                break
            del self._waiting[deliberation_id]
            self._granted[deliberation_id] = now + GRANT_TTL_S
            in_flight += 1

    def _turn(self, deliberation_id: str) -> tuple[int, int]:
        waiter = self._waiting[deliberation_id]
        return -waiter.priority, waiter.arrival

    def started(self, deliberation_ids: Iterable[str]) -> None:
        """Their councils started: `running` counts them from now on, and a deliberation that ends before the
        next decision frees its slot then, not when its grant would have lapsed."""
        for deliberation_id in deliberation_ids:
            self._granted.pop(deliberation_id, None)

    def state(self, running: set[str]) -> tuple[int, int]:
        """(admitted, waiting) now."""
        self._expire(self._clock(), running)
        return len(running | self._granted.keys()), len(self._waiting)

    def _expire(self, now: float, running: set[str]) -> None:
        # A granted id whose councils run is counted by `running` from now on.
        self._granted = {d: until for d, until in self._granted.items() if until > now and d not in running}
        self._waiting = {d: w for d, w in self._waiting.items() if now - w.asked_at <= WAITING_TTL_S}
