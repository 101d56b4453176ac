"""One request-sensor tick's intake: rounds of reading the stream, triage, answers and councils started on
arrival, and between rounds, while the tick has no run for Dagster to submit, listening for new requests.

Dagster's sensor daemon evaluates a sensor at most once per loop of 5 s (dagster/_daemon/sensor.py,
MIN_INTERVAL_LOOP_TIME). A tick that returned as soon as it had read the stream left a request that came to an
idle fleet waiting up to that loop before its councils started. An idle tick goes on reading for
`FLEET_NATS_SENSOR_LISTEN_S` (4 s of the 5) and takes a request within a poll of its arrival, with whatever
arrives with it (it reads until a poll finds nothing new). It returns as soon as it has accepted a request:
Dagster submits runs only after a tick, one after another in the same daemon thread (a few tenths of a second
each while run workers launch on 2 cores), so a tick that listened on with runs to submit would hold back every
run, and under a steady stream of requests the daemon would fall further behind at each tick (measured: councils
p95 13.2 s against 7.6 s for a tick that returns at once, 60 requests over 30 s).
"""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import dagster as dg
from nats import errors as nats_errors
from nats.js import JetStreamContext
from nats.js.api import StreamInfo

from fleet_dagster.core.request import DeliberationRequest
from fleet_dagster.deliberation.archive import DeliberationArchive
from fleet_dagster.deliberation.keys_and_tags import REQUEST_DIGEST_TAG, STREAM_CREATED_TAG, STREAM_SEQ_TAG
from fleet_dagster.deliberation.served_models import ServedModels
from fleet_dagster.deliberation.status_query import latest_runs
from fleet_dagster.deliberation.tick_budget import TickBudget
from fleet_dagster.nats_bridge.cursor import RequestCursor, StreamState, read_after
from fleet_dagster.nats_bridge.events import DeliberationDuplicate, DeliberationRejected
from fleet_dagster.nats_bridge.jetstream import (
    PUBLISH_TIMEOUT_S,
    ensure_stream,
    jetstream,
    publish_event,
    read_requests,
)
from fleet_dagster.nats_bridge.settings import NatsSettings
from fleet_dagster.nats_bridge.subjects import Subject
from fleet_dagster.nats_bridge.triage import PriorUse, Triage, accepted_use, triage

READ_BUDGET_S = 10.0
# How often a listening tick looks for new requests: one direct get, a fraction of a millisecond of NATS' time.
LISTEN_POLL_S = 0.1
_LISTEN_FAULTS = (nats_errors.Error, OSError, TimeoutError)

Accepted = list[tuple[int, DeliberationRequest]]
# How a batch's ids ({id: its first stream sequence}) are taken already: `triage`'s lookup.
PriorUses = Callable[[dict[str, int]], dict[str, PriorUse]]
# Starts the councils of a round's accepted requests, and of those waiting for admission when asked (the tick's
# first round); False when it could not, so that the rest of the tick leaves the councils to their runs.
StartCouncils = Callable[[Accepted, bool], bool]


def stream_tags(seq: int, stream_created: str | None) -> dict[str, str]:
    """Which message of which stream a run was requested by."""
    return {STREAM_SEQ_TAG: str(seq), **({STREAM_CREATED_TAG: stream_created} if stream_created else {})}


def prior_uses(instance: dg.DagsterInstance, archive: DeliberationArchive, stream_created: str | None) -> PriorUses:
    """How a batch's ids are taken by runs (or by archived deliberations), for `triage`."""

    def lookup(first_seqs: dict[str, int]) -> dict[str, PriorUse]:
        runs = latest_runs(instance, list(first_seqs))
        taken: dict[str, PriorUse] = {}
        for deliberation_id, seq in first_seqs.items():
            run = runs.get(deliberation_id)
            if run is None and (archived := archive.latest(deliberation_id)):  # retention deleted its runs, not its id
                taken[deliberation_id] = PriorUse(f"by a deliberation archived in {archived[0]}", None, None)
            elif run is not None and not stream_tags(seq, stream_created).items() <= run.tags.items():
                run_seq = run.tags.get(STREAM_SEQ_TAG)  # this very message seen again: its run_key dedupes the run
                taken[deliberation_id] = PriorUse(
                    description=f"by run {run.run_id}",
                    stream_seq=int(run_seq) if run_seq and run_seq.isdigit() else None,
                    request_digest=run.tags.get(REQUEST_DIGEST_TAG),
                    run_id=run.run_id,
                )
        return taken

    return lookup


def taken_first(taken: dict[str, PriorUse], lookup: PriorUses) -> PriorUses:
    """`lookup`, but ids in `taken` (accepted before their runs exist) are answered from it, not looked up."""

    def merged(first_seqs: dict[str, int]) -> dict[str, PriorUse]:
        earlier = {i: taken[i] for i in first_seqs if i in taken}
        rest = {i: seq for i, seq in first_seqs.items() if i not in earlier}
        return {**(lookup(rest) if rest else {}), **earlier}

    return merged


@dataclass
class IntakeTick:
    cursor: RequestCursor
    outcome: Triage  # of every round
    notes: list[str] = field(default_factory=list)


class TickRounds:
    """The rounds of one tick, on one connection: what they decided, and the ids they took (their runs do not
    exist until the tick returns, so a later round must not take them again)."""

    def __init__(
        self,
        js: JetStreamContext,
        settings: NatsSettings,
        stream: StreamInfo,
        lookup: PriorUses,
        served: ServedModels,
        budget: TickBudget,
        start: StartCouncils | None,
    ) -> None:
        self._js, self._settings, self._stream = js, settings, stream
        self._lookup, self._served, self._budget, self._start = lookup, served, budget, start
        self.outcome = Triage()
        self.handled = 0
        self._taken_this_tick: dict[str, PriorUse] = {}
        self._left_some = False  # a round stopped for time: the rest waits for the next tick

    async def read(self, after: int, batch: int) -> list[tuple[int, bytes]]:
        return await read_requests(
            self._js, self._settings, self._stream, after, batch, self._budget.for_step_s(READ_BUDGET_S)
        )

    def may_go_on(self, batch: int) -> bool:
        return not self._left_some and self.handled < batch and self._budget.has_time()

    async def take(self, messages: list[tuple[int, bytes]], waiting_too: bool) -> None:
        """Triage, then the answers published (one that cannot be, raises: nothing of the round is kept and the
        cursor stays before it), then the councils of what was accepted started."""
        decided = triage(
            messages,
            self._taken,
            self._served.refusals,
            self._budget.has_time,
        )
        answers: list[tuple[str, Subject, DeliberationRejected | DeliberationDuplicate]] = [
            *(("rejected", Subject.REJECTED, event) for event in decided.rejected),
            *(("duplicate", Subject.DUPLICATE, event) for event in decided.duplicates),
        ]
        for kind, subject, event in answers:
            msg_id, timeout_s = f"{kind}-{event.stream_seq}", self._budget.after_triage_s(PUBLISH_TIMEOUT_S)
            await publish_event(self._js, self._settings, subject, event, msg_id, timeout_s)
        self._keep(decided, messages)
        start, accepted = self._start, decided.accepted
        if start and (accepted or waiting_too) and not await asyncio.to_thread(start, accepted, waiting_too):
            self._start = None  # the cluster failed this tick: the runs start the rest

    def _taken(self, first_seqs: dict[str, int]) -> dict[str, PriorUse]:
        return taken_first(self._taken_this_tick, self._lookup)(first_seqs)

    def _keep(self, decided: Triage, messages: list[tuple[int, bytes]]) -> None:
        self.outcome.accepted += decided.accepted
        self.outcome.duplicates += decided.duplicates
        self.outcome.rejected += decided.rejected
        if decided.handled_through is not None:
            self.outcome.handled_through = decided.handled_through
            self.handled += sum(1 for seq, _ in messages if seq <= decided.handled_through)
            self._left_some = decided.handled_through != messages[-1][0]
        for seq, request in decided.accepted:
            self._taken_this_tick[request.deliberation_id] = accepted_use(seq, request)


async def take_requests(
    settings: NatsSettings,
    cursor: RequestCursor,
    instance: dg.DagsterInstance,
    served: ServedModels,
    budget: TickBudget,
    batch: int,
    listen_s: float,
    start: StartCouncils | None,
) -> IntakeTick:
    """The requests stored after the cursor; when it accepts none, those that arrive within `listen_s`, up to
    `batch` in all, until a read after an accepted request finds nothing new. Reaching NATS at first raises; a
    fault while listening ends the listening and keeps what was taken."""
    async with jetstream(settings) as js:
        info = await ensure_stream(js, settings)
        stream = StreamState(
            created=info.created.isoformat() if info.created else None,
            first_seq=info.state.first_seq,
            last_seq=info.state.last_seq,
        )
        after, notes = read_after(cursor, stream)
        lookup = prior_uses(instance, DeliberationArchive.from_env(), stream.created)
        rounds = TickRounds(js, settings, info, lookup, served, budget, start)
        # New requests: the server's model list (a round trip, tenths of a second when busy) while they are read.
        listing = asyncio.to_thread(served.prefetch) if stream.last_seq > after else asyncio.sleep(0)
        messages, _ = await asyncio.gather(rounds.read(after, batch), listing)
        await rounds.take(messages, waiting_too=True)
        listen_until = time.monotonic() + listen_s
        while rounds.may_go_on(batch) and (left_s := listen_until - time.monotonic()) > 0:
            try:
                messages = await rounds.read(rounds.outcome.handled_through or after, batch - rounds.handled)
                if messages:
                    await rounds.take(messages, waiting_too=False)
                elif rounds.outcome.accepted:  # what came with them is in: Dagster submits their runs now
                    break
                else:
                    await asyncio.sleep(min(LISTEN_POLL_S, left_s))
            except _LISTEN_FAULTS as exc:  # what earlier rounds took stands; the rest is the next tick's
                notes.append(f"stopped listening for requests: {type(exc).__name__}: {exc}")
                break
    cursor_after = RequestCursor(seq=rounds.outcome.handled_through or after, stream_created=stream.created)
    return IntakeTick(cursor_after, rounds.outcome, notes)
