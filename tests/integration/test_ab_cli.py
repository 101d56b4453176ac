"""`fleet-dagster bench --compare`: a bad arm or suite is a usage error (exit 2), refused before anything starts."""

import os

import pytest

from tests.cli_helpers import fleet_dagster

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--suite", "quality", "--compare", "agents=0", "agents=3"], "arm key 'agents'"),
        (["--suite", "code", "--compare", "models=a", "temperature=1"], "unknown arm key 'temperature'"),
        (["--suite", "speed", "--compare", "agents=1", "agents=3"], "--compare runs the quality or code suite"),
        (["--suite", "all", "--compare", "agents=1", "agents=3"], "not all"),
    ],
)
def test_a_bad_compare_exits_2_with_the_message(args, message):
    done = fleet_dagster("bench", *args, env={**os.environ, "FLEET_LLM_URL": "http://127.0.0.1:9/v1"})
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and not done.stdout
