"""The request sensor against hostile and unlucky input, on a real nats-server: nothing stalls, nothing is lost."""

import asyncio
import json
import shutil
import socket
import threading

import dagster as dg
import jsonschema
import pytest
from nats.js.api import StreamConfig

from fleet_dagster.core.request import parse_request
from fleet_dagster.core.resource_files import resources_dir
from fleet_dagster.definitions import defs
from fleet_dagster.llm.settings import LLM_ENV
from fleet_dagster.nats_bridge.jetstream import jetstream
from fleet_dagster.nats_bridge.local_server import LocalNatsServer
from fleet_dagster.nats_bridge.schemas import schema_for_subject
from fleet_dagster.nats_bridge.settings import NatsSettings
from fleet_dagster.nats_bridge.submit import submit_request
from tests import nats_helpers
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def evaluate(server: LocalNatsServer, instance: dg.DagsterInstance, cursor: str | None):
    return nats_helpers.evaluate_request_sensor(server.url, instance, cursor)


def body(deliberation_id: str, **fields) -> bytes:
    request = {"task": "Design a cache", "roles": ["DEV"], "agents_per_role": 1, "deliberation_id": deliberation_id}
    return json.dumps({**request, **fields}).encode()


def stream_op(server: LocalNatsServer, operation):
    async def run():
        settings = NatsSettings(url=server.url)
        async with jetstream(settings) as js:
            return await operation(js, settings.stream)

    return asyncio.run(run())


def test_poison_requests_are_rejected_and_intake_goes_on(nats_server, instance):
    deep = b'{"task": ' + b"[" * 3000 + b"]" * 3000 + b"}"
    many_requirements = json.dumps({"task": "t", "roles": ["DEV"], "requirements": list(range(20_000))}).encode()
    many_unknown_fields = json.dumps({"task": "t", **{f"field_{i}": i for i in range(20_000)}}).encode()
    lone_surrogates = [
        rb'{"task":"x","roles":["DEV"],"metadata":{"a":["\ud800"]}}',
        rb'{"deliberation_id":"\ud800","task":"x"}',
    ]
    poison = [deep, many_requirements, many_unknown_fields, *lone_surrogates]
    sequences = nats_helpers.publish_raw(nats_server.url, [body("before"), *poison, body("after")])

    result = evaluate(nats_server, instance, None)
    assert isinstance(result, dg.SensorResult), result
    assert sorted(r.run_key for r in result.run_requests) == ["after", "before"]
    rejected = nats_helpers.stored_events(nats_server.url, "deliberation.rejected")
    assert sorted(event["stream_seq"] for event in rejected) == sequences[1:-1]
    for event in rejected:
        assert len(json.dumps(event)) < 16_384, "a rejection stays far below the message limit"
        jsonschema.validate(event, schema_for_subject("deliberation.rejected"))
    assert any("more errors" in e["message"] for event in rejected for e in event["errors"])

    later = nats_helpers.publish_raw(nats_server.url, [body("next")])
    following = evaluate(nats_server, instance, result.cursor)
    assert [r.run_key for r in following.run_requests] == ["next"]
    assert json.loads(following.cursor)["seq"] == later[0]


def test_a_recreated_stream_is_read_from_its_start(nats_server, instance, capfd):
    nats_helpers.publish_raw(nats_server.url, [body(f"old-{i}") for i in range(3)])
    first = evaluate(nats_server, instance, None)
    stream_op(nats_server, lambda js, name: js.delete_stream(name))
    nats_helpers.publish_raw(nats_server.url, [body("new-0"), body("new-1")])  # sequences 1 and 2 again

    after = evaluate(nats_server, instance, first.cursor)
    assert sorted(r.run_key for r in after.run_requests) == ["new-0", "new-1"]
    assert "recreated" in capfd.readouterr().err  # the sensor's log


def test_requests_purged_before_they_were_read_are_reported(nats_server, instance, capfd):
    nats_helpers.publish_raw(nats_server.url, [body(f"lost-{i}") for i in range(3)])
    stream_op(nats_server, lambda js, name: js.purge_stream(name))
    nats_helpers.publish_raw(nats_server.url, [body("kept")])

    result = evaluate(nats_server, instance, None)
    assert [r.run_key for r in result.run_requests] == ["kept"]
    assert "1..3 expired or were purged" in capfd.readouterr().err


def test_the_stream_is_created_with_limits_and_an_operators_limits_are_kept(tmp_path, instance, monkeypatch, ray_head):
    monkeypatch.setenv("FLEET_NATS_MAX_AGE_S", "3600")
    monkeypatch.setenv("FLEET_NATS_MAX_BYTES", str(50 * 1024 * 1024))
    with LocalNatsServer(tmp_path / "created") as server:
        evaluate(server, instance, None)
        info = stream_op(server, lambda js, name: js.stream_info(name))
        assert (info.config.max_age, info.config.max_bytes) == (3600, 50 * 1024 * 1024)

    with LocalNatsServer(tmp_path / "operated") as server:
        operator = StreamConfig(
            name="FLEET", subjects=["deliberation.>", "agent.response.>"], max_age=60, max_bytes=10_000_000
        )
        stream_op(server, lambda js, name: js.add_stream(operator))
        nats_helpers.publish_raw(server.url, [body("one")])
        result = evaluate(server, instance, None)
        info = stream_op(server, lambda js, name: js.stream_info(name))
        assert (info.config.max_age, info.config.max_bytes) == (60, 10_000_000)
        assert not info.config.allow_direct, "the operator's stream allows no direct get: it is read another way"
        assert [r.run_key for r in getattr(result, "run_requests", [])] == ["one"], result


def test_a_request_published_twice_is_a_duplicate_not_a_rejection(nats_server, instance):
    same = body("twice", rounds=0)
    sequences = nats_helpers.publish_raw(nats_server.url, [same, same, body("twice", rounds=2)])
    result = evaluate(nats_server, instance, None)
    assert [r.run_key for r in result.run_requests] == ["twice"]
    duplicates = nats_helpers.stored_events(nats_server.url, "deliberation.duplicate")
    assert [(d["stream_seq"], d["original_stream_seq"]) for d in duplicates] == [(sequences[1], sequences[0])]
    rejected = nats_helpers.stored_events(nats_server.url, "deliberation.rejected")
    assert [r["stream_seq"] for r in rejected] == [sequences[2]]  # same id, another request

    # Once its run exists, a later retry of the same request names that run.
    instance.add_dynamic_partitions("deliberations", ["twice"])
    run = instance.create_run_for_job(
        defs.resolve_job_def("deliberation_job"),
        run_config=result.run_requests[0].run_config,
        tags=result.run_requests[0].tags,
    )
    retried = nats_helpers.publish_raw(nats_server.url, [same])
    evaluate(nats_server, instance, result.cursor)
    latest = nats_helpers.stored_events(nats_server.url, "deliberation.duplicate")[-1]
    assert (latest["stream_seq"], latest["original_stream_seq"], latest["run_id"]) == (
        retried[0],
        sequences[0],
        run.run_id,
    )
    for event in nats_helpers.stored_events(nats_server.url, "deliberation.duplicate"):
        jsonschema.validate(event, schema_for_subject("deliberation.duplicate"))


def test_submit_wait_follows_the_run_its_request_joined(nats_server, instance):
    """A producer's retry joins the first request's run (already finished here): its wait ends with that run's
    final event, not with another request's rejection that names the same id."""
    request = parse_request(
        {"task": "Design a cache", "roles": ["DEV"], "agents_per_role": 1, "deliberation_id": "dup"}
    )
    first = nats_helpers.publish_raw(nats_server.url, [request.model_dump_json().encode()])[0]
    event = {"deliberation_id": "dup", "task_id": "dup"}
    nats_helpers.publish_raw(
        nats_server.url,
        [json.dumps({**event, "run_id": "run-a", "stream_seq": first}).encode()],
        "deliberation.accepted",
    )
    completed = {
        **event,
        "run_id": "run-a",
        "status": "COMPLETED",
        "winners": {},
        "total_agents": 1,
        "successful_responses": 1,
        "failed_responses": 0,
        "duration_ms": 5,
        "completed_at": "now",
    }
    nats_helpers.publish_raw(nats_server.url, [json.dumps(completed).encode()], "deliberation.completed")

    waited = {}
    settings = NatsSettings(url=nats_server.url)
    waiter = threading.Thread(target=lambda: waited.update(outcome=asyncio.run(submit_request(settings, request, 30))))
    waiter.start()
    wait_until(
        lambda: len(nats_helpers.stored_events(nats_server.url, "deliberation.requested")) >= 2,
        30,
        "the submitted request and its retry",
    )
    conflicting = {**event, "stream_seq": 999, "errors": [{"field": "deliberation_id", "message": "taken"}]}
    nats_helpers.publish_raw(nats_server.url, [json.dumps(conflicting).encode()], "deliberation.rejected")
    evaluate(nats_server, instance, None)  # the retry is answered as a duplicate of the first request
    waiter.join(timeout=60)

    _, outcome = waited["outcome"]
    assert outcome == {"subject": "deliberation.completed", "event": completed}


def test_a_role_whose_profile_came_after_the_code_loaded_is_runnable_or_rejected(
    nats_server, instance, tmp_path, monkeypatch
):
    """Accepted means runnable: the daemon must be able to create the run from the run config the sensor made."""
    resources = shutil.copytree(resources_dir(), tmp_path / "resources")
    shutil.copy(resources / "roles" / "DEV.yaml", resources / "roles" / "NEWROLE.yaml")
    monkeypatch.setenv("FLEET_RESOURCES_DIR", str(resources))  # the ConfigMap gained a profile
    sequences = nats_helpers.publish_raw(nats_server.url, [body("new-role", roles=["NEWROLE"]), body("old-role")])

    result = evaluate(nats_server, instance, None)
    job = defs.resolve_job_def("deliberation_job")
    for run_request in result.run_requests:
        assert dg.validate_run_config(job, run_request.run_config), run_request.run_key
    assert [r.run_key for r in result.run_requests] == ["old-role"]
    [rejected] = nats_helpers.stored_events(nats_server.url, "deliberation.rejected")
    assert rejected["stream_seq"] == sequences[0] and rejected["errors"][0]["field"] == "roles"
    assert "NEWROLE" in rejected["errors"][0]["message"] and "reload" in rejected["errors"][0]["message"]


def test_a_recreated_streams_message_at_a_used_sequence_is_not_taken_for_the_old_one(nats_server, instance):
    """The same id at the same stream sequence of another stream is another message: its id has a run already,
    so it is answered (a duplicate naming that run, or a rejection), never accepted for a run that cannot start."""
    nats_helpers.publish_raw(nats_server.url, [body("same"), body("differs")])
    first = evaluate(nats_server, instance, None)
    job = defs.resolve_job_def("deliberation_job")
    instance.add_dynamic_partitions("deliberations", ["same", "differs"])
    runs = {
        r.run_key: instance.create_run_for_job(job, run_config=r.run_config, tags=r.tags) for r in first.run_requests
    }
    stream_op(nats_server, lambda js, name: js.delete_stream(name))
    again = nats_helpers.publish_raw(nats_server.url, [body("same"), body("differs", rounds=2)])  # sequences 1, 2

    result = evaluate(nats_server, instance, first.cursor)
    assert result.run_requests == [], "nothing to run: no councils start on arrival"
    [duplicate] = nats_helpers.stored_events(nats_server.url, "deliberation.duplicate")
    assert (duplicate["stream_seq"], duplicate["run_id"]) == (again[0], runs["same"].run_id)
    [rejected] = nats_helpers.stored_events(nats_server.url, "deliberation.rejected")
    assert rejected["stream_seq"] == again[1] and "already used" in rejected["errors"][0]["message"]


@pytest.fixture
def silent_model_server():
    """A model server that drops every request: its port takes connections (the kernel's backlog) and never
    answers one, as behind a firewall that drops packets after the handshake."""
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    finally:
        listener.close()


def test_a_tick_keeps_its_time_budget_and_what_does_not_fit_waits(
    nats_server, instance, silent_model_server, monkeypatch
):
    """Checking the first request against a server that never answers takes this tick's time: the requests
    after it wait for the next tick (the cursor stays before them), and each tick makes progress."""
    monkeypatch.setenv(LLM_ENV["base_url"], silent_model_server)
    sequences = nats_helpers.publish_raw(nats_server.url, [body(f"patient-{i}") for i in range(3)])

    first = nats_helpers.evaluate_request_sensor(nats_server.url, instance, None, tick_budget_s=3)
    assert [r.run_key for r in first.run_requests] == ["patient-0"]
    assert json.loads(first.cursor)["seq"] == sequences[0]
    second = nats_helpers.evaluate_request_sensor(nats_server.url, instance, first.cursor, tick_budget_s=3)
    assert [r.run_key for r in second.run_requests] == ["patient-1"]
    assert json.loads(second.cursor)["seq"] == sequences[1]
