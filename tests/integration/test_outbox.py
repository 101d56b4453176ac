"""Events through a NATS outage longer than every retry, with the daemon restarted meanwhile: none lost."""

import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import jsonschema
import pytest
from pydantic import BaseModel

from fleet_dagster.core.request import parse_request
from fleet_dagster.definitions import defs
from fleet_dagster.deliberation.intake_settings import IntakeSettings
from fleet_dagster.deliberation.keys_and_tags import DELIBERATION_ID_TAG
from fleet_dagster.deliberation.outbox import DELIVERED, OUTBOX_TAG, RUN, SENSOR, UNREADABLE, RunOutbox
from fleet_dagster.deliberation.run_config import run_config_for
from fleet_dagster.deliberation.sensors import outbox_sensor
from fleet_dagster.nats_bridge.events import DeliberationAccepted
from fleet_dagster.nats_bridge.local_server import LocalNatsServer
from fleet_dagster.nats_bridge.schemas import schema_for_subject
from tests import nats_helpers
from tests.postgres_server import dagster_storage_yaml

pytestmark = pytest.mark.integration


def tick_delivery_sensors(dagster_home: Path, cursors: dict[str, str | None]) -> None:
    """One tick of every sensor but the request intake, as a daemon started afresh would evaluate it: a new
    instance handle, the cursors the daemon kept from earlier ticks (a failed tick's too, as it keeps them)."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as fresh:
        for sensor in defs.sensors:
            if sensor.name != "deliberation_requests":
                cursors[sensor.name] = nats_helpers.evaluate_sensor(sensor, fresh, cursors.get(sensor.name)).cursor


def run_deliberation(instance: dg.DagsterInstance, deliberation_id: str) -> dg.ExecuteInProcessResult:
    request = parse_request(
        {
            "task": "Design a cache",
            "roles": ["DEV"],
            "agents_per_role": 2,
            "rounds": 0,
            "deliberation_id": deliberation_id,
        }
    )
    instance.add_dynamic_partitions("deliberations", [deliberation_id])
    return defs.resolve_job_def("deliberation_job").execute_in_process(
        run_config=run_config_for(request),
        instance=instance,
        partition_key=deliberation_id,
        tags={DELIBERATION_ID_TAG: deliberation_id},
        raise_on_error=False,
    )


def canceled_run(instance: dg.DagsterInstance, deliberation_id: str) -> dg.DagsterRun:
    """A run canceled while queued, before any step: as the UI's Terminate leaves it. Created with its job's
    tags, as the daemon and the UI create runs."""
    request = parse_request({"task": "Design a cache", "roles": ["DEV"], "deliberation_id": deliberation_id})
    instance.add_dynamic_partitions("deliberations", [deliberation_id])
    job = defs.resolve_job_def("deliberation_job")
    run = instance.create_run_for_job(
        job,
        run_config=run_config_for(request),
        tags={**job.run_tags, DELIBERATION_ID_TAG: deliberation_id, "dagster/partition": deliberation_id},
    )
    instance.report_run_canceled(run)
    return run


def test_every_event_arrives_once_after_an_outage_longer_than_every_retry(
    nats_server, instance, dagster_home, sim_llm_factory, monkeypatch, deploy_llm
):
    monkeypatch.setenv("FLEET_NATS_PUBLISH_RETRY_S", "1")  # minutes in production: the outage outlasts them
    deploy_llm(sim_llm_factory(latency_s=0.05))
    nats_helpers.publish_raw(nats_server.url, [])  # the stream exists; then NATS goes away
    nats_server.stop()
    cursors: dict[str, str | None] = {}
    tick_delivery_sensors(dagster_home, cursors)  # the daemon ran before the outage
    outcome = run_deliberation(instance, "patient")
    called_off = canceled_run(instance, "called-off")
    for _ in range(2):  # NATS still down; the daemon restarts between ticks
        tick_delivery_sensors(dagster_home, cursors)
    nats_server.start()
    for _ in range(2):  # a second tick after delivery publishes nothing again
        tick_delivery_sensors(dagster_home, cursors)
    arrived = nats_helpers.stored_msg_ids(nats_server.url)
    canceled = nats_helpers.stored_events(nats_server.url, "deliberation.canceled")

    run_id = outcome.run_id
    agents = [key for key in arrived if key[0] == "agent.response.completed"]
    assert arrived[("deliberation.accepted", f"accepted-patient-{run_id}")] == 1, arrived
    assert arrived[("deliberation.completed", f"final-patient-{run_id}")] == 1, arrived
    assert len(agents) == 2, arrived  # the 2 proposals of rounds=0
    assert arrived[("deliberation.canceled", f"final-called-off-{called_off.run_id}")] == 1, arrived
    assert set(arrived.values()) == {1}, arrived
    assert canceled[0]["run_id"] == called_off.run_id and canceled[0]["status"] == "CANCELED"
    jsonschema.validate(canceled[0], schema_for_subject("deliberation.canceled"))
    kept = instance.run_storage.get_cursor_values({f"fleet/outbox/{run_id}/chunk/0", f"fleet/outbox/{run_id}/final"})
    assert set(kept.values()) == {""}, kept  # delivered: the outbox keeps no copy of what NATS holds
    assert outcome.success  # the deliberation succeeded: its events' delivery is the outbox's business


@pytest.fixture(params=["sqlite", "postgres"])
def any_instance(request, tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """A Dagster instance on each storage a deployment uses: SQLite (dev), PostgreSQL (the chart)."""
    config = "telemetry:\n  enabled: false\n"
    if request.param == "postgres":
        config += dagster_storage_yaml(
            request.getfixturevalue("postgres").create_database(f"outbox_{uuid.uuid4().hex[:12]}")
        )
    (tmp_path / "dagster.yaml").write_text(config)
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        yield instance


def accepted(n: int) -> tuple[str, BaseModel, str]:
    return "deliberation.accepted", DeliberationAccepted(deliberation_id="kept", run_id="r1"), f"event-{n}"


def test_the_outbox_hands_out_what_no_publisher_saw_acknowledged_in_order(any_instance):
    by_run = RunOutbox(any_instance, "r1", RUN)
    by_sensor = RunOutbox(any_instance, "r1", SENSOR)
    by_run.record([accepted(0), accepted(1)])
    by_run.record([accepted(2)])
    end, events = by_sensor.unsent()
    assert [msg_id for _, _, msg_id in events] == ["event-0", "event-1", "event-2"] and end == 2
    by_run.sent(1)  # the run's publish of its first chunk was acknowledged
    assert [msg_id for _, _, msg_id in by_sensor.unsent()[1]] == ["event-2"]
    by_run.record_final(accepted(3))
    assert [msg_id for _, _, msg_id in by_sensor.unsent()[1]] == ["event-2", "event-3"]
    by_sensor.sent(3)  # the sensor got the rest through; the run's own count stays behind
    assert by_run.unsent()[1] == [] and by_run.has_final()
    assert not RunOutbox(any_instance, "r2", RUN).has_final()  # each run its own


def test_an_outbox_that_cannot_be_read_is_set_aside_and_holds_up_no_other(tmp_path, instance, deploy_nats):
    garbled, fine = canceled_run(instance, "garbled"), canceled_run(instance, "fine")
    # What a version with other events (or a hand edit) could leave: not an event list.
    instance.run_storage.set_cursor_values({f"fleet/outbox/{garbled.run_id}/chunk/0": "{not json"})
    instance.run_storage.set_cursor_values({f"fleet/outbox/{garbled.run_id}/chunks": "1"})
    with LocalNatsServer(tmp_path / "jetstream") as nats_server:
        deploy_nats(nats_server.url)
        nats_helpers.evaluate_sensor(outbox_sensor(IntakeSettings()), instance)
        canceled = nats_helpers.stored_events(nats_server.url, "deliberation.canceled")
    assert [event["run_id"] for event in canceled] == [fine.run_id]
    assert instance.get_run_by_id(garbled.run_id).tags[OUTBOX_TAG] == UNREADABLE
    assert instance.get_run_by_id(fine.run_id).tags[OUTBOX_TAG] == DELIVERED


def test_a_tick_out_of_time_leaves_the_next_runs_to_the_next_tick(tmp_path, instance, deploy_nats):
    spent_at_once = outbox_sensor(IntakeSettings(tick_budget_s=0.001))  # each tick gets one run through
    first, second = canceled_run(instance, "first-up"), canceled_run(instance, "next-up")
    with LocalNatsServer(tmp_path / "jetstream") as nats_server:
        deploy_nats(nats_server.url)
        nats_helpers.evaluate_sensor(spent_at_once, instance)
        after_one = [event["run_id"] for event in nats_helpers.stored_events(nats_server.url, "deliberation.canceled")]
        nats_helpers.evaluate_sensor(spent_at_once, instance)
        after_two = [event["run_id"] for event in nats_helpers.stored_events(nats_server.url, "deliberation.canceled")]
    assert after_one == [first.run_id]
    assert after_two == [first.run_id, second.run_id]
