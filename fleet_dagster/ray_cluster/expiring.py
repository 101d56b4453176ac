"""What a long-lived runner keeps for a while: each entry until a time of its own, dropped by `prune`. The one way
the council runner forgets what runs that died left behind (their councils, ledgers, released marks, counts)."""

import time
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Expiring(Generic[K, V]):
    def __init__(self, on_expire: Callable[[K, V], None] | None = None, clock: Callable[[], float] = time.time):
        self._entries: dict[K, tuple[V, float]] = {}
        self._on_expire = on_expire
        self._clock = clock

    def put(self, key: K, value: V, expires_at: float) -> None:
        self._entries[key] = (value, expires_at)

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        return None if entry is None else entry[0]

    def pop(self, key: K) -> V | None:
        entry = self._entries.pop(key, None)
        return None if entry is None else entry[0]

    def prune(self, keep: Callable[[V], bool] = lambda _: False) -> list[K]:
        """Drops the entries past their time, except those `keep` holds on to; returns their keys."""
        now = self._clock()
        expired = [key for key, (value, at) in self._entries.items() if at <= now and not keep(value)]
        for key in expired:
            value, _ = self._entries.pop(key)
            if self._on_expire is not None:
                self._on_expire(key, value)
        return expired

    def items(self) -> Iterator[tuple[K, V]]:
        return ((key, value) for key, (value, _) in list(self._entries.items()))

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)
