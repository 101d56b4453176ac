"""agent.response.* events while the councils run, not only when the run ends."""

import dagster as dg

from fleet_dagster.core.records import AgentCall
from fleet_dagster.nats_bridge.event_builders import agent_response_events
from fleet_dagster.nats_bridge.resources import NatsResource


class AgentResponseStream:
    """Publishes every agent call of one deliberation once, in the order its council recorded it.

    The collect step feeds it what each poll of the councils brings, then the councils' final records;
    a publish that fails is retried with the next batch (and at the end), so nothing is skipped, and a
    NATS outage costs each poll one attempt, not three.
    """

    def __init__(self, nats: NatsResource, deliberation_id: str, log: dg.DagsterLogManager):
        self._nats = nats
        self._deliberation_id = deliberation_id
        self._log = log
        self.published: dict[str, int] = {}  # role -> how many of its calls are on NATS

    @property
    def enabled(self) -> bool:
        return self._nats.settings() is not None

    def send(
        self,
        calls_by_role: dict[str, list[AgentCall]],
        first_index: dict[str, int] | None = None,
        attempts: int = 1,
    ) -> None:
        """`calls_by_role[role]` are the council's calls from number `first_index[role]` (default 0) on;
        whatever is new goes out in one publish (what fails goes with the next batch)."""
        events, published = [], dict(self.published)
        for role, calls in calls_by_role.items():
            start, first = self.published.get(role, 0), (first_index or {}).get(role, 0)
            if first > start:  # a gap cannot be numbered: the final records fill it
                continue
            fresh = calls[start - first :]
            events += agent_response_events(self._deliberation_id, role, fresh, start)
            published[role] = start + len(fresh)
        if self.enabled and events and self._nats.publish(events, self._log, attempts):
            self.published = published
