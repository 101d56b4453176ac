"""Councils started between request ticks, the moment their requests are stored.

A request tick returns as soon as it has accepted requests (request_intake.py); Dagster then submits their runs
one after another (tenths of a second each on 2 cores) and evaluates the sensor again at its next loop, up to 5 s
later. A request stored meanwhile waited for that tick before its councils started: seconds behind a burst or
under a steady stream. So each tick renews this process's listener for `LEASE_S`: a thread that reads the stream
after the tick's cursor and starts the councils of each request it would accept as soon as it is stored, owned by
the request (arrival.py) as a tick starts them.

It only starts councils, and only while no tick runs (a tick reads and starts what is stored itself, and one
reader at a time does not judge a burst twice on 2 cores). The next tick still triages every message, publishes its
answer and requests its run, which adopts the councils; whichever of the tick and the listener claims a request
first starts it (`claim`). A tick may still decide otherwise than the listener did (a run of the same id launched
from the UI in between): the councils it started are then those of a request whose run never comes (arrival.py):
they finish, keep their answers and are dropped an hour after their deadline.

Bounded: it lives while ticks renew its lease (a sensor turned off stops it within LEASE_S); a fault (NATS or the
cluster gone) ends it until the next tick renews it; it reads at most READ_BATCH requests a poll.
"""

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import dagster as dg
from dagster._core.instance import InstanceRef  # not exported by `dagster`; what from_ref takes
from nats.js import JetStreamContext
from nats.js.api import StreamInfo

from fleet_dagster.core.request import DeliberationRequest
from fleet_dagster.deliberation.archive import DeliberationArchive
from fleet_dagster.deliberation.request_intake import LISTEN_POLL_S, Accepted, PriorUses, prior_uses, taken_first
from fleet_dagster.nats_bridge.jetstream import jetstream, read_requests
from fleet_dagster.nats_bridge.settings import NatsSettings
from fleet_dagster.nats_bridge.triage import PriorUse, accepted_use, triage

# Longer than the daemon's 5 s loop plus its submission of a burst's runs (60 runs: 10–30 s here), so that ticks
# renew it before it ends; a sensor turned off leaves it this long.
LEASE_S = 30.0
READ_BATCH = 100  # a read takes what is stored, up to this: a burst is judged and started together
READ_BUDGET_S = 2.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ListenerLease:
    """What a tick hands the listener: where to read from, and how to judge and start what it reads."""

    settings: NatsSettings
    instance_ref: InstanceRef  # the tick's instance, opened by the listener for as long as it lives
    stream_created: str | None
    after: int  # the tick's cursor: ticks have triaged every message up to it
    unservable: Callable[[DeliberationRequest], list[tuple[str, str]]]
    start: Callable[[Accepted], None]  # the councils of requests accepted; raises when the cluster does not answer
    until: float  # time.monotonic()


class ArrivalListener:
    """One per request sensor: the thread, its lease, and the requests whose councils this process started after
    the last tick's cursor."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lease: ListenerLease | None = None
        self._thread: threading.Thread | None = None
        self._claimed: dict[int, DeliberationRequest] = {}  # by stream sequence
        self._ticks_running = 0  # while a tick reads the stream, the listener does not: one reader at a time

    def renew(self, lease: ListenerLease) -> None:
        """Listens until `lease.until`, after the tick's cursor; starts the thread if none runs."""
        with self._lock:
            if self._lease is not None and self._lease.stream_created != lease.stream_created:
                self._claimed = {}  # another stream: its sequences are not these
            self._lease = lease
            self._claimed = {seq: request for seq, request in self._claimed.items() if seq > lease.after}
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="arrival-listener", daemon=True)
                self._thread.start()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """While a tick runs: it reads, judges and starts what is stored itself."""
        with self._lock:
            self._ticks_running += 1
        try:
            yield
        finally:
            with self._lock:
                self._ticks_running -= 1

    def claim(self, accepted: Accepted) -> Accepted:
        """Those of `accepted` whose councils nobody in this process started yet, now claimed for the caller."""
        with self._lock:
            fresh = [(seq, request) for seq, request in accepted if seq not in self._claimed]
            self._claimed.update(fresh)
        return fresh

    def release(self, accepted: Accepted) -> None:
        """Claims whose councils could not be started: a later tick starts them."""
        with self._lock:
            for seq, _ in accepted:
                self._claimed.pop(seq, None)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Ends the lease and waits for the thread (tests, a code location shutting down)."""
        with self._lock:
            self._lease, thread = None, self._thread
        if thread is not None:
            thread.join(timeout_s)

    def listening(self) -> bool:
        with self._lock:
            return self._thread is not None

    def _current(self) -> ListenerLease | None:
        """The lease, or None once it ended; then the thread is retired under the same lock, so that a renewal
        either finds it running or starts another."""
        with self._lock:
            if self._lease is not None and time.monotonic() < self._lease.until:
                return self._lease
            self._thread = None
            return None

    def _tick_running(self) -> bool:
        with self._lock:
            return self._ticks_running > 0

    def _claimed_uses(self) -> dict[str, PriorUse]:
        with self._lock:
            return {request.deliberation_id: accepted_use(seq, request) for seq, request in self._claimed.items()}

    def _run(self) -> None:
        try:
            asyncio.run(self._listen())
        except Exception as exc:  # noqa: BLE001 - the next tick takes whatever it did not, and renews it
            log.warning(f"listening between ticks stopped until the next tick: {type(exc).__name__}: {exc}")
        finally:
            with self._lock:  # unless a renewal already started another
                if self._thread is threading.current_thread():
                    self._thread = None

    async def _listen(self) -> None:
        if (lease := self._current()) is None:
            return
        with dg.DagsterInstance.from_ref(lease.instance_ref) as instance:
            lookup = prior_uses(instance, DeliberationArchive.from_env(), lease.stream_created)
            async with jetstream(lease.settings) as js:
                stream = await js.stream_info(lease.settings.stream)  # the tick made sure it exists
                await self._take_as_stored(js, stream, lookup, lease.after)

    async def _take_as_stored(self, js: JetStreamContext, stream: StreamInfo, lookup: PriorUses, after: int) -> None:
        """Reads on while a start is under way: one start at a time, in stream order, so that admission sees the
        requests as they arrived; a burst is read, judged and started in batches that overlap."""
        created = stream.created.isoformat() if stream.created else None
        starting: asyncio.Task | None = None
        while (lease := self._current()) is not None and lease.stream_created == created:
            after = max(after, lease.after)
            if self._tick_running():
                await asyncio.sleep(LISTEN_POLL_S)
                continue
            messages = await read_requests(js, lease.settings, stream, after, READ_BATCH, READ_BUDGET_S)
            if not messages:
                await asyncio.sleep(LISTEN_POLL_S)
                continue
            decided = triage(messages, taken_first(self._claimed_uses(), lookup), lease.unservable)
            after = messages[-1][0]
            if fresh := self.claim(decided.accepted):
                try:
                    if starting is not None:
                        await starting
                except BaseException:
                    self.release(fresh)
                    raise
                starting = asyncio.create_task(self._start(lease, fresh))
        if starting is not None:
            await starting

    async def _start(self, lease: ListenerLease, accepted: Accepted) -> None:
        try:
            await asyncio.to_thread(lease.start, accepted)
        except BaseException:
            self.release(accepted)  # the next tick starts them
            raise
        log.info(f"councils started between ticks: {', '.join(r.deliberation_id for _, r in accepted)}")
