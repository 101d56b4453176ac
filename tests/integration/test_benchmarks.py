"""benchmark_results: real Dagster execution on Ray against the simulated server; checks and schedule."""

import datetime

import dagster as dg
import pytest

from fleet_dagster.benchmarks.assets import (
    benchmark_schedule,
    check_accuracy,
    check_against_vote,
    check_failures,
    check_latency,
)
from fleet_dagster.benchmarks.history import BENCHMARK_ASSET_KEY
from fleet_dagster.benchmarks.schedule_settings import BenchmarkScheduleSettings
from fleet_dagster.definitions import defs

pytestmark = pytest.mark.integration


def test_schedule_requests_yesterdays_partition():
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime.datetime(2026, 11, 29, 6, 0, tzinfo=datetime.UTC)
    )
    run_request = benchmark_schedule(BenchmarkScheduleSettings.from_environ({}))(context)
    assert run_request.partition_key == "2026-11-28"
    assert run_request.run_config["ops"]["benchmark_results"]["config"]["suite"] == "all"
    assert defs.resolve_schedule_def("benchmark_schedule").cron_schedule == "0 6 * * *"
    quality = BenchmarkScheduleSettings.from_environ({"FLEET_BENCHMARK_SUITE": "quality"})
    assert benchmark_schedule(quality)(context).run_config["ops"]["benchmark_results"]["config"]["suite"] == "quality"


def test_benchmark_job_materializes_rows_plots_and_checks(ray_head, instance, sim_llm_factory, deploy_llm):
    server = sim_llm_factory(latency_s=0.05, per_token_s=0.001, output_tokens=12)
    deploy_llm(server)
    job = defs.resolve_job_def("benchmark_job")
    result = job.execute_in_process(
        instance=instance,
        partition_key="2026-11-28",
        run_config={
            "ops": {"benchmark_results": {"config": {"suite": "all", "max_tasks": 7}}},
        },
    )
    assert result.success
    frame = result.output_for_node("benchmark_results")
    # 4 speed shapes; one question answered by one agent, by a vote of 9 (and of its first 3), by a deliberation
    # (its winner by score and by vote).
    assert len(frame) == 4 + 1 + 2 + 2 and set(frame["suite"]) == {"speed", "quality"}
    quality = frame[frame["suite"] == "quality"]
    assert list(quality["method"]) == ["single", "vote@3", "vote@9", "deliberation", "deliberation+vote"]
    tokens = dict(zip(quality["method"], quality["tokens"], strict=True))
    assert 0 < tokens["single"] < tokens["vote@3"] < tokens["vote@9"]
    assert (frame["calls"] > 0).all() and (frame["failures"] == 0).all()
    assert frame["ttft_p50_ms"].notna().all() and frame["tokens_per_s"].gt(0).all()
    materialization = result.asset_materializations_for_node("benchmark_results")[0]
    assert materialization.metadata["latency_trend"].value.startswith("![latency trend](data:image/png;base64,")
    assert "accuracy_trend" in materialization.metadata
    assert "| vote@9 | 1 |" in materialization.metadata["quality"].value
    assert materialization.metadata["accuracy_vs_tokens"].value.startswith("![")
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert set(checks) == {
        "latency_within_trailing_median",
        "deliberation_not_worse_than_single",
        "deliberation_not_worse_than_majority_vote",
        "execution_better_than_single",
        "failure_rate_at_most_5_percent",
    }
    assert checks["failure_rate_at_most_5_percent"] and checks["latency_within_trailing_median"]


def record(instance: dg.DagsterInstance, day: int, **summary) -> None:
    base = {
        "latency_p50_ms": 50.0,
        "latency_p95_ms": 100.0,
        "failure_rate": 0.0,
        "accuracy_single": None,
        "accuracy_deliberation": None,
    }
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=BENCHMARK_ASSET_KEY,
            partition=f"2026-11-{day:02d}",
            metadata={"summary": dg.MetadataValue.json({**base, **summary})},
        )
    )


def test_latency_check_on_crafted_history(instance):
    for day, p95 in zip(range(1, 9), (900, 100, 100, 110, 90, 100, 105, 95), strict=True):
        record(instance, day, latency_p95_ms=p95)
    record(instance, 9, latency_p95_ms=115)
    passed = check_latency(instance)
    assert passed.passed and passed.metadata["trailing_median_p95_ms"].value == 100
    record(instance, 10, latency_p95_ms=125)
    failed = check_latency(instance)
    assert not failed.passed and failed.metadata["latency_p95_ms"].value == 125
    assert failed.metadata["partition"].value == "2026-11-10"


def test_the_vote_check_warns_within_the_noise_and_fails_below_it(instance):
    vote = {"accuracy_vote": 0.5, "tokens_vote": 900, "tasks_vote": 40, "tokens_deliberation": 1400}
    record(instance, 1, accuracy_deliberation=0.55, tasks_deliberation=40, **vote)
    passed = check_against_vote(instance)
    assert passed.passed and "1.56x the tokens" in passed.description
    record(instance, 2, accuracy_deliberation=0.45, tasks_deliberation=40, **vote)
    warned = check_against_vote(instance)
    assert not warned.passed and warned.severity == dg.AssetCheckSeverity.WARN
    record(instance, 3, accuracy_deliberation=0.1, tasks_deliberation=40, **vote)
    failed = check_against_vote(instance)
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR
    assert failed.metadata["accuracy_vote"].value == 0.5 and failed.metadata["accuracy_deliberation"].value == 0.1


def test_accuracy_and_failure_checks_on_crafted_history(instance):
    record(instance, 1, accuracy_single=0.5, accuracy_deliberation=0.75, failure_rate=0.01)
    assert check_accuracy(instance).passed and check_failures(instance).passed
    record(instance, 2, accuracy_single=0.5, accuracy_deliberation=0.25, failure_rate=0.2)
    accuracy, failures = check_accuracy(instance), check_failures(instance)
    assert not accuracy.passed and accuracy.metadata["accuracy_deliberation"].value == 0.25
    assert not failures.passed and failures.metadata["failure_rate"].value == 0.2
