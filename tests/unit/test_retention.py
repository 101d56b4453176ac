"""Which deliberations retention archives, its settings, and the archive's documents."""

import json

import pytest

from fleet_dagster.core.env_settings import SettingsError
from fleet_dagster.deliberation.archive import DeliberationArchive, archive_document
from fleet_dagster.deliberation.retention_policy import (
    DEFAULT_MAX_AGE_DAYS,
    Activity,
    RetentionSettings,
    due_for_archive,
)

DAY = 86400.0
NOW = 1_800_000_000.0


def aged(deliberation_id: str, days: float | None, ended_days: float | None = None, in_progress=False) -> Activity:
    return Activity(
        deliberation_id=deliberation_id,
        materialized_at=None if days is None else NOW - days * DAY,
        ended_at=None if ended_days is None else NOW - ended_days * DAY,
        in_progress=in_progress,
    )


def test_deliberations_older_than_the_age_are_due_oldest_first():
    activities = [aged("young", 29), aged("old", 31), aged("older", 60), aged("on-the-line", 30)]
    assert due_for_archive(activities, NOW, 30 * DAY, limit=10) == ["older", "old"]


def test_at_most_the_batch_is_due_and_the_oldest_go_first():
    activities = [aged(f"d{i}", 40 + i) for i in range(5)]
    assert due_for_archive(activities, NOW, 30 * DAY, limit=2) == ["d4", "d3"]


def test_a_run_in_progress_keeps_even_an_old_deliberation():
    assert due_for_archive([aged("stuck", 90, in_progress=True)], NOW, 30 * DAY, limit=10) == []


def test_age_counts_from_the_latest_of_materialization_and_run_end():
    rerun = aged("rerun", 90, ended_days=2)  # materialized long ago, run again lately without materializing
    never_materialized = aged("died-early", None, ended_days=45)  # its runs failed before collecting
    nothing_known = aged("added-not-run", None)  # a partition whose run may be about to start
    assert due_for_archive([rerun, never_materialized, nothing_known], NOW, 30 * DAY, limit=10) == ["died-early"]


def test_settings_come_from_the_environment_with_one_default():
    assert RetentionSettings.from_environ({}).max_age_days == DEFAULT_MAX_AGE_DAYS
    settings = RetentionSettings.from_environ({"FLEET_RETENTION_DAYS": "0.5", "FLEET_RETENTION_BATCH": "20"})
    assert settings.max_age_s == 0.5 * DAY and settings.batch == 20
    for environ in ({"FLEET_RETENTION_DAYS": "0"}, {"FLEET_RETENTION_DAYS": "soon"}, {"FLEET_RETENTION_BATCH": "0"}):
        with pytest.raises(SettingsError, match=next(iter(environ))):
            RetentionSettings.from_environ(environ)


def document(deliberation_id: str = "d-1") -> dict:
    status = {"deliberation_id": deliberation_id, "status": "COMPLETED", "winners": {"DEV": {"agent_id": "a1"}}}
    return archive_document(status, {"total_tokens": 1234, "winners": {"DEV": {}}}, 1.5, [{"run_id": "r1"}])


def test_an_archive_folder_keeps_one_whole_document_per_archiving(tmp_path):
    archive = DeliberationArchive(str(tmp_path / "archive"))
    written = document()
    location = str(tmp_path / "archive" / "d-1" / "r1.json")
    assert archive.write(written) == location
    assert archive.latest("d-1") == (location, written)
    archive.write(document())  # written again (a retention run resumed): replaced whole, no temporary file beside it
    assert [p.name for p in (tmp_path / "archive" / "d-1").iterdir()] == ["r1.json"]
    assert archive.latest("never-archived") is None and archive.documents("never-archived") == []


def test_an_id_archived_again_keeps_its_earlier_archives_the_old_single_file_too(tmp_path):
    archive = DeliberationArchive(str(tmp_path))
    single = {**document(), "archived_at": 1.0, "runs": [{"run_id": "r0"}]}
    (tmp_path / "d-1.json").write_text(json.dumps(single))  # as archives were written before
    first = archive.write({**document(), "archived_at": 2.0, "runs": [{"run_id": "r1"}, {"run_id": "r2"}]})
    latest = archive.write({**document(), "archived_at": 3.0, "runs": [{"run_id": "r3"}]})
    found = archive.documents("d-1")
    assert [location for location, _ in found] == [str(tmp_path / "d-1.json"), first, latest]
    assert found[0][1] == single and archive.latest("d-1") == found[-1]


def test_an_archive_url_is_written_through_fsspec():
    archive = DeliberationArchive("memory://fleet-archive/deliberations")
    archive.write(document("d-2"))
    assert archive.latest("d-2")[1]["metadata"]["total_tokens"] == 1234
    assert archive.location == "memory://fleet-archive/deliberations"


def test_an_id_that_could_leave_the_archive_is_refused(tmp_path):
    archive = DeliberationArchive(str(tmp_path))
    for bad in ("../escape", "a/b", ".hidden", ""):
        with pytest.raises(ValueError, match="not a deliberation id"):
            archive.write(document(bad))
        assert archive.latest(bad) is None
