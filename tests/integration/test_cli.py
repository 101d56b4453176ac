"""The CLI as users run it: a real process, against the session's Ray head and a real HTTP model."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import ray
from click.testing import CliRunner
from rich.console import Console

from fleet_dagster.cli.console import print_summary
from fleet_dagster.cli.main import cli
from fleet_dagster.cli.progress import DeliberationProgress
from tests.cli_helpers import fleet_dagster
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def test_deliberate_json_is_the_status_document(ray_head, dagster_home, sim_llm_factory):
    server = sim_llm_factory(latency_s=0.05)
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home)}
    args = ["Design a cache", "--role", "DEV", "--role", "DATA", "--agents", "2", "--rounds", "1", "--id", "cli-1"]
    done = fleet_dagster("deliberate", *args, "--llm-url", server.base_url, "--json", env=env)

    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)  # nothing but the JSON document on stdout
    assert document["deliberation_id"] == "cli-1" and document["status"] == "COMPLETED"
    assert set(document["winners"]) == {"DEV", "DATA"}
    status = fleet_dagster("status", "cli-1", "--json", env=env)
    assert json.loads(status.stdout) == document


def test_a_run_again_replays_stored_answers_unless_told_not_to(ray_head, dagster_home, sim_llm_factory):
    """The same id run again: by default its calls are answered from the response store, none reaching the
    model; with --no-replay-answers every call reaches the model again. The status document counts them."""
    server = sim_llm_factory(latency_s=0.05)
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "FLEET_LLM_URL": server.base_url}
    args = ["Design a cache", "--role", "DEV", "--agents", "2", "--rounds", "1", "--id", "cli-again", "--json"]

    def run(*flags: str) -> tuple[dict, int]:
        done = fleet_dagster("deliberate", *args, *flags, env=env)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout), len(server.answered)

    (first, calls), (replayed, after_replay), (afresh, after_afresh) = run(), run(), run("--no-replay-answers")
    assert first["replayed_calls"] == 0 and calls > 0
    assert replayed["replayed_calls"] == calls and after_replay == calls  # no call reached the model
    assert afresh["replayed_calls"] == 0 and after_afresh == 2 * calls
    status = fleet_dagster("status", "cli-again", "--json", env=env)
    assert json.loads(status.stdout)["replayed_calls"] == 0


def test_partial_exits_3_and_prints_the_summary(ray_head, dagster_home, sim_llm_factory):
    server = sim_llm_factory(latency_s=0.05, faults={"agent-dev-002": ["500"]})
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "FLEET_LLM_URL": server.base_url}
    done = fleet_dagster("deliberate", "Design a cache", "--role", "DEV", "--agents", "2", "--id", "cli-2", env=env)

    assert done.returncode == 3, done.stderr
    assert "cli-2" in done.stdout and "PARTIAL" in done.stdout and "agent-dev-001" in done.stdout
    assert "storage/deliberation/cli-2" in done.stdout.replace("\n", "")


def test_the_terminal_shows_the_clis_output_and_ray_logs_go_to_a_file(ray_head, dagster_home, sim_llm_factory):
    server = sim_llm_factory(latency_s=0.05)
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "FLEET_LLM_URL": server.base_url}
    done = fleet_dagster("deliberate", "Design a cache", "--role", "DEV", "--agents", "2", "--id", "cli-quiet", env=env)

    assert done.returncode == 0, done.stderr
    terminal = done.stdout + done.stderr
    for ray_line in ("worker.py", "SIGTERM handler", "Connecting to existing Ray cluster"):
        assert ray_line not in terminal, terminal
    ray_log = Path(os.environ["FLEET_HOME"]) / "logs" / "ray-driver.log"
    assert "Connecting to existing Ray cluster" in ray_log.read_text()


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["t", "--agents", "0"], "--agents"),
        (["t", "--rounds", "9"], "--rounds"),
        (["t", "--role", "WIZARD"], "--role"),
        (["t", "--id", "no spaces"], "--id"),
        (["t", "--deadline", "-1"], "--deadline"),
        (["   "], "TASK"),
        (["t", "--agents", "many"], "--agents"),
        (["t", "--selection", "architect", "--top-k", "1"], "--top-k"),
        (["t", "--requirement", "x" * 2_000], "--requirement"),
        (["word " * 4_000, "--role", "DEV"], "TASK"),
    ],
)
def test_invalid_flags_exit_2_naming_the_flag(args, flag, dagster_home):
    result = CliRunner().invoke(cli, ["deliberate", *args])
    assert result.exit_code == 2
    assert flag in result.output and "Traceback" not in result.output


def test_status_of_an_unknown_id(dagster_home):
    result = CliRunner().invoke(cli, ["status", "nope", "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["status"] == "UNKNOWN"
    assert CliRunner().invoke(cli, ["status", "bad id!"]).exit_code == 2


def test_a_task_too_long_for_the_context_says_why(dagster_home):
    result = CliRunner().invoke(cli, ["deliberate", "word " * 4_000, "--role", "DEV"])
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "TASK" in message and "DEV" in message and "8192-token context" in message


HOSTILE = "HTTP 400: [bold]x[/bold] list index [0] [/]"


def test_server_text_is_printed_as_text_not_markup(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    document = {
        "deliberation_id": "d-[1]",
        "status": "PARTIAL",
        "current_count": 1,
        "expected_count": 2,
        "duration_ms": 1200,
        "error_message": HOSTILE,
        "winners": {"DEV[x]": {"agent_id": "agent-[red]dev[/red]-001", "score": 7.5}},
        "run_id": "run-[/]",
    }
    print_summary(document, "/tmp/home")
    out = capsys.readouterr().out
    assert HOSTILE in out and "d-[1]" in out and "run-[/]" in out
    assert "DEV[x]" in out and "agent-[red]dev[/red]-001" in out


def test_progress_shows_roles_and_phases_as_text():
    console = Console(record=True, width=200, force_terminal=False)
    with DeliberationProgress(["DEV[/]"], 2, console) as progress:
        progress.update({"current_count": 1, "progress": {"DEV[/]": {"phase": "[bold]x[/]", "done": 1, "total": 2}}})
    text = console.export_text()
    assert "DEV[/]" in text and "[bold]x[/]" in text


def test_ctrl_c_releases_the_councils_and_exits_130(runner, dagster_home, sim_llm_factory, tmp_path):
    server = sim_llm_factory(latency_s=5.0)
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home)}
    args = ["Design a cache", "--role", "DEV", "--agents", "2", "--deadline", "600", "--id", "cli-interrupted"]
    # Output goes to files: an undrained pipe fills and blocks the CLI mid-write, whatever it was doing.
    output = tmp_path / "cli.out"
    with output.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "fleet_dagster.cli", "deliberate", *args, "--llm-url", server.base_url],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, which a terminal's Ctrl-C signals as a whole
        )
    try:
        wait_until(lambda: server.requests_by_agent or process.poll() is not None, 180, "the councils' first call")
        assert server.requests_by_agent, f"the councils never called the model (CLI exit: {process.poll()})"
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=120)
        stderr = output.read_text()

        assert process.returncode == 130, stderr
        assert "Interrupted: deliberation cli-interrupted cancelled, its councils released" in stderr
        # Dagster's log-capture helpers (same process group) may print their own KeyboardInterrupt; ours must not.
        assert "fleet_dagster/cli" not in stderr and "Aborted!" not in stderr
        # Released: the runner holds no council of it, and a council's task is cancelled as it is dropped, so no
        # further call can start (waiting a while to see none arrive would prove less and cost time).
        assert ray.get(runner("cli-interrupted").progress.remote("cli-interrupted")) == {}
        status = CliRunner().invoke(cli, ["status", "cli-interrupted", "--json"])
        assert json.loads(status.output)["status"] == "FAILED"  # the run ended, not IN_PROGRESS forever
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        ray.get(runner("cli-interrupted").release.remote("cli-interrupted"))


def test_ctrl_c_cancels_only_the_run_it_launched(runner, instance, dagster_home, sim_llm_factory, tmp_path):
    """A second `deliberate --id X`, interrupted before its own run exists, leaves the run of X that is going on
    (someone else's) alone: it neither releases that run's councils nor marks it canceled."""
    server = sim_llm_factory(latency_s=8.0)  # the first run lasts its 3 phases: 24 s at least
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home)}
    args = ["Design a cache", "--role", "DEV", "--agents", "2", "--rounds", "1", "--deadline", "600"]
    command = [sys.executable, "-m", "fleet_dagster.cli", "deliberate", *args, "--id", "cli-shared"]
    command += ["--llm-url", server.base_url]
    # The first CLI's output goes to files (it runs long: an undrained pipe would block it); the second's is read
    # as it comes, so that its Ctrl-C follows the line it prints as it starts the run, before the run exists.
    output, log = tmp_path / "first.json", tmp_path / "first.log"
    with output.open("w") as out, log.open("w") as err:
        first = subprocess.Popen([*command, "--json"], env=env, stdout=out, stderr=err, start_new_session=True)
    second = None
    try:
        wait_until(lambda: server.requests_by_agent or first.poll() is not None, 180, "the first run's calls")
        assert server.requests_by_agent, f"the first run never called the model (CLI exit: {first.poll()})"
        second = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        started = second.stderr.readline()
        assert "Deliberation cli-shared" in started, started + second.communicate(timeout=120)[1]
        os.killpg(second.pid, signal.SIGINT)
        _, stderr = second.communicate(timeout=120)
        assert second.returncode == 130, stderr

        first.wait(timeout=300)
        assert first.returncode == 0, log.read_text()[-3000:]
        document = json.loads(output.read_text())
        assert document["status"] == "COMPLETED", document["error_message"]
        canceled = instance.all_logs(document["run_id"], of_type=dg.DagsterEventType.RUN_CANCELED)
        assert canceled == [], "the second CLI cancelled the first one's run"
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.communicate()
        ray.get(runner("cli-shared").release.remote("cli-shared"))
