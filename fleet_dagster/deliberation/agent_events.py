"""agent.response.* events while the councils run, not only when the run ends."""

import dagster as dg

from fleet_dagster.core.records import AgentCall
from fleet_dagster.nats_bridge.event_builders import agent_response_events
from fleet_dagster.nats_bridge.resources import NatsResource


class AgentResponseStream:
    """Publishes every agent call of one deliberation once, in the order its council recorded it.

    The collect step feeds it what each poll of the councils brings, then the councils' final records;
    a publish that fails is retried with the next batch (and at the end), so nothing is skipped.
    """

    def __init__(self, nats: NatsResource, deliberation_id: str, log: dg.DagsterLogManager):
        self._nats = nats
        self._deliberation_id = deliberation_id
        self._log = log
        self.published: dict[str, int] = {}  # role -> how many of its calls are on NATS

    @property
    def enabled(self) -> bool:
        return self._nats.settings() is not None

    def send(self, role: str, calls: list[AgentCall], first_index: int = 0) -> None:
        """`calls` are the council's calls from number `first_index` on."""
        start = self.published.get(role, 0)
        if not self.enabled or first_index > start:  # a gap cannot be numbered: the final records fill it
            return
        fresh = calls[start - first_index :]
        if not fresh:
            return
        if self._nats.publish(agent_response_events(self._deliberation_id, role, fresh, start), self._log):
            self.published[role] = start + len(fresh)
