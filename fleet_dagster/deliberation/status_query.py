"""A deliberation's status, answered from the Dagster instance (runs, observations, materializations), or from
its archive once retention removed it from the instance (retention.py)."""

from typing import Any

import dagster as dg

from fleet_dagster.core.outcome import DeliberationOutcome
from fleet_dagster.core.status import DeliberationStatus
from fleet_dagster.core.status_document import DeliberationProgress, StatusDocument, outcome_status
from fleet_dagster.deliberation.archive import DeliberationArchive
from fleet_dagster.deliberation.keys_and_tags import DELIBERATION_ASSET_KEY, DELIBERATION_ID_TAG, TRACEPARENT_TAG
from fleet_dagster.deliberation.metadata_models import model_from_metadata

PARTITION_TAG = "dagster/partition"
DELIBERATION_JOB_NAME = "deliberation_job"  # assets.py's; importing it would load the asset's dependencies here

_STATUS_AND_COUNTS = ("status", "expected_count", "current_count")
_PENDING_RUN_STATUSES = {dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING}
_RUNNING_RUN_STATUSES = {dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING}


def is_deliberation_run(run: dg.DagsterRun, deliberation_id: str) -> bool:
    """Whether a run tagged with the partition `deliberation_id` ran the deliberation: another asset's partition
    may have the same name (a benchmark day is a valid deliberation id)."""
    return (
        run.tags.get(DELIBERATION_ID_TAG) == deliberation_id
        or run.job_name == DELIBERATION_JOB_NAME
        or DELIBERATION_ASSET_KEY in (run.asset_selection or set())
    )


def latest_run(instance: dg.DagsterInstance, deliberation_id: str) -> dg.DagsterRun | None:
    return latest_runs(instance, [deliberation_id]).get(deliberation_id)


def latest_runs(instance: dg.DagsterInstance, deliberation_ids: list[str]) -> dict[str, dg.DagsterRun]:
    """Each id's newest run, for the ids that have one: two queries whatever the number of ids (a sensor tick
    looks up a burst of requests at once)."""
    latest: dict[str, dg.DagsterRun] = {}
    # Runs from the CLI and the sensor carry our tag; runs launched from the UI only the partition's.
    for tag in (DELIBERATION_ID_TAG, PARTITION_TAG):
        if not (rest := [d for d in deliberation_ids if d not in latest]):
            break
        for run in instance.get_runs(filters=dg.RunsFilter(tags={tag: rest})):  # newest first
            deliberation_id = run.tags[tag]
            if deliberation_id not in latest and is_deliberation_run(run, deliberation_id):
                latest[deliberation_id] = run
    return latest


def latest_event(fetch, deliberation_id: str, run_id: str | None):
    """The partition's newest materialization or observation (`fetch`), if `run_id` (when given) made it."""
    records = fetch(
        dg.AssetRecordsFilter(asset_key=DELIBERATION_ASSET_KEY, asset_partitions=[deliberation_id]), limit=1
    ).records
    if not records or (run_id is not None and records[0].run_id != run_id):
        return None
    return records[0]


def run_error(instance: dg.DagsterInstance, run_id: str) -> str | None:
    """The first error a failed run recorded: a step's, a resource's, or the run's own message."""
    failures = instance.all_logs(
        run_id,
        of_type={
            dg.DagsterEventType.STEP_FAILURE,
            dg.DagsterEventType.RESOURCE_INIT_FAILURE,
            dg.DagsterEventType.RUN_FAILURE,
        },
    )
    events = [record.dagster_event for record in failures if record.dagster_event is not None]
    for event in events:
        error = getattr(event.event_specific_data, "error", None)
        if error is not None:
            return f"{event.step_key or 'run'}: {error.message.strip()}"
    return events[-1].message if events else None


def deliberation_status(
    instance: dg.DagsterInstance, deliberation_id: str, archive: DeliberationArchive | None = None
) -> dict[str, Any]:
    """The document `fleet-dagster status --json` prints. The instance answers first (a deliberation run again
    after it was archived is the new one); when it knows nothing of the id, the archive (default: the
    deployment's, FLEET_ARCHIVE_DIR) answers with the document as it was archived, plus `archived` and where."""
    document = instance_status(instance, deliberation_id)
    if document["status"] != DeliberationStatus.UNKNOWN.value:
        return document
    archive = archive or DeliberationArchive.from_env()
    latest = archive.latest(deliberation_id)  # an id run again after it was archived has several archives
    if latest is None:
        return document
    location, archived = latest
    return {**archived["status"], "archived": True, "archive": location}


def instance_status(instance: dg.DagsterInstance, deliberation_id: str) -> dict[str, Any]:
    """The status document from the instance alone."""
    return _instance_status(instance, deliberation_id).model_dump(mode="json")


def _instance_status(instance: dg.DagsterInstance, deliberation_id: str) -> StatusDocument:
    run = latest_run(instance, deliberation_id)
    run_id = run.run_id if run else None
    traceparent = run.tags.get(TRACEPARENT_TAG) if run else None
    materialization = latest_event(instance.fetch_materializations, deliberation_id, run_id)
    if materialization is not None:
        metadata = materialization.asset_materialization.metadata
        outcome = model_from_metadata(DeliberationOutcome, metadata)
        if outcome is not None:
            # A run launched from the UI has no trace tag: its collect step recorded the trace it made.
            return outcome_status(outcome, run_id, traceparent)
        # Materialized by an earlier release, whose metadata had other shapes: its status and counts.
        counts = {name: metadata[name].value for name in _STATUS_AND_COUNTS if name in metadata}
        return StatusDocument.model_validate(
            {"deliberation_id": deliberation_id, "run_id": run_id, "traceparent": traceparent, **counts}
        )
    document = StatusDocument(deliberation_id=deliberation_id, status=DeliberationStatus.UNKNOWN)
    if run is None:
        return document
    document.run_id, document.traceparent = run.run_id, traceparent
    if run.status in _PENDING_RUN_STATUSES:
        document.status = DeliberationStatus.PENDING
    elif run.status in _RUNNING_RUN_STATUSES:
        document.status = DeliberationStatus.IN_PROGRESS
        observation = latest_event(instance.fetch_observations, deliberation_id, run.run_id)
        progress = observation and model_from_metadata(DeliberationProgress, observation.asset_observation.metadata)
        if progress:
            document.expected_count = progress.expected_count
            document.current_count = progress.current_count
            document.progress = progress.progress
    else:
        document.status = DeliberationStatus.FAILED
        document.error_message = run_error(instance, run.run_id) or f"the run ended {run.status.value}"
    stats = instance.get_run_stats(run.run_id)
    if stats.start_time and stats.end_time:
        document.duration_ms = round((stats.end_time - stats.start_time) * 1000)
    return document
