"""agent.response.* events while the councils run, not only when the run ends."""

import dagster as dg
from pydantic import BaseModel

from fleet_dagster.core.records import AgentCall
from fleet_dagster.deliberation.outbox import RunOutbox
from fleet_dagster.nats_bridge.event_builders import agent_response_events
from fleet_dagster.nats_bridge.resources import NatsResource
from fleet_dagster.ray_cluster.council_client import CouncilClient


class AgentResponseStream:
    """Records every agent call of one run's deliberation once in the run's outbox, in the order its council
    recorded it, and publishes what the outbox holds unsent.

    The collect step feeds it what each poll of the councils brings, then the councils' final records. How
    far each council is recorded is kept on the CouncilRunner with the council, so a resumed collect step
    goes on from there instead of recording everything again. A publish that fails is retried with the
    next batch, so a NATS outage costs each poll one attempt; the last one retries up to the bound, and
    whatever NATS still did not take the deliberation_outbox sensor publishes once it is back.
    """

    def __init__(self, nats: NatsResource, councils: CouncilClient, outbox: RunOutbox, log: dg.DagsterLogManager):
        """`councils` are those of the run publishing: their owner is its run id; `outbox` is that run's."""
        self._nats = nats
        self._outbox = outbox
        self._deliberation_id = councils.deliberation_id
        self._run_id = councils.owner
        self._councils = councils
        self._log = log
        self.enabled = nats.settings() is not None
        # role -> how many of its calls are in the outbox; a resumed collect step goes on where the last one was
        self.published: dict[str, int] = {}
        if self.enabled:
            self.published = councils.published()

    def _fresh(
        self, calls_by_role: dict[str, list[AgentCall]], first_index: dict[str, int] | None
    ) -> tuple[list[tuple[str, BaseModel, str]], dict[str, int]]:
        """`calls_by_role[role]` are the council's calls from number `first_index[role]` (default 0) on."""
        events, published = [], dict(self.published)
        for role, calls in calls_by_role.items():
            start, first = self.published.get(role, 0), (first_index or {}).get(role, 0)
            if first > start:  # a gap cannot be numbered: the final records fill it
                continue
            fresh = calls[start - first :]
            events += agent_response_events(self._deliberation_id, self._run_id, role, fresh)
            published[role] = start + len(fresh)
        return events, published

    def _record(self, events: list[tuple[str, BaseModel, str]], published: dict[str, int]) -> None:
        self._outbox.record(events)
        if published != self.published:
            self.published = published
            self._councils.mark_published(published)

    def restart(self, role: str) -> None:
        """The role's council was started again: its calls come again from the first, in a new order. Those
        already on NATS are stored once: their msg ids name the call, not its place (see event_builders)."""
        self.published.pop(role, None)

    def send(self, calls_by_role: dict[str, list[AgentCall]], first_index: dict[str, int] | None = None) -> None:
        """Whatever is new is recorded, then what is unsent goes out in one publish, tried once."""
        if self.enabled:
            events, published = self._fresh(calls_by_role, first_index)
            if events:
                self._record(events, published)
                self._outbox.publish(self._nats, self._log, retry_s=0)

    def finish(self, calls_by_role: dict[str, list[AgentCall]], final: tuple[str, BaseModel, str]) -> bool:
        """The calls not yet recorded and the final event, recorded, then published with what is unsent,
        retried through an outage up to the bound; False when NATS did not take them (yet)."""
        if not self.enabled:
            return True
        events, published = self._fresh(calls_by_role, None)
        self._record(events, published)
        self._outbox.record_final(final)
        return self._outbox.publish(self._nats, self._log, retry_s=self._nats.publish_retry_s())
