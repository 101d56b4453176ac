"""The stack runs on PostgreSQL, as production does: what the daemon's sensor and the webserver write is in it."""

import contextlib

import psycopg2
import pytest
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from tests.e2e.test_launches import events, instance, publish, request, runs_for, wait_for

pytestmark = pytest.mark.e2e


def query(stack, statement: str, *params: str) -> list[tuple]:
    with contextlib.closing(psycopg2.connect(stack.database_url)) as connection, connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall()


def test_the_stack_keeps_runs_events_and_schedules_in_postgres(stack):
    with instance(stack) as dagster:
        assert isinstance(dagster.run_storage, PostgresRunStorage)
        assert isinstance(dagster.event_log_storage, PostgresEventLogStorage)
        assert isinstance(dagster.schedule_storage, PostgresScheduleStorage)

    # A request through NATS: the daemon's sensor creates the run, the run worker records its events.
    publish(stack, [request("pg-1")])

    def finished_run() -> list[tuple]:
        rows = query(
            stack,
            "SELECT runs.run_id, runs.status FROM runs JOIN run_tags ON run_tags.run_id = runs.run_id"
            " WHERE run_tags.key = 'fleet/deliberation_id' AND run_tags.value = %s",
            "pg-1",
        )
        return rows if rows and rows[0][1] in ("SUCCESS", "FAILURE", "CANCELED") else []

    rows = wait_for(finished_run, 300, "the run requested through NATS, in Postgres", stack)
    assert [status for _, status in rows] == ["SUCCESS"]
    assert "pg-1" in {e["deliberation_id"] for e in events(stack, "deliberation.completed")}
    assert query(stack, "SELECT count(*) FROM event_logs WHERE run_id = %s", rows[0][0])[0][0] > 0
    # The daemon's outbox sensor, on Postgres, saw every event of the run acknowledged (deliberation/outbox.py).
    outbox_tag = "SELECT value FROM run_tags WHERE run_id = %s AND key = 'fleet/outbox'"
    wait_for(lambda: query(stack, outbox_tag, rows[0][0]) == [("delivered",)], 120, "the run's outbox delivered", stack)
    # The instance reads its runs from Postgres (only pg-1's: the benchmark schedule may start one meanwhile).
    assert {r.run_id for r in runs_for(stack, "pg-1")} == {run_id for run_id, _ in rows}
    heartbeats = {daemon for (daemon,) in query(stack, "SELECT daemon_type FROM daemon_heartbeats")}
    assert {"SENSOR", "SCHEDULER", "QUEUED_RUN_COORDINATOR"} <= heartbeats
