"""The three ways users start work, against the real webserver and daemon."""

import json
import subprocess
import sys

import dagster as dg
import pytest
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

from tests.nats_helpers import publish_raw, stored_events
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e


def client(stack, port: int | None = None) -> DagsterGraphQLClient:
    return DagsterGraphQLClient("127.0.0.1", port_number=port or stack.webserver_port)


def instance(stack) -> dg.DagsterInstance:
    return dg.DagsterInstance.from_config(stack.env["DAGSTER_HOME"])


def runs_of_partition(dagster: dg.DagsterInstance, partition: str) -> list[dg.DagsterRun]:
    """Only that partition's runs: the stack's benchmark schedule starts runs of its own every minute."""
    return dagster.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": partition}))


def wait_for(predicate, timeout_s: float, what: str, stack=None, poll_s: float = 1.0):
    """wait_until, failing with the daemon's log when the stack is given."""
    return wait_until(predicate, timeout_s, what, poll_s, detail=(lambda: stack.log("daemon")) if stack else None)


def fleet_status(stack, deliberation_id: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-m", "fleet_dagster.cli", "status", deliberation_id, "--json"],
        capture_output=True,
        text=True,
        env=stack.env,
        check=True,
    )
    return json.loads(done.stdout)


def deliberation_config(task: str, **fields) -> dict:
    return {"ops": {"deliberation": {"config": {"task": task, **fields}}}}


def test_graphql_launch_then_status(stack):
    with instance(stack) as dagster:
        dagster.add_dynamic_partitions("deliberations", ["gql-1"])
    run_id = client(stack).submit_job_execution(
        "deliberation_job",
        run_config=deliberation_config("Design a cache", roles=["DEV", "QA"], agents_per_role=2),
        tags={"dagster/partition": "gql-1", "fleet/deliberation_id": "gql-1"},
    )
    status = wait_for(
        lambda: client(stack).get_run_status(run_id).value in ("SUCCESS", "FAILURE"), 180, "the GraphQL run", stack
    )
    assert status
    document = fleet_status(stack, "gql-1")
    assert document["status"] == "COMPLETED" and document["run_id"] == run_id
    assert set(document["winners"]) == {"DEV", "QA"}


def test_a_read_only_webserver_refuses_a_graphql_launch_the_writable_one_accepts(stack):
    """Viewers get Dagster's read-only webserver (the chart's dagsterWebserver.enableReadOnly): the same UI and
    GraphQL over the same workspace and instance, with every launch refused; launches go to the writable one."""
    with instance(stack) as dagster:
        dagster.add_dynamic_partitions("deliberations", ["read-only-1"])
    launch = {
        "run_config": deliberation_config("Design a cache", roles=["DEV"], agents_per_role=2),
        "tags": {"dagster/partition": "read-only-1", "fleet/deliberation_id": "read-only-1"},
    }
    stack.start("webserver-read-only")
    try:
        stack.wait_serving("webserver-read-only", stack.read_only_port)
        with pytest.raises(DagsterGraphQLClientError) as caught:
            client(stack, stack.read_only_port).submit_job_execution("deliberation_job", **launch)
    finally:
        stack.stop("webserver-read-only")
    assert "UnauthorizedError" in str(caught.value), caught.value
    with instance(stack) as dagster:
        assert runs_of_partition(dagster, "read-only-1") == []
    run_id = client(stack).submit_job_execution("deliberation_job", **launch)
    ended = wait_for(
        lambda: client(stack).get_run_status(run_id).value in ("SUCCESS", "FAILURE"), 180, "the writable launch", stack
    )
    assert ended and client(stack).get_run_status(run_id).value == "SUCCESS"


@pytest.mark.parametrize(
    "fields, named",
    [
        ({"roles": ["WIZARD"]}, ["WIZARD"]),  # by the config schema: roles are an enum of the profiles
        ({"agents_per_role": 0}, ["agents_per_role"]),  # by the config mapping: a bound the schema cannot say
    ],
)
def test_bad_launchpad_config_is_refused(stack, fields, named):
    with instance(stack) as dagster:
        dagster.add_dynamic_partitions("deliberations", ["refused-1"])
        before = len(runs_of_partition(dagster, "refused-1"))
    with pytest.raises(DagsterGraphQLClientError) as caught:
        client(stack).submit_job_execution(
            "deliberation_job",
            run_config=deliberation_config("t", **fields),
            tags={"dagster/partition": "refused-1"},
        )
    message = str(caught.value) + str(getattr(caught.value, "body", ""))
    assert all(name in message for name in named), message
    with instance(stack) as dagster:
        assert len(runs_of_partition(dagster, "refused-1")) == before
        assert fleet_status(stack, "refused-1")["status"] == "UNKNOWN"


def publish(stack, payloads: list[bytes]) -> None:
    publish_raw(stack.nats.url, payloads)


def events(stack, subject: str) -> list[dict]:
    return stored_events(stack.nats.url, subject)


def request(deliberation_id: str) -> bytes:
    return json.dumps(
        {
            "task": "Design a cache",
            "roles": ["DEV"],
            "agents_per_role": 2,
            "rounds": 0,
            "deliberation_id": deliberation_id,
        }
    ).encode()


def runs_for(stack, deliberation_id: str) -> list[dg.DagsterRun]:
    with instance(stack) as dagster:
        return dagster.get_runs(filters=dg.RunsFilter(tags={"fleet/deliberation_id": deliberation_id}))


def test_nats_requests_through_the_daemon_run_exactly_once(stack):
    first = [f"nats-a{i}" for i in range(8)]
    publish(
        stack,
        [request(i) for i in first[:4]]
        + [b"{broken", json.dumps({"task": ""}).encode()]
        + [request(i) for i in first[4:]],
    )

    def completed(ids):
        done = {e["deliberation_id"] for e in events(stack, "deliberation.completed")}
        return set(ids) <= done

    wait_for(lambda: completed(first), 300, "8 deliberation.completed events", stack)
    assert len(events(stack, "deliberation.rejected")) == 2
    assert all(len(runs_for(stack, i)) == 1 for i in first)

    # A daemon killed while it launches a run leaves that run STARTING for good (on Kubernetes, run
    # monitoring's start timeout ends it); this test is about a crash while runs execute, with one queued
    # behind them. A slow model keeps the runs executing well past their launches, even on a busy machine.
    second = [f"nats-b{i}" for i in range(4)]
    # No benchmark run may be launching either when the daemon dies: the every-minute schedule is paused.
    with stack.benchmarks_paused():
        stack.sim.settings.latency_s = 5.0
        try:
            publish(stack, [request(i) for i in second])

            def in_flight(dagster: dg.DagsterInstance) -> bool:
                statuses = [
                    r.status for r in dagster.get_runs(filters=dg.RunsFilter(tags={"fleet/deliberation_id": second}))
                ]
                return (
                    len(statuses) == len(second)
                    and dg.DagsterRunStatus.STARTED in statuses
                    and dg.DagsterRunStatus.STARTING not in statuses
                )

            with instance(stack) as dagster:
                wait_for(lambda: in_flight(dagster), 180, "the runs of the second batch to execute", stack, poll_s=0.1)
            stack.crash("daemon")
        finally:
            stack.sim.settings.latency_s = 0.05
        stack.start("daemon")
    wait_for(lambda: completed(second), 300, "the second batch after the restart", stack)
    assert all(len(runs_for(stack, i)) == 1 for i in second)
    completions = [e["deliberation_id"] for e in events(stack, "deliberation.completed")]
    assert all(completions.count(i) == 1 for i in first + second)


def test_benchmark_schedule_ticks_and_materializes(stack):
    def scheduled_materialization():
        with instance(stack) as dagster:
            runs = dagster.get_runs(filters=dg.RunsFilter(tags={"dagster/schedule_name": "benchmark_schedule"}))
            if not any(r.status == dg.DagsterRunStatus.SUCCESS for r in runs):
                return None
            return dagster.fetch_materializations(dg.AssetKey("benchmark_results"), limit=1).records

    records = wait_for(scheduled_materialization, 240, "a scheduled benchmark run", stack)
    metadata = records[0].asset_materialization.metadata
    assert metadata["tasks"].value == 4 and "latency_trend" in metadata
