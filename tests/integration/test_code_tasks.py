"""Code tasks through each entry point (the CLI, the launchpad's run config, a NATS request), on the session's
Ray head, whose sandbox slots run the code in bubblewrap, with the simulated server told what each agent writes."""

import asyncio
import json
import os
import re
import time
from collections import Counter

import dagster as dg
import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fleet_dagster.cli.console import print_summary
from fleet_dagster.core.execution import ExecutionJob
from fleet_dagster.nats_bridge.schemas import schema_for_subject
from fleet_dagster.ray_cluster.sandbox_runs import SandboxRuns
from tests import nats_helpers
from tests.cli_helpers import fleet_dagster
from tests.integration.test_deliberation_on_ray import materialization_metadata
from tests.integration.test_operating_metrics import metrics_text
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

TASK = "Write add(a, b): return the sum of a and b."
TESTS = (
    "from solution import add\n\n\ndef test_small():\n    assert add(1, 2) == 3\n\n\n"
    "def test_negative():\n    assert add(-2, 5) == 3\n"
)
WRONG = "Here:\n```python\ndef add(a, b):\n    return a - b\n```"
RIGHT_CODE = "def add(a, b):\n    return a + b\n"
RIGHT = f"```python\n{RIGHT_CODE}```"
RIGHT_TOO = "```python\ndef add(a, b):\n    total = a\n    total += b\n    return total\n```"
HOSTILE = "```python\nimport os\nos.system('touch /tmp/pwned-by-a-proposal')\ndef add(a, b):\n    return a + b\n```"
QA_TESTS = (
    "```python\nfrom solution import add\n\ndef test_sum():\n    assert add(2, 3) == 5\n\n"
    "def test_zero():\n    assert add(0, 4) == 4\n```"
)
QA_VACUOUS = "```python\nfrom solution import add\n\ndef test_anything():\n    assert True\n```"
ANSWERS = {
    "agent-dev-001": [WRONG],
    "agent-dev-002": [RIGHT],
    "agent-dev-003": [RIGHT_TOO],
    "agent-qa-001": [QA_VACUOUS],
    "agent-qa-002": [QA_TESTS],
    "agent-qa-003": ["I would test it with a few sums."],
}


def test_the_cli_runs_a_code_deliberation_against_tests_from_a_file(
    ray_head, dagster_home, sim_llm_factory, tmp_path, capsys, monkeypatch
):
    server = sim_llm_factory(latency_s=0.02, answers=ANSWERS)
    tests_file = tmp_path / "test_add.py"
    tests_file.write_text(TESTS)
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home)}
    args = [TASK, "--role", "DEV", "--role", "QA", "--agents", "3", "--rounds", "0", "--id", "code-cli"]
    code = ["--entry-point", "add", "--tests", str(tests_file), "--selection", "execution"]
    done = fleet_dagster("deliberate", *args, *code, "--llm-url", server.base_url, "--json", env=env)

    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    jsonschema.validate(document, schema_for_subject("status"))
    rows = {row["agent_id"]: row for row in document["results"]}
    assert (rows["agent-dev-001"]["tests_verdict"], rows["agent-dev-001"]["tests_passed"]) == ("failed", 0)
    assert "assert" in rows["agent-dev-001"]["first_failure"]
    assert {rows[a]["tests_verdict"] for a in ("agent-dev-002", "agent-dev-003")} == {"passed"}
    assert rows["agent-qa-001"]["tests_verdict"] is None  # tests are run against the solutions, in the matrix
    dev, qa = document["winners"]["DEV"], document["winners"]["QA"]
    assert dev["agent_id"] in {"agent-dev-002", "agent-dev-003"} and dev["decided_by"] == "execution"
    assert qa["agent_id"] == "agent-qa-002" and qa["decided_by"] == "execution"
    matrix = document["pass_matrix"]
    assert matrix["vacuous"] == ["agent-qa-001"] and list(matrix["unusable"]) == ["agent-qa-003"]
    assert {(c["solution"], c["verdict"]) for c in matrix["cells"]} == {
        ("agent-dev-001", "failed"),
        ("agent-dev-002", "passed"),
        ("agent-dev-003", "passed"),
    }
    assert document["executions"]["passed"] == 4 and document["executions"]["failed"] == 2
    status = fleet_dagster("status", "code-cli", "--json", env=env)  # read back from the asset's metadata
    assert json.loads(status.stdout) == document
    monkeypatch.setenv("COLUMNS", "200")
    print_summary(document, str(dagster_home))  # what `deliberate` prints without --json
    assert re.search(r"DEV .*agent-dev-00[23] .* passed 2/2", capsys.readouterr().out)


def test_the_launchpad_config_runs_a_code_task_and_a_hostile_solution_harms_nothing(
    ray_head, instance, sim_llm_factory, deploy_llm
):
    """The run config the launchpad submits; a solution that runs a shell command does it inside the sandbox,
    where the host's /tmp is not."""
    deploy_llm(sim_llm_factory(latency_s=0.02, answers={"agent-dev-001": [HOSTILE], "agent-dev-002": [WRONG]}))
    config = {
        "task": TASK,
        "roles": ["DEV"],
        "agents_per_role": 2,
        "rounds": 0,
        "entry_point": "add",
        "tests": TESTS,
        "test_timeout_s": 5.0,
    }
    run_request = dg.RunRequest(
        run_key="code-launchpad",
        partition_key="code-launchpad",
        run_config={"ops": {"deliberation": {"config": config}}},
    )
    assert nats_helpers.execute_run_request(instance, run_request).success
    assert not os.path.exists("/tmp/pwned-by-a-proposal")
    metadata = materialization_metadata(instance, "code-launchpad")
    assert metadata["winners"]["DEV"]["agent_id"] == "agent-dev-001"  # it passes; what it did stayed in there
    assert "passed: 2 of 2 tests passed" in metadata["winners"]["DEV"]["rationale"]
    assert metadata["executions"] == {"passed": 1, "failed": 1}


def test_a_nats_request_with_tests_publishes_each_run_with_its_agent_event(
    ray_head, instance, nats_server, sim_llm_factory, deploy_llm
):
    deploy_llm(sim_llm_factory(latency_s=0.02, answers={"agent-dev-001": [RIGHT], "agent-dev-002": [WRONG]}))
    request = {
        "task": TASK,
        "roles": ["DEV"],
        "agents_per_role": 2,
        "rounds": 1,
        "entry_point": "add",
        "tests": TESTS,
        "deliberation_id": "code-nats",
    }
    nats_helpers.publish_raw(nats_server.url, [json.dumps(request).encode()])
    tick = nats_helpers.evaluate_request_sensor(nats_server.url, instance, None)
    (run_request,) = tick.run_requests
    assert nats_helpers.execute_run_request(instance, run_request).success  # the fixture deployed its NATS

    events = nats_helpers.stored_events(nats_server.url, "agent.response.completed")
    runs = {(e["agent_id"], e["phase"]): e for e in events if e["phase"] in ("propose", "revise")}
    assert runs[("agent-dev-001", "propose")]["tests_verdict"] == "passed"
    assert runs[("agent-dev-002", "propose")]["tests_verdict"] == "failed"
    assert runs[("agent-dev-002", "propose")]["tests_total"] == 2
    assert ("agent-dev-002", "revise") in runs  # a revision is run again
    for event in events:
        jsonschema.validate(event, schema_for_subject("agent.response.completed"))


def test_runs_are_counted_in_the_scraped_metrics_by_verdict(ray_connected):
    """Runs on the head's sandbox slots, counted where they ran: by verdict, with their durations. Counted as what
    each worker's series gained: a series of a worker Ray has since stopped may leave the scrape."""

    def series() -> dict[tuple[str, str], float]:
        found = {}
        for family in text_string_to_metric_families(metrics_text(ray_connected)):
            for sample in family.samples:
                if sample.name == "ray_fleet_executions_total":
                    found[(sample.labels["WorkerId"], sample.labels["verdict"])] = sample.value
                elif sample.name == "ray_fleet_execution_seconds_count":
                    key = (sample.labels["WorkerId"], "observed")
                    found[key] = found.get(key, 0.0) + sample.value  # one series per verdict
        return found

    def settled() -> tuple[dict] | None:  # earlier tests' runs may still be on their way (exported every ~10 s)
        first = series()
        time.sleep(12)
        return (first,) if series() == first else None

    def gained() -> Counter:
        counts: Counter = Counter()
        for (worker, label), value in series().items():
            counts[label] += max(0.0, value - before.get((worker, label), 0.0))
        return +counts  # only what grew

    (before,) = wait_until(settled, 120, "metrics that stopped changing", poll_s=0)
    runs = SandboxRuns()
    wrong = "def add(a, b):\n    return a - b\n"
    jobs = [ExecutionJob(module="solution", solution=code, tests=TESTS) for code in (RIGHT_CODE, RIGHT_CODE, wrong)]

    async def run_all() -> list:
        return await asyncio.wait_for(asyncio.gather(*(runs.run(job) for job in jobs)), 120)

    verdicts = asyncio.run(run_all())
    assert sorted(result.verdict for result in verdicts) == ["failed", "passed", "passed"]
    expected = Counter({"passed": 2, "failed": 1, "observed": 3})
    wait_until(lambda: gained() == expected or None, 90, "the runs in the metrics", poll_s=2)
