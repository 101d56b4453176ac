"""Events through NATS outages, re-runs and concurrent launches: none lost, none doubled, one run per id."""

import logging
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from fleet_dagster.cli.main import cli
from fleet_dagster.core.request import parse_request
from fleet_dagster.definitions import defs
from fleet_dagster.deliberation.intake_settings import IntakeSettings
from fleet_dagster.deliberation.run_config import run_config_for
from fleet_dagster.deliberation.sensors import outbox_sensor
from tests import nats_helpers
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def run_deliberation(instance, deliberation_id: str, **fields):
    """Against the model server and the NATS server the test named (deploy_llm, deploy_nats)."""
    fields = {"task": "Design a cache", "roles": ["DEV"], "agents_per_role": 2, "rounds": 1, **fields}
    request = parse_request({**fields, "deliberation_id": deliberation_id})
    instance.add_dynamic_partitions("deliberations", [deliberation_id])
    return defs.resolve_job_def("deliberation_job").execute_in_process(
        run_config=run_config_for(request),
        instance=instance,
        partition_key=deliberation_id,
        tags={"fleet/deliberation_id": deliberation_id},
        raise_on_error=False,
    )


def agent_events(url: str) -> Counter:
    events = nats_helpers.stored_events(url, "agent.response.completed")
    return Counter((e["deliberation_id"], e["agent_id"], e["phase"], e.get("target_agent_id")) for e in events)


def test_no_event_is_lost_or_doubled_when_nats_is_down_during_plan_and_collect(
    nats_server, instance, sim_llm_factory, deploy_llm
):
    server = sim_llm_factory(latency_s=2.0)  # the councils (3 calls in a row) outlast both outages
    deploy_llm(server)
    nats_helpers.publish_raw(nats_server.url, [])  # the stream exists; then NATS goes away
    nats_server.stop()

    back = {}

    def outages() -> None:
        try:
            take_nats_down_twice()
        except Exception as exc:  # noqa: BLE001 - reported by the test, not lost in the thread
            back["error"] = exc

    def calls_made() -> int:
        return sum(server.requests_by_agent.values())

    def take_nats_down_twice() -> None:
        # Down while the plan step announces the run: its councils already call the model.
        wait_until(lambda: calls_made() > 0)
        time.sleep(1.5)
        nats_server.start()
        wait_until(lambda: nats_helpers.stored_events(nats_server.url, "deliberation.accepted"))
        # And again while the collect step streams the agents' calls and, once the last call is
        # answered, publishes the final event.
        nats_server.stop()
        wait_until(lambda: calls_made() >= 6)
        time.sleep(server.settings.latency_s + 1.5)
        back["at"] = datetime.now(UTC)
        nats_server.start()

    chaos = threading.Thread(target=outages)
    chaos.start()
    try:
        outcome = run_deliberation(instance, "outage")
        chaos.join()
        assert "error" not in back, back
        assert outcome.success
        assert len(nats_helpers.stored_events(nats_server.url, "deliberation.accepted")) == 1
        assert [e["status"] for e in nats_helpers.stored_events(nats_server.url, "deliberation.completed")] == [
            "COMPLETED"
        ]
        calls = agent_events(nats_server.url)
        assert sum(calls.values()) == 6 and set(calls.values()) == {1}  # 2 proposals, 2 reviews, 2 revisions
        messages = nats_helpers.stored_messages(nats_server.url)
        stored_at = [m.time for m in messages if m.subject != "deliberation.accepted"]
        assert min(stored_at) >= back["at"], "the collect step's events waited for NATS to come back"
    finally:
        chaos.join()


def test_a_final_event_nats_did_not_take_waits_in_the_outbox_and_is_published_later(
    nats_server, instance, dagster_home, sim_llm_factory, monkeypatch, deploy_llm
):
    monkeypatch.setenv("FLEET_NATS_PUBLISH_RETRY_S", "1")
    server = sim_llm_factory(latency_s=0.05)
    deploy_llm(server)
    nats_server.stop()  # down for the whole run
    outcome = run_deliberation(instance, "unheard", rounds=0)
    assert outcome.success  # the deliberation is done; its events' delivery is the outbox's business
    said = [record.user_message for record in instance.all_logs(outcome.run_id) if record.level >= logging.WARNING]
    assert any("wait in the run's outbox" in message for message in said), said

    nats_server.start()
    nats_helpers.evaluate_sensor(outbox_sensor(IntakeSettings()), instance)
    by_hand = CliRunner().invoke(cli, ["republish", "unheard"], env={"NATS_URL": nats_server.url})
    assert by_hand.exit_code == 0 and "deliberation.completed" in by_hand.output, by_hand.output
    completed = nats_helpers.stored_events(nats_server.url, "deliberation.completed")
    assert [(e["deliberation_id"], e["status"], e["run_id"]) for e in completed] == [
        ("unheard", "COMPLETED", outcome.run_id)
    ]


def test_a_second_run_of_a_deliberation_id_publishes_its_own_events(nats_server, instance, sim_llm_factory, deploy_llm):
    server = sim_llm_factory(latency_s=0.05)
    deploy_llm(server)
    first = run_deliberation(instance, "again", rounds=0)
    second = run_deliberation(instance, "again", rounds=0)
    assert first.success and second.success
    calls = agent_events(nats_server.url)
    completed = nats_helpers.stored_events(nats_server.url, "deliberation.completed")
    assert sum(calls.values()) == 4 and set(calls.values()) == {2}  # each run's 2 proposals
    assert {e["run_id"] for e in completed} == {first.run_id, second.run_id}


def test_a_running_deliberation_id_is_not_taken_over_by_a_second_run(
    nats_server, instance, dagster_home, sim_llm_factory, deploy_llm
):
    server = sim_llm_factory()
    server.hold()  # the first run's councils stay in progress until the second launch has been answered
    deploy_llm(server)
    outcomes = {}
    first = threading.Thread(target=lambda: outcomes.update(first=run_deliberation(instance, "once")))
    first.start()
    wait_until(lambda: server.requests_by_agent, 120, "the first run's first call")
    try:
        # A second launch of the same id, as a user would make it from another shell.
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "fleet_dagster.cli",
                "deliberate",
                "Design a cache",
                "--role",
                "DEV",
                "--id",
                "once",
                "--llm-url",
                server.base_url,
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "DAGSTER_HOME": str(dagster_home)},
        )
    finally:
        server.let_go()
    first.join(timeout=180)

    assert second.returncode == 1, second.stderr
    assert "already running in run" in second.stdout.replace("\n", "")
    assert outcomes["first"].success
    metadata = outcomes["first"].get_asset_materialization_events()[0].materialization.metadata
    assert metadata["status"].value == "COMPLETED"
