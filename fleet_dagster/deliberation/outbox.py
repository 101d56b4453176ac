"""The outbox: every event a deliberation run must publish, kept in the Dagster instance until NATS acks it.

A run records its events (deliberation.accepted, its agents' calls, its final event) here before it
publishes them itself. The `deliberation_outbox` sensor publishes whatever is recorded and not acknowledged,
however long NATS was down and however often the daemon restarted meanwhile (it keeps no cursor: the outbox
is its state), and records the final event of a run that ended without one (died before collecting,
canceled). Every run of the deliberation job carries OUTBOX_TAG from its job: `pending` until the sensor
has seen it finished with all of its events acknowledged.

Kept in the run storage's key-value table (SQLite or Postgres: the instance's own storage), per run:
  chunks      how many chunks the run recorded; written after the chunk, so never ahead of it
  chunk/{n}   a JSON list of events in publish order: what one `record` held
  final       the run's final event, published after every chunk
  sent/{by}   how far (chunks, then the final event) publisher `by` (the run, the sensor) saw acknowledged
Each key has one writer (`final`: the run, or the sensor once the run has finished without one), so no two
processes read-modify-write a key. Both publishers publish in order, and the stream stores a message id once
(its duplicate window): events the run and the sensor publish at once are stored once each, in order.
"""

import json
import logging
from collections.abc import Callable

import dagster as dg
from pydantic import BaseModel

from fleet_dagster.deliberation.keys_and_tags import DELIBERATION_ID_TAG, TRACEPARENT_TAG
from fleet_dagster.deliberation.status_query import PARTITION_TAG, latest_event, run_error
from fleet_dagster.nats_bridge.event_builders import (
    FINAL_EVENT_METADATA_KEY,
    event_from_stored,
    run_canceled_event,
    run_failed_event,
    stored_event,
)
from fleet_dagster.nats_bridge.jetstream import ensure_stream, jetstream, publish_event
from fleet_dagster.nats_bridge.resources import NatsResource
from fleet_dagster.nats_bridge.settings import NatsSettings

Event = tuple[str, BaseModel, str]
OUTBOX_TAG = "fleet/outbox"
PENDING, DELIVERED, UNREADABLE = "pending", "delivered", "unreadable"
PUBLISHERS = RUN, SENSOR = "run", "sensor"  # each counts what it saw acknowledged apart


class RunOutbox:
    """One run's outbox, as `publisher` (one of PUBLISHERS) sees it."""

    def __init__(self, instance: dg.DagsterInstance, run_id: str, publisher: str) -> None:
        self._instance = instance
        self._run_id = run_id
        self._storage = instance.run_storage
        self._prefix = f"fleet/outbox/{run_id}/"
        self._publisher = publisher

    def _read(self, *names: str) -> dict[str, str]:
        values = self._storage.get_cursor_values({self._prefix + name for name in names})
        return {name: values[self._prefix + name] for name in names if self._prefix + name in values}

    def _write(self, name: str, value: str) -> None:
        # One key a call: once any key of a call exists, set_cursor_values only updates, inserting none.
        self._storage.set_cursor_values({self._prefix + name: value})

    @staticmethod
    def _chunk_names(chunks: int, first: int = 0) -> list[str]:
        return [f"chunk/{n}" for n in range(first, chunks)]

    def record(self, events: list[Event]) -> None:
        if events:
            count = int(self._read("chunks").get("chunks", "0"))
            self._write(f"chunk/{count}", json.dumps([stored_event(event) for event in events]))
            self._write("chunks", str(count + 1))

    def record_final(self, event: Event) -> None:
        self._write("final", json.dumps(stored_event(event)))

    def has_final(self) -> bool:
        return bool(self._read("final"))

    def unsent(self) -> tuple[int, list[Event]]:
        """The events no publisher saw acknowledged, in publish order, and how far they reach (for `sent`)."""
        counters = [f"sent/{publisher}" for publisher in PUBLISHERS]
        state = self._read("chunks", "final", *counters)
        chunks = int(state.get("chunks", "0"))
        sent = max(int(state.get(counter, "0")) for counter in counters)
        names = self._chunk_names(chunks, first=sent)
        stored = self._read(*names)
        events = [event_from_stored(event) for name in names for event in json.loads(stored[name])]
        if not state.get("final"):
            return chunks, events
        if sent <= chunks:
            events.append(event_from_stored(json.loads(state["final"])))
        return chunks + 1, events

    def sent(self, end: int) -> None:
        self._write(f"sent/{self._publisher}", str(end))

    def empty(self) -> None:
        """Drops a delivered run's events, keeping its counters: the key-value table has no delete, and
        the events are on NATS now."""
        state = self._read("chunks", "final")
        names = self._chunk_names(int(state.get("chunks", "0"))) + (["final"] if "final" in state else [])
        if names:  # every one of them exists, so this one call updates them all
            self._storage.set_cursor_values({self._prefix + name: "" for name in names})

    def set_aside(self) -> None:
        """Out of the sensor's way for good (its tag says why), kept for an operator to look at."""
        self._instance.add_run_tags(self._run_id, {OUTBOX_TAG: UNREADABLE})

    def publish(self, nats: NatsResource, log: logging.Logger, retry_s: float) -> bool:
        """The run's own publish of what is unsent, retried up to `retry_s`; False when NATS did not take it
        (the sensor publishes it once NATS is back)."""
        end, events = self.unsent()
        if not events:
            return True
        if not nats.publish(events, log, retry_s=retry_s):
            return False
        self.sent(end)
        return True


def stored_final_event(instance: dg.DagsterInstance, deliberation_id: str, run_id: str | None = None) -> Event | None:
    """The final event the collect step stored with its materialization (of `run_id`, when given), or None."""
    record = latest_event(instance.fetch_materializations, deliberation_id, run_id)
    stored = record.asset_materialization.metadata.get(FINAL_EVENT_METADATA_KEY) if record else None
    return event_from_stored(stored.value) if stored is not None else None


def _closing_event(instance: dg.DagsterInstance, run: dg.DagsterRun) -> Event | None:
    """The final event of a run that ended without recording one in its outbox: the one its materialization
    stored (the run died right after it), else it failed before collecting, or was canceled. A run that
    succeeded without one ran with the bridge off: it has nothing to say."""
    deliberation_id = run.tags.get(DELIBERATION_ID_TAG) or run.tags.get(PARTITION_TAG)
    traceparent = run.tags.get(TRACEPARENT_TAG)
    if deliberation_id is None:
        return None
    if run.status is dg.DagsterRunStatus.CANCELED:
        return run_canceled_event(deliberation_id, run.run_id, traceparent)
    if run.status is dg.DagsterRunStatus.FAILURE:
        stored = stored_final_event(instance, deliberation_id, run.run_id)
        if stored is not None:
            return stored
        error = run_error(instance, run.run_id) or "run failed"
        return run_failed_event(deliberation_id, run.run_id, error, traceparent)
    return None


async def _publish_in_order(
    settings: NatsSettings,
    outboxes: list[tuple[dg.DagsterRun, RunOutbox]],
    log: logging.Logger,
    has_time: Callable[[], bool],
) -> list[str]:
    """Publishes each outbox's unsent events, oldest run first, while `has_time`; the first failure raises,
    so that nothing overtakes an event NATS did not take. The ids of the runs with nothing left unsent."""
    emptied: list[str] = []
    async with jetstream(settings) as js:
        await ensure_stream(js, settings)
        for run, outbox in outboxes:
            if emptied and not has_time():  # the rest waits for the next tick
                break
            try:
                end, events = outbox.unsent()
            except (ValueError, KeyError) as exc:  # e.g. written by a version whose events differ: not a stall
                log.error(f"the outbox of run {run.run_id} cannot be read: {type(exc).__name__}: {exc}")
                if run.is_finished:  # a running run's tags are its own to change (see deliver_pending)
                    outbox.set_aside()
                continue
            for name, event, msg_id in events:
                await publish_event(js, settings, name, event, msg_id)
            if events:
                outbox.sent(end)
            emptied.append(run.run_id)
    return emptied


async def deliver_pending(
    instance: dg.DagsterInstance,
    settings: NatsSettings,
    limit: int,
    log: logging.Logger,
    has_time: Callable[[], bool],
) -> list[str]:
    """One pass of the outbox over the `limit` oldest pending runs; NATS errors raise (nothing is lost: the
    next pass goes on from the acknowledgements recorded). Returns the ids of the runs it marked delivered."""
    runs = instance.get_runs(filters=dg.RunsFilter(tags={OUTBOX_TAG: PENDING}), limit=limit, ascending=True)
    outboxes = [(run, RunOutbox(instance, run.run_id, SENSOR)) for run in runs]
    for run, outbox in outboxes:
        if run.is_finished and not outbox.has_final():
            closing = _closing_event(instance, run)
            if closing is not None:
                outbox.record_final(closing)
    emptied = set(await _publish_in_order(settings, outboxes, log, has_time))
    # Only finished runs: their status no longer changes, so adding a tag cannot undo a status update.
    delivered = [(run, outbox) for run, outbox in outboxes if run.is_finished and run.run_id in emptied]
    for run, outbox in delivered:
        outbox.empty()
        instance.add_run_tags(run.run_id, {OUTBOX_TAG: DELIVERED})
    return [run.run_id for run, _ in delivered]
