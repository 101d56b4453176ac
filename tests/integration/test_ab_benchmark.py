"""A/B tests on Ray against a simulated server whose two models answer the quality questions at known rates."""

import datetime

import dagster as dg
import openai
import pytest

from fleet_dagster.benchmarks.ab_assets import (
    AB_ASSET_KEY,
    ab_test_checks,
    ab_test_job,
    ab_test_results,
    ab_test_schedule,
    check_ab,
)
from fleet_dagster.benchmarks.ab_runner import run_ab
from fleet_dagster.benchmarks.ab_settings import ABScheduleSettings
from fleet_dagster.benchmarks.ab_test import Arm
from fleet_dagster.benchmarks.suites import quality_questions
from fleet_dagster.core.env_settings import SettingsError
from fleet_dagster.llm.resources import LLMResource
from fleet_dagster.ray_cluster.resources import RayClusterResource

pytestmark = pytest.mark.integration

TASKS = 60


@pytest.fixture
def two_models(sim_llm_factory, deploy_llm):
    """sim-strong answers 80 % of the served model's quality questions right, sim-weak 40 %."""
    server = sim_llm_factory(
        latency_s=0.01,
        model="sim-strong",
        models=["sim-weak"],
        only_model=True,
        answer_key={q.question: str(q.answer) for q in quality_questions(served_model=True, count=TASKS)},
        model_accuracy={"sim-strong": 0.8, "sim-weak": 0.4},
    )
    deploy_llm(server)
    return server


def run(arm_a: Arm, arm_b: Arm) -> tuple:
    resources = {"ray_cluster": RayClusterResource(), "llm": LLMResource()}
    with dg.build_resources(resources) as ready:
        return run_ab("quality", arm_a, arm_b, ready.llm, limit=TASKS)


def test_the_stronger_model_wins_and_identical_arms_do_not_differ(ray_head, two_models):
    strong = Arm.parse("models=sim-strong,agents=1,rounds=0")
    weak = Arm.parse("models=sim-weak,agents=1,rounds=0")
    frame, summary = run(strong, weak)
    assert summary["paired"] == TASKS and summary["unpaired"] == 0
    assert summary["verdict"] == "A better" and summary["p_value"] < 0.05
    accuracy_a, accuracy_b = (arm["accuracy"] for arm in summary["arms"])
    assert accuracy_a > accuracy_b
    # Task by task, A then B: drift hits both arms alike.
    assert list(frame["arm"][:4]) == ["A", "B", "A", "B"] and list(frame["task"][:2]) == ["du-1", "du-1"]
    assert set(frame["spec"]) == {strong.label, weak.label}
    assert summary["failure_rate"] == 0.0
    # Each arm's calls went to its own model: the server answered both names.
    assert {'"model": "sim-strong"' in a for a in two_models.answered} == {True, False}

    _, same = run(strong, strong)
    assert same["verdict"] == "no difference at alpha=0.05" and same["b"] == same["c"] == 0


def test_ab_job_materializes_the_verdict_plot_history_and_check(ray_head, instance, two_models):
    config = {"suite": "quality", "arm_a": "models=sim-strong,agents=1,rounds=0", "max_tasks": 4}
    defs = dg.Definitions(
        assets=[ab_test_results],
        asset_checks=ab_test_checks,
        jobs=[ab_test_job],
        resources={"ray_cluster": RayClusterResource(), "llm": LLMResource()},
    )
    for day, arm_b in ((27, "models=sim-strong,agents=1,rounds=0"), (28, "models=sim-weak,agents=1,rounds=0")):
        result = defs.resolve_job_def("ab_test_job").execute_in_process(
            instance=instance,
            partition_key=f"2026-11-{day}",
            run_config={"ops": {"ab_test_results": {"config": {**config, "arm_b": arm_b}}}},
        )
        assert result.success
    frame = result.output_for_node("ab_test_results")
    assert len(frame) == 8 and list(frame["arm"][:2]) == ["A", "B"]
    metadata = result.asset_materializations_for_node("ab_test_results")[0].metadata
    assert metadata["paired"].value == 4 and metadata["unpaired"].value == 0
    assert metadata["accuracy_by_arm"].value.startswith("![A/B accuracy](data:image/png;base64,")
    history = metadata["history"].value
    assert "| 2026-11-27 | quality |" in history and "| 2026-11-28 | quality |" in history
    assert "| B | models=sim-weak,agents=1,rounds=0 | 4 |" in metadata["ab_test"].value
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == "ab_test_sound" and check.passed  # 4 tasks are too few for a verdict


def record(instance: dg.DagsterInstance, day: int, **figures) -> None:
    summary = {"paired": 60, "unpaired": 0, "b": 0, "c": 0, "p_value": 1.0, "verdict": "no difference at alpha=0.05"}
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            asset_key=AB_ASSET_KEY,
            partition=f"2026-11-{day:02d}",
            metadata={"summary": dg.MetadataValue.json({**summary, **figures})},
        )
    )


def test_the_check_fails_on_unpaired_tasks_and_warns_when_b_is_worse(instance):
    assert not check_ab(instance).passed  # nothing materialized yet
    record(instance, 1)
    assert check_ab(instance).passed
    record(instance, 2, verdict="B better", b=1, c=14, p_value=0.001)
    assert check_ab(instance).passed
    record(instance, 3, verdict="A better", b=14, c=1, p_value=0.001)
    warned = check_ab(instance)
    assert not warned.passed and warned.severity == dg.AssetCheckSeverity.WARN
    assert "B is significantly worse than A" in (warned.description or "")
    record(instance, 4, paired=58, unpaired=2)
    failed = check_ab(instance)
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR
    assert failed.metadata["unpaired"].value == 2 and failed.metadata["partition"].value == "2026-11-04"


def test_the_schedule_runs_yesterday_with_the_settings_arms():
    context = dg.build_schedule_context(
        scheduled_execution_time=datetime.datetime(2026, 11, 29, 7, 0, tzinfo=datetime.UTC)
    )
    defaults = ABScheduleSettings.from_environ({})
    schedule = ab_test_schedule(defaults)
    assert schedule.cron_schedule == "0 7 * * *" and schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    settings = ABScheduleSettings.from_environ({"FLEET_AB_SUITE": "code", "FLEET_AB_ARM_B": "agents=5"})
    request = ab_test_schedule(settings)(context)
    assert request.partition_key == "2026-11-28"
    assert request.run_config["ops"]["ab_test_results"]["config"] == {
        "suite": "code",
        "arm_a": "",
        "arm_b": "agents=5",
        "max_tasks": None,
    }
    with pytest.raises(SettingsError, match="agents"):
        ABScheduleSettings.from_environ({"FLEET_AB_ARM_A": "agents=0"})


def test_the_sim_serves_both_names_and_answers_a_keyed_question_as_each_model_would(two_models):
    client = openai.OpenAI(base_url=two_models.base_url, api_key="unused", max_retries=0)
    assert [model.id for model in client.models.list().data] == ["sim-strong", "sim-weak"]
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="sim-other", messages=[{"role": "user", "content": "hi"}])
    question = quality_questions(served_model=True)[0]
    answers = {}
    for model in ("sim-strong", "sim-weak"):
        messages = [{"role": "user", "content": f"Task:\n{question.question}"}]
        first, again = (client.chat.completions.create(model=model, messages=messages) for _ in range(2))
        assert first.model == model
        answers[model] = (first.choices[0].message.content or "").rsplit("\n", 1)[-1]
        assert (again.choices[0].message.content or "").endswith(answers[model])  # drawn once per question
    assert set(answers.values()) <= {f"Answer: {question.answer}", f"Answer: {question.answer + 1}"}
