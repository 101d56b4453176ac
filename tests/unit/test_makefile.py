"""`make deliberate TASK=...` hands the task over as text: quotes, backticks and $(...) in it run nothing."""

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")


def make_deliberate(tmp_path: Path, *variables: str) -> list[str]:
    """Runs `make deliberate` with a stub in place of the CLI (no deliberation runs); returns its arguments."""
    stub_bin = tmp_path / "bin"
    stub_bin.mkdir()
    recorded = tmp_path / "args"
    stub = stub_bin / "fleet-dagster"
    stub.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {recorded}\n')
    stub.chmod(0o755)
    stamp = tmp_path / "installed"  # newer than pyproject.toml: make installs nothing
    stamp.touch()
    command = ["make", "-C", str(REPO), "deliberate", f"BIN={stub_bin}", f"STAMP={stamp}", *variables]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return recorded.read_text().splitlines()


def test_the_task_is_text_not_code(tmp_path):
    markers = [tmp_path / f"ran-{i}" for i in range(4)]
    task = (
        f"Design $(shell touch {markers[0]}) and $$(touch {markers[1]}) "
        f'with `touch {markers[2]}` "; touch {markers[3]}; echo " for $HOME\'s $(USER) at $5'
    )
    args = make_deliberate(tmp_path, f"TASK={task}")
    assert [m.name for m in markers if m.exists()] == []
    assert args[:2] == ["deliberate", task]


def test_the_default_task(tmp_path):
    assert make_deliberate(tmp_path)[1] == "Design a rate limiter for the public REST API"
