"""The code suite through the benchmark job, on the session's Ray head (its sandbox slots run the winners against
the hidden tests in bubblewrap), with the simulated server told what each agent writes."""

import dagster as dg
import pytest

from fleet_dagster.benchmarks.suites import CODE_METHODS, code_task_set
from fleet_dagster.definitions import defs

pytestmark = pytest.mark.integration


def test_each_method_is_graded_by_the_hidden_tests(ray_head, instance, sim_llm_factory, deploy_llm):
    task = code_task_set(served_model=True)[0]  # a served model gets code_served.yaml's tasks
    right = f"```python\n{task.reference}```"
    wrong = f"```python\ndef {task.entry_point}(xs):\n    return xs\n```"
    qa_tests = f"```python\n{task.shown_tests}```"
    answers = {
        # One agent alone, and a majority of the samples, write the wrong solution; one writes the right one.
        "agent-dev-001": [wrong],
        "agent-dev-002": [right],
        "agent-dev-003": [wrong],
        **{f"agent-qa-00{i}": [qa_tests] for i in (1, 2, 3)},
    }
    deploy_llm(sim_llm_factory(latency_s=0.02, answers=answers))
    result = defs.resolve_job_def("benchmark_job").execute_in_process(
        instance=instance,
        partition_key="2026-11-28",
        run_config={"ops": {"benchmark_results": {"config": {"suite": "code", "max_tasks": len(CODE_METHODS)}}}},
    )

    assert result.success
    frame = result.output_for_node("benchmark_results")
    assert list(frame["method"]) == list(CODE_METHODS) and set(frame["task"]) == {task.name}
    rows = {row["method"]: row for row in frame.to_dict("records")}
    assert rows["single"]["hidden"] == "failed" and not rows["single"]["correct"]
    assert rows["vote"]["hidden"] == "failed" and not rows["vote"]["correct"]  # two wrong samples outvote one
    # The shown tests (or QA's, here the same asserts) pick the right solution; the hidden tests grade it: 4 of 4.
    for method in ("execution-request-tests", "execution-qa-tests"):
        assert rows[method]["correct"] and rows[method]["hidden_passed"] == task.hidden_tests.count("def test_")
    assert rows["single"]["tokens"] < rows["vote"]["tokens"] < rows["execution-qa-tests"]["tokens"]
    materialization = result.asset_materializations_for_node("benchmark_results")[0]
    assert "| execution-qa-tests | 1 | 1 | 100.0 %" in materialization.metadata["code"].value
    assert materialization.metadata["code_accuracy_vs_tokens"].value.startswith("![")
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["execution_better_than_single"].passed
    assert checks["deliberation_not_worse_than_single"].passed  # no quality suite in this partition
    assert checks["execution_better_than_single"].metadata["accuracy_code_single"] == dg.FloatMetadataValue(0.0)
