"""Retention on a real Dagster instance: deliberations as their runs left them (runs, events and materializations
at past times), the retention job run in process, `status` before and after."""

import json
import time
import uuid
from pathlib import Path
from typing import Any

import dagster as dg
import jsonschema
import pytest
from click.testing import CliRunner
from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData

from fleet_dagster.cli.main import cli
from fleet_dagster.core.outcome import deliberation_outcome
from fleet_dagster.core.records import AgentCall, CouncilResult, Proposal, Selection
from fleet_dagster.core.request import parse_request
from fleet_dagster.deliberation.archive import DeliberationArchive
from fleet_dagster.deliberation.assets import deliberation_job
from fleet_dagster.deliberation.keys_and_tags import (
    DELIBERATION_ASSET_KEY,
    DELIBERATION_ID_TAG,
    DELIBERATION_PARTITIONS,
)
from fleet_dagster.deliberation.materialization import collected
from fleet_dagster.deliberation.outbox import DELIVERED, OUTBOX_TAG, PENDING
from fleet_dagster.deliberation.request_intake import prior_uses
from fleet_dagster.deliberation.retention import (
    deliberation_retention_job,
    deliberation_runs,
    retention_schedule,
)
from fleet_dagster.deliberation.retention_policy import RetentionSettings
from fleet_dagster.deliberation.status_query import DELIBERATION_JOB_NAME, deliberation_status
from fleet_dagster.nats_bridge.schemas import STATUS_DOCUMENT_SCHEMA, committed_schema
from fleet_dagster.nats_bridge.triage import triage

pytestmark = pytest.mark.integration

DAY = 86400.0
DEFS = dg.Definitions(
    jobs=[deliberation_retention_job], schedules=[retention_schedule(RetentionSettings.from_environ({}))]
)


def council(role: str, agents: int = 2) -> CouncilResult:
    proposals = [
        Proposal(
            role=role,
            agent_id=f"agent-{role.lower()}-{i:03d}",
            round=1,
            content=f"{role} proposal {i}: use a token bucket per API key, refilled every second.",
            temperature=0.7,
            seed=i,
            tokens=300 + i,
            score=6.0 + i,
            peer_score=6.0 + i,
            coverage=0.8,
            is_winner=i == agents,
        )
        for i in range(1, agents + 1)
    ]
    calls = [
        AgentCall(agent_id=p.agent_id, role=role, phase="propose", round=0, ok=True, tokens=p.tokens) for p in proposals
    ]
    winner = proposals[-1].agent_id
    return CouncilResult(
        role=role,
        expected_agents=agents,
        proposals=proposals,
        reviews=[],
        calls=calls,
        selection=Selection(winner=winner, method="score", rationale=f"highest score {proposals[-1].score:.2f}"),
        started_at=0.0,
        finished_at=12.0,
    )


def collected_metadata(deliberation_id: str, run_id: str, councils: list[CouncilResult]) -> dict[str, Any]:
    """The metadata the collect step gives the materialization (assets.py), what retention keeps."""
    request = parse_request(
        {"task": "Design a rate limiter", "roles": ["DEV", "QA"], "deliberation_id": deliberation_id}
    )
    return collected(deliberation_outcome(request, councils, wall_ms=12500, prices={}), run_id).metadata


def record_run(
    instance: dg.DagsterInstance,
    deliberation_id: str,
    ended_days_ago: float,
    *,
    materialized: bool = True,
    status: dg.DagsterRunStatus = dg.DagsterRunStatus.SUCCESS,
    job_name: str = "deliberation_job",
    tags: dict[str, str] | None = None,
    asset_selection: frozenset[dg.AssetKey] | None = None,
) -> str:
    """A run as Dagster stores one, its events at past times (a run STARTED has not ended)."""
    run = dg.DagsterRun(
        job_name=job_name,
        run_id=str(uuid.uuid4()),
        tags=tags if tags is not None else {DELIBERATION_ID_TAG: deliberation_id, "dagster/partition": deliberation_id},
        asset_selection=asset_selection,
    )
    instance.add_run(run)
    instance.add_dynamic_partitions(DELIBERATION_PARTITIONS, [deliberation_id])
    ended_at = time.time() - ended_days_ago * DAY

    def report(event_type: DagsterEventType, at: float, **fields: Any) -> None:
        instance.report_dagster_event(
            DagsterEvent(event_type.value, job_name=job_name, **fields), run.run_id, timestamp=at
        )

    report(DagsterEventType.RUN_START, ended_at - 60)
    if materialized:
        materialization = dg.AssetMaterialization(
            asset_key=DELIBERATION_ASSET_KEY,
            partition=deliberation_id,
            metadata=collected_metadata(deliberation_id, run.run_id, [council("DEV"), council("QA")]),
        )
        report(
            DagsterEventType.ASSET_MATERIALIZATION,
            ended_at - 1,
            step_key="collect_deliberation",
            event_specific_data=StepMaterializationData(materialization),
        )
    if status == dg.DagsterRunStatus.SUCCESS:
        report(DagsterEventType.RUN_SUCCESS, ended_at)
    elif status == dg.DagsterRunStatus.FAILURE:
        report(DagsterEventType.RUN_FAILURE, ended_at, message="plan_councils: Model preflight: no such model")
    return run.run_id


@pytest.fixture
def archive_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FLEET_ARCHIVE_DIR", str(tmp_path / "archive"))
    return tmp_path / "archive"


def archived_path(archive_dir: Path, deliberation_id: str, run_ids: list[str]) -> Path:
    """Where retention archives a deliberation with these runs (oldest first)."""
    return archive_dir / deliberation_id / f"{run_ids[-1]}.json"


def retention(instance: dg.DagsterInstance, **config: Any) -> list[str]:
    run_config = {"ops": {"archive_old_deliberations": {"config": config}}}
    result = DEFS.resolve_job_def("deliberation_retention_job").execute_in_process(
        run_config=run_config, instance=instance
    )
    return result.output_for_node("archive_old_deliberations")


def gone(instance: dg.DagsterInstance, deliberation_id: str, run_ids: list[str]) -> bool:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=DELIBERATION_ASSET_KEY, asset_partitions=[deliberation_id]), limit=1
    ).records
    return (
        not records
        and not instance.has_dynamic_partition(DELIBERATION_PARTITIONS, deliberation_id)
        and all(instance.get_run_by_id(run_id) is None for run_id in run_ids)
    )


def test_old_deliberations_are_archived_then_deleted_and_status_answers_from_the_archive(instance, archive_dir):
    runs = {
        "old-done": [record_run(instance, "old-done", 40)],
        "old-failed-early": [  # never materialized: its run died before collecting
            record_run(instance, "old-failed-early", 45, materialized=False, status=dg.DagsterRunStatus.FAILURE)
        ],
        "old-from-the-ui": [  # the asset page's launch: the implicit asset job, tagged with the partition only
            record_run(
                instance,
                "old-from-the-ui",
                50,
                job_name="__ASSET_JOB",
                tags={"dagster/partition": "old-from-the-ui"},
                asset_selection=frozenset({DELIBERATION_ASSET_KEY}),
            )
        ],
    }
    kept = {
        "recent": [record_run(instance, "recent", 1)],
        "old-run-again-lately": [
            record_run(instance, "old-run-again-lately", 40),
            record_run(instance, "old-run-again-lately", 2, materialized=False, status=dg.DagsterRunStatus.FAILURE),
        ],
        "old-with-a-run-in-progress": [
            record_run(instance, "old-with-a-run-in-progress", 40),
            record_run(instance, "old-with-a-run-in-progress", 39, status=dg.DagsterRunStatus.STARTED),
        ],
    }
    # Another asset's run whose partition has a deliberation's name is no run of that deliberation.
    benchmark_run = record_run(
        instance, "old-done", 40, materialized=False, job_name="benchmark_job", tags={"dagster/partition": "old-done"}
    )
    before = {deliberation_id: deliberation_status(instance, deliberation_id) for deliberation_id in runs | kept}
    assert before["old-failed-early"]["status"] == "FAILED" and before["old-done"]["status"] == "COMPLETED"
    for document in before.values():
        jsonschema.validate(document, committed_schema(STATUS_DOCUMENT_SCHEMA))

    assert sorted(retention(instance)) == sorted(runs)

    for deliberation_id, run_ids in runs.items():
        archived = json.loads(archived_path(archive_dir, deliberation_id, run_ids).read_text())
        assert archived["status"] == before[deliberation_id]
        assert [run["run_id"] for run in archived["runs"]] == run_ids
        assert gone(instance, deliberation_id, run_ids)
        assert deliberation_status(instance, deliberation_id) == {
            **before[deliberation_id],
            "archived": True,
            "archive": str(archived_path(archive_dir, deliberation_id, run_ids)),
        }
    done = json.loads(archived_path(archive_dir, "old-done", runs["old-done"]).read_text())
    assert set(done["metadata"]["winners"]) == {"DEV", "QA"} and done["metadata"]["total_tokens"] == 1206
    assert len(done["metadata"]["results"]) == 4 and done["materialized_at"] is not None
    assert (
        json.loads(archived_path(archive_dir, "old-failed-early", runs["old-failed-early"]).read_text())["metadata"]
        == {}
    )
    for deliberation_id, run_ids in kept.items():
        assert deliberation_status(instance, deliberation_id) == before[deliberation_id]
        assert instance.has_dynamic_partition(DELIBERATION_PARTITIONS, deliberation_id)
        assert [r.dagster_run.run_id for r in deliberation_runs(instance, deliberation_id)] == run_ids
        assert not (archive_dir / deliberation_id).exists()
    assert instance.get_run_by_id(benchmark_run) is not None

    written = {path: path.read_text() for path in archive_dir.rglob("*") if path.is_file()}
    assert retention(instance) == []  # run again: nothing left to do, nothing rewritten
    assert {path: path.read_text() for path in archive_dir.rglob("*") if path.is_file()} == written

    shown = CliRunner().invoke(cli, ["status", "old-done"])
    assert shown.exit_code == 0, shown.output
    assert "COMPLETED" in shown.output and "archived in" in shown.output.replace("\n", "")
    as_json = CliRunner().invoke(cli, ["status", "old-done", "--json"])
    assert json.loads(as_json.output)["archived"] is True


def test_a_run_archives_at_most_its_batch_oldest_first(instance, archive_dir):
    for days in (41, 42, 43):
        record_run(instance, f"old-{days}", days)
    assert retention(instance, batch=2) == ["old-43", "old-42"]
    assert retention(instance, batch=2) == ["old-41"]


def test_a_deliberation_whose_events_nats_has_not_taken_is_kept(instance, archive_dir):
    """Its outbox is in its runs' storage: archived and deleted, the events NATS never acknowledged would be lost."""
    for deliberation_id, outbox in (("undelivered", PENDING), ("delivered", DELIVERED)):
        tags = {DELIBERATION_ID_TAG: deliberation_id, "dagster/partition": deliberation_id, OUTBOX_TAG: outbox}
        record_run(instance, deliberation_id, 40, tags=tags)
    assert retention(instance) == ["delivered"]
    assert deliberation_status(instance, "undelivered")["status"] == "COMPLETED"


def test_the_age_comes_from_the_environment_or_the_run_config(instance, archive_dir, monkeypatch):
    record_run(instance, "ten-days-old", 10)
    assert retention(instance) == []  # the default age keeps it
    monkeypatch.setenv("FLEET_RETENTION_DAYS", "7")
    assert retention(instance, max_age_days=14) == []
    assert retention(instance) == ["ten-days-old"]


def test_a_run_stopped_between_archiving_and_deleting_is_resumed_by_the_next(instance, archive_dir, monkeypatch):
    first, second = record_run(instance, "crashed", 40), record_run(instance, "crashed", 35)
    before = deliberation_status(instance, "crashed")
    delete_run = instance.delete_run

    def crash_after_the_first_run(run_id: str) -> None:
        delete_run(run_id)
        raise RuntimeError("the run's pod was evicted")

    monkeypatch.setattr(instance, "delete_run", crash_after_the_first_run)
    result = deliberation_retention_job.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    archived = json.loads(archived_path(archive_dir, "crashed", [first, second]).read_text())
    assert not gone(instance, "crashed", [first, second])  # one run left, and the archive already written

    monkeypatch.setattr(instance, "delete_run", delete_run)
    assert retention(instance) == ["crashed"]
    assert (
        json.loads(archived_path(archive_dir, "crashed", [first, second]).read_text()) == archived
    )  # kept, not rebuilt from what was left
    assert gone(instance, "crashed", [first, second])
    assert deliberation_status(instance, "crashed")["winners"] == before["winners"]


def test_an_archive_that_cannot_be_written_deletes_nothing(instance, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("FLEET_ARCHIVE_DIR", str(blocker))
    run_id = record_run(instance, "kept", 40)
    result = deliberation_retention_job.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    assert "archiving kept into" in str(result.failure_data_for_node("archive_old_deliberations").error)
    assert not gone(instance, "kept", [run_id]) and deliberation_status(instance, "kept")["status"] == "COMPLETED"


def test_the_schedule_is_stopped_by_default():
    schedule = DEFS.resolve_schedule_def("deliberation_retention_schedule")
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert schedule.job_name == "deliberation_retention_job" and schedule.cron_schedule == "17 * * * *"
    assert deliberation_job.name == DELIBERATION_JOB_NAME  # how status and retention tell a deliberation's runs


def test_an_archived_id_is_still_taken_for_new_nats_requests(instance, archive_dir):
    """Retention deletes a deliberation's runs, which is how the NATS sensor tells a used id: the archive tells it."""
    record_run(instance, "archived-id", 40)
    assert retention(instance) == ["archived-id"]
    request = json.dumps({"task": "Design a cache", "roles": ["DEV"], "deliberation_id": "archived-id"}).encode()
    outcome = triage([(7, request)], prior_uses(instance, DeliberationArchive.from_env(), None))
    assert not outcome.accepted
    (rejected,) = outcome.rejected
    assert rejected.errors[0].field == "deliberation_id"
    assert "archived in" in rejected.errors[0].message


def test_an_id_archived_again_keeps_every_archive_and_status_shows_the_latest(instance, archive_dir):
    """An archived id run again (from the CLI or the launchpad) and archived again: both archives are kept."""
    first = record_run(instance, "twice", 40)
    assert retention(instance) == ["twice"]
    first_archive = json.loads(next(archive_dir.rglob("*.json")).read_text())
    second = record_run(instance, "twice", 30, status=dg.DagsterRunStatus.FAILURE, materialized=False)
    assert retention(instance) == ["twice"]
    assert len(list(archive_dir.rglob("*.json"))) == 2
    archives = DeliberationArchive.from_env().documents("twice")
    assert [[run["run_id"] for run in document["runs"]] for _, document in archives] == [[first], [second]]
    assert archives[0][1] == first_archive  # the first archive, as it was written
    shown = deliberation_status(instance, "twice")
    assert shown["status"] == "FAILED" and shown["archived"] is True and shown["archive"] == archives[1][0]
