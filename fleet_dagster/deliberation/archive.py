"""Archived deliberations: one JSON document each, which `status` still reads once retention has removed the
deliberation's runs and partition from the Dagster instance.

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
    materialization's metadata (winners_json, results, total_tokens, ...) and its runs (ids, times, tags: the
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

    def path(self, deliberation_id: str) -> UPath:
        """Refuses an id that is no valid deliberation id (a partition typed in the UI): it could name a path
        outside the archive."""
        if not re.match(DELIBERATION_ID_PATTERN, deliberation_id):
            raise ValueError(f"{deliberation_id!r} is not a deliberation id ({DELIBERATION_ID_PATTERN})")
        return self._root / f"{deliberation_id}.json"

    def write(self, document: dict[str, Any]) -> str:
        """Whole or not at all, and durable when it returns: retention deletes the records right after. Values
        that are not JSON (a table's metadata) are kept as their text."""
        path = self.path(document["deliberation_id"])
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
            directory = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)  # the rename itself survives a crash
            finally:
                os.close(directory)
        else:  # an object store: one upload, which readers see whole or not at all
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        if path.read_text(encoding="utf-8") != text:  # read back: what cannot be read back must not be deleted
            raise OSError(f"{path} does not read back as written")
        return str(path)

    def holds(self, deliberation_id: str) -> bool:
        try:
            return self.path(deliberation_id).exists()
        except ValueError:
            return False

    def read(self, deliberation_id: str) -> dict[str, Any] | None:
        try:
            path = self.path(deliberation_id)
        except ValueError:
            return None
        if not path.exists():
            return None
        return json.loads(path.read_text(encoding="utf-8"))
