"""Finds the `resources/` folder (role profiles, prompt templates) from a checkout or a wheel."""

import os
import sys
from pathlib import Path

# Resolved once: resolving walks every folder of the path, and profiles and templates are found for each request.
_CHECKOUT_RESOURCES = Path(__file__).resolve().parents[2] / "resources"  # a checkout / editable install


class ResourcesNotFoundError(RuntimeError):
    pass


def resources_dir() -> Path:
    candidates = []
    if override := os.environ.get("FLEET_RESOURCES_DIR"):
        candidates.append(Path(override))
    candidates.append(_CHECKOUT_RESOURCES)
    candidates.append(Path(sys.prefix) / "share" / "fleet-dagster" / "resources")  # a wheel's data files
    for candidate in candidates:
        if (candidate / "roles").is_dir():
            return candidate
    raise ResourcesNotFoundError(
        "fleet-dagster resources (role profiles, prompts) not found; looked in "
        + ", ".join(str(c) for c in candidates)
        + ". Set FLEET_RESOURCES_DIR to the folder that holds roles/ and prompts/."
    )
