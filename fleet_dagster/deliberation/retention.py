"""Retention: a schedule that archives deliberations older than the retention age (retention_policy.py), then
deletes their runs (with their events: materializations, observations, logs) and their dynamic partition, so
the instance, and the asset page, stay the size of recent work; `status` answers from the archive after.

Dagster OSS cannot wipe one partition's asset events (`wipe_asset_partitions` raises NotImplementedError on
SQLite and Postgres): a deliberation's events go with its runs, which `delete_run` removes. So retention finds
deliberations through their runs, oldest first, and archives only deliberations that runs produced.
"""

import datetime
import os
import time
from typing import Any

import dagster as dg
from pydantic import Field

from fleet_dagster.core.env_settings import SettingsError
from fleet_dagster.deliberation.archive import DeliberationArchive, archive_document
from fleet_dagster.deliberation.keys_and_tags import DELIBERATION_ID_TAG, DELIBERATION_PARTITIONS
from fleet_dagster.deliberation.outbox import OUTBOX_TAG, PENDING
from fleet_dagster.deliberation.retention_policy import (
    Activity,
    RetentionSettings,
    due_for_archive,
)
from fleet_dagster.deliberation.status_query import (
    DELIBERATION_JOB_NAME,
    PARTITION_TAG,
    instance_status,
    is_deliberation_run,
    latest_event,
)

# Runs launched from the asset page run Dagster's implicit asset job, tagged with the partition only.
ASSET_JOB_NAME = "__ASSET_JOB"
FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
# Old runs read per tick, per job: a few times the batch, so that ids not due yet (run again lately) at the
# head of the oldest runs do not hide the ones behind them.
SCAN_FACTOR = 4


class RetentionConfig(dg.Config):
    max_age_days: float | None = Field(
        default=None, gt=0, description="Archive deliberations older than this. Default: FLEET_RETENTION_DAYS."
    )
    batch: int | None = Field(
        default=None, ge=1, description="At most this many deliberations this run. Default: FLEET_RETENTION_BATCH."
    )


def deliberation_runs(instance: dg.DagsterInstance, deliberation_id: str) -> list[dg.RunRecord]:
    """Every run of the deliberation, oldest first: tagged with its id (CLI, NATS) or its partition (the UI)."""
    records: dict[str, dg.RunRecord] = {}
    for tags in ({DELIBERATION_ID_TAG: deliberation_id}, {PARTITION_TAG: deliberation_id}):
        for record in instance.get_run_records(dg.RunsFilter(tags=tags)):
            if is_deliberation_run(record.dagster_run, deliberation_id):
                records[record.dagster_run.run_id] = record
    return sorted(records.values(), key=lambda record: record.create_timestamp)


def _ended_at(record: dg.RunRecord) -> float:
    # Runs stored before Dagster kept end times have only their last update.
    return record.end_time or record.update_timestamp.timestamp()


def activity(instance: dg.DagsterInstance, deliberation_id: str, runs: list[dg.RunRecord]) -> Activity:
    materialization = latest_event(instance.fetch_materializations, deliberation_id, None)
    finished = [record for record in runs if record.dagster_run.status in FINISHED]
    return Activity(
        deliberation_id=deliberation_id,
        materialized_at=materialization.timestamp if materialization else None,
        ended_at=max((_ended_at(record) for record in finished), default=None),
        in_progress=len(finished) < len(runs),
        events_pending=any(record.dagster_run.tags.get(OUTBOX_TAG) == PENDING for record in runs),
    )


def old_deliberation_ids(instance: dg.DagsterInstance, ended_before: float, scan: int) -> list[str]:
    """Ids of deliberations with a run that ended before `ended_before`, oldest run first."""
    updated_before = datetime.datetime.fromtimestamp(ended_before, tz=datetime.UTC)
    records = [
        record
        for job_name in (DELIBERATION_JOB_NAME, ASSET_JOB_NAME)
        for record in instance.get_run_records(
            dg.RunsFilter(job_name=job_name, statuses=FINISHED, updated_before=updated_before),
            limit=scan,
            order_by="update_timestamp",
            ascending=True,
        )
    ]
    ids: dict[str, None] = {}  # ordered, without repeats
    for record in sorted(records, key=lambda record: record.update_timestamp):
        run = record.dagster_run
        deliberation_id = run.tags.get(DELIBERATION_ID_TAG) or run.tags.get(PARTITION_TAG)
        if deliberation_id and is_deliberation_run(run, deliberation_id):
            ids[deliberation_id] = None
    return list(ids)


def _run_summary(record: dg.RunRecord) -> dict[str, Any]:
    run = record.dagster_run
    return {
        "run_id": run.run_id,
        "job_name": run.job_name,
        "status": run.status.value,
        "start_time": record.start_time,
        "end_time": record.end_time,
        "tags": dict(run.tags),
    }


def archive_deliberation(
    instance: dg.DagsterInstance, archive: DeliberationArchive, deliberation_id: str, runs: list[dg.RunRecord]
) -> str | None:
    """Archives the deliberation, then deletes its partition and `runs`; returns where the archive is, or None
    when a run of it started meanwhile (nothing is deleted; the next tick decides again).

    Resumable: an archive that already holds every run left (a tick that stopped between archiving and deleting,
    or midway through the runs) is kept as it is, never replaced by what the instance still has."""
    run_ids = {record.dagster_run.run_id for record in runs}
    existing = archive.latest(deliberation_id)  # an earlier archive of the id (it was run again) is left as it is
    if existing is not None and run_ids <= {run["run_id"] for run in existing[1]["runs"]}:
        location = existing[0]
    else:
        record = latest_event(instance.fetch_materializations, deliberation_id, None)
        metadata = record.asset_materialization.metadata if record else {}
        document = archive_document(
            instance_status(instance, deliberation_id),
            {key: entry.value for key, entry in metadata.items()},
            record.timestamp if record else None,
            [_run_summary(run) for run in runs],
        )
        location = archive.write(document)
    if {record.dagster_run.run_id for record in deliberation_runs(instance, deliberation_id)} != run_ids:
        return None
    # The partition first: should the runs outlive a crash, the next tick finds the deliberation through them.
    instance.delete_dynamic_partition(DELIBERATION_PARTITIONS, deliberation_id)
    for run_id in sorted(run_ids):
        instance.delete_run(run_id)
    return location


def _archive_one(
    context: dg.OpExecutionContext, archive: DeliberationArchive, deliberation_id: str, runs: list[dg.RunRecord]
) -> bool:
    try:
        archive.folder(deliberation_id)
    except ValueError as exc:  # a partition typed in the UI that no file may be named after: left as it is
        context.log.warning(f"not archived: {exc}")
        return False
    try:
        location = archive_deliberation(context.instance, archive, deliberation_id, runs)
    except OSError as exc:  # the archive cannot take it: nothing of it was deleted; stop, the run fails
        raise dg.Failure(
            description=f"archiving {deliberation_id} into {archive.location} failed, nothing of it was deleted: "
            f"{type(exc).__name__}: {exc}",
            allow_retries=False,
        ) from None
    if location is None:
        context.log.info(f"{deliberation_id} started again while being archived: left for the next run")
    return location is not None


@dg.op(description="Archives deliberations older than the retention age, then deletes their runs and partition.")
def archive_old_deliberations(context: dg.OpExecutionContext, config: RetentionConfig) -> dg.Output[list[str]]:
    try:
        settings = RetentionSettings.from_environ(os.environ)
    except SettingsError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    max_age_s = (config.max_age_days or settings.max_age_days) * 86400
    batch = config.batch or settings.batch
    archive = DeliberationArchive.from_env()
    instance, now = context.instance, time.time()

    candidates = old_deliberation_ids(instance, now - max_age_s, batch * SCAN_FACTOR)
    archived: list[str] = []
    looked_at = 0
    # A page at a time, oldest first: most old runs belong to deliberations that are due, so one page does.
    for start in range(0, len(candidates), batch):
        runs = {
            deliberation_id: deliberation_runs(instance, deliberation_id)
            for deliberation_id in candidates[start : start + batch]
        }
        activities = [activity(instance, deliberation_id, found) for deliberation_id, found in runs.items()]
        looked_at += len(activities)
        for deliberation_id in due_for_archive(activities, now, max_age_s, batch - len(archived)):
            if _archive_one(context, archive, deliberation_id, runs[deliberation_id]):
                archived.append(deliberation_id)
        if len(archived) >= batch:
            break
    context.log.info(
        f"archived {len(archived)} deliberations older than {max_age_s / 86400:g} days into {archive.location} "
        f"({looked_at} looked at)"
    )
    return dg.Output(
        archived,
        metadata={
            "archived": len(archived),
            "looked_at": looked_at,
            "max_age_days": max_age_s / 86400,
            "batch": batch,
            "archive": archive.location,
        },
    )


@dg.job(
    executor_def=dg.in_process_executor,
    description="Archives old deliberations (FLEET_RETENTION_DAYS) into FLEET_ARCHIVE_DIR, then deletes their "
    "runs and partitions; at most FLEET_RETENTION_BATCH a run.",
)
def deliberation_retention_job() -> None:
    archive_old_deliberations()


def retention_schedule(settings: RetentionSettings) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="deliberation_retention_schedule",
        job=deliberation_retention_job,
        cron_schedule=settings.cron,
        default_status=dg.DefaultScheduleStatus(settings.schedule_status),
        description="Hourly (FLEET_RETENTION_CRON) retention of old deliberations: see deliberation_retention_job.",
    )
