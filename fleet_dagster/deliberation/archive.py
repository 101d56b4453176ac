"""Archived deliberations: a JSON document each time one is archived (an id run again after it was archived is
archived again, beside the first), which `status` still reads once retention has removed the deliberation's
runs and partition from the Dagster instance.

The archive is a folder (FLEET_ARCHIVE_DIR, default FLEET_HOME/archive/deliberations) or an fsspec URL
(s3://bucket/prefix, with that scheme's package installed): run pods on Kubernetes keep FLEET_HOME on a
scratch volume, so there it must name storage that outlives them.
"""

import json
import os
import re
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from upath import UPath

from fleet_dagster.core.request import DELIBERATION_ID_PATTERN
from fleet_dagster.settings import fleet_home

ARCHIVE_ENV = "FLEET_ARCHIVE_DIR"
ARCHIVE_VERSION = 1


def archive_document(
    status: dict[str, Any],
    metadata: dict[str, Any],
    materialized_at: float | None,
    runs: list[dict[str, Any]],
) -> dict[str, Any]:
    """What is kept of a deliberation: the status document as `status` printed it, every value of its
    materialization's metadata (winners, results, total_tokens, ...) and its runs (ids, times, tags: the
    stream sequence and request digest that told a producer's retry from another request)."""
    return {
        "archive_version": ARCHIVE_VERSION,
        "deliberation_id": status["deliberation_id"],
        "archived_at": time.time(),
        "status": status,
        "materialized_at": materialized_at,
        "metadata": metadata,
        "runs": runs,
    }


class DeliberationArchive:
    def __init__(self, location: str):
        self.location = location
        self._root = UPath(location)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "DeliberationArchive":
        return cls(environ.get(ARCHIVE_ENV) or str(fleet_home() / "archive" / "deliberations"))

    def folder(self, deliberation_id: str) -> UPath:
        """Where the deliberation's archives are: one document per archiving (an id run again after it was archived
        is archived again), named after its latest run. Refuses an id that is no valid deliberation id (a
        partition typed in the UI): it could name a path outside the archive."""
        return self._root / _as_name(deliberation_id, "deliberation id")

    def _paths(self, deliberation_id: str) -> list[UPath]:
        folder = self.folder(deliberation_id)
        single = self._root / f"{deliberation_id}.json"  # written before an id could have several archives
        paths = [single] if single.is_file() else []
        return paths + (sorted(folder.glob("*.json")) if folder.is_dir() else [])

    def documents(self, deliberation_id: str) -> list[tuple[str, dict[str, Any]]]:
        """Where each archive of the deliberation is, and the archive; oldest first; none for an invalid id."""
        try:
            paths = self._paths(deliberation_id)
        except ValueError:
            return []
        found = [(str(path), json.loads(path.read_text(encoding="utf-8"))) for path in paths]
        return sorted(found, key=lambda item: item[1]["archived_at"])

    def latest(self, deliberation_id: str) -> tuple[str, dict[str, Any]] | None:
        """Where the deliberation's latest archive is, and the archive; None when it was never archived."""
        return next(reversed(self.documents(deliberation_id)), None)

    def write(self, document: dict[str, Any]) -> str:
        """Whole or not at all, and durable when it returns: retention deletes the records right after. Values
        that are not JSON (a table's metadata) are kept as their text."""
        path = self.folder(document["deliberation_id"]) / f"{_as_name(document['runs'][-1]['run_id'], 'run id')}.json"
        text = json.dumps(document, default=str, indent=1)
        if isinstance(path, Path):  # a local folder: a temporary file renamed over the old one
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
            try:
                with open(temporary, "w", encoding="utf-8") as file:
                    file.write(text)
                    file.flush()
                    os.fsync(file.fileno())
                os.replace(temporary, path)
            finally:
                temporary.unlink(missing_ok=True)
            for folder in (path.parent, path.parent.parent):  # the rename, and the id's folder, survive a crash
                directory = os.open(folder, os.O_RDONLY)
                try:
                    os.fsync(directory)
                finally:
                    os.close(directory)
        else:  # an object store: one upload, which readers see whole or not at all
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        if path.read_text(encoding="utf-8") != text:  # read back: what cannot be read back must not be deleted
            raise OSError(f"{path} does not read back as written")
        return str(path)


def _as_name(name: str, what: str) -> str:
    if not re.match(DELIBERATION_ID_PATTERN, name):
        raise ValueError(f"{name!r} is not a {what} ({DELIBERATION_ID_PATTERN})")
    return name
