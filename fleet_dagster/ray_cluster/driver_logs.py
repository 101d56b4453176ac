"""Ray's own log lines, in a file instead of a terminal that shows a progress display."""

import logging
from pathlib import Path

import ray  # importing Ray installs its stderr handler on the "ray" logger, which this replaces


def send_driver_logs_to(path: Path) -> Path:
    """From now on this process's "ray" logger (connection notices, warnings) writes to `path` only;
    ray.init keeps the handlers it finds. Returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(filename)s:%(lineno)s -- %(message)s"))
    logger = logging.getLogger(ray.__name__)
    logger.handlers = [handler]
    logger.propagate = False
    return path
