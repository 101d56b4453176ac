"""One trace per request, end to end: a traceparent published with a NATS request (or a new one) is on the run's
tags, every event the bridge publishes, every HTTP call to the model server and `fleet-dagster status --json`."""

import json

import pytest

from fleet_dagster.core.trace import trace_id, traceparent_problem
from tests.e2e.test_launches import events, fleet_status, publish, runs_for, wait_for

pytestmark = pytest.mark.e2e

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
SUBJECTS = ("deliberation.accepted", "agent.response.completed", "deliberation.completed")


def traced_request(deliberation_id: str, **fields) -> bytes:
    body = {"task": "Design a cache", "roles": ["DEV"], "agents_per_role": 2, "rounds": 1}
    return json.dumps({**body, "deliberation_id": deliberation_id, **fields}).encode()


def events_of(stack, deliberation_id: str) -> dict[str, list[dict]]:
    return {s: [e for e in events(stack, s) if e["deliberation_id"] == deliberation_id] for s in SUBJECTS}


def test_a_trace_follows_each_request_through_nats_runs_events_model_calls_and_status(stack):
    bad_trace = "00-11111111111111111111111111111111-2222222222222222-01"
    publish(
        stack,
        [
            traced_request("traced-1", traceparent=TRACEPARENT),
            traced_request("traced-2"),  # without one: the bridge starts a trace
            traced_request("traced-bad", traceparent=bad_trace, agents_per_role=0),
            traced_request("traced-garbled", traceparent="00-not-a-trace"),
        ],
    )
    done = {"traced-1", "traced-2"}
    wait_for(
        lambda: done <= {e["deliberation_id"] for e in events(stack, "deliberation.completed")},
        300,
        "both deliberations to complete",
        stack,
    )
    rejected = {e["deliberation_id"]: e for e in events(stack, "deliberation.rejected")}
    assert rejected["traced-bad"]["traceparent"] == bad_trace  # a rejection continues the request's trace
    assert rejected["traced-garbled"]["errors"][0]["field"] == "traceparent"
    assert rejected["traced-garbled"]["traceparent"] is None

    for deliberation_id in sorted(done):
        (run,) = runs_for(stack, deliberation_id)
        traceparent = run.tags["fleet/traceparent"]
        assert traceparent_problem(traceparent) is None
        if deliberation_id == "traced-1":
            assert traceparent == TRACEPARENT
        published = events_of(stack, deliberation_id)
        assert published["deliberation.accepted"][0]["traceparent"] == traceparent
        assert published["deliberation.completed"][0]["traceparent"] == traceparent
        # Each agent response is its model call's own span in the same trace, as the model server saw it.
        spans = [e["traceparent"] for e in published["agent.response.completed"]]
        assert len(spans) == 6 and len(set(spans)) == 6  # propose, review, revise x 2 agents
        assert {trace_id(span) for span in spans} == {trace_id(traceparent)}
        assert sorted(stack.sim.traceparents[deliberation_id]) == sorted(spans)
        assert fleet_status(stack, deliberation_id)["traceparent"] == traceparent
