import dagster as dg
import pytest

from fleet_dagster.core.profiles import available_roles
from fleet_dagster.definitions import defs
from fleet_dagster.deliberation.config import DeliberationConfig


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)
    job = defs.resolve_job_def("deliberation_job")
    assert job.partitions_def.name == "deliberations"
    asset = defs.resolve_assets_def("deliberation")
    assert asset.key == dg.AssetKey("deliberation")
    assert {"ray_cluster", "llm"} <= set(defs.resources)


def test_the_code_location_defines_every_asset_check_job_schedule_and_sensor():
    """The benchmarks' code is imported where it runs (tests/unit/test_light_imports.py); what the code
    location defines stays whole."""
    repository = defs.get_repository_def()
    assert {key.to_user_string() for key in defs.resolve_all_asset_keys()} == {
        "deliberation",
        "benchmark_results",
        "ab_test_results",
        "intake_drain",
    }
    assert {key.name for key in defs.resolve_asset_graph().asset_check_keys} == {
        "latency_within_trailing_median",
        "deliberation_not_worse_than_single",
        "deliberation_not_worse_than_majority_vote",
        "execution_better_than_single",
        "failure_rate_at_most_5_percent",
        "ab_test_sound",
        "intake_keeps_up",
    }
    assert {job.name for job in repository.get_all_jobs()} >= {
        "deliberation_job",
        "benchmark_job",
        "deliberation_retention_job",
        "ab_test_job",
        "intake_drain_job",
    }
    assert {schedule.name for schedule in repository.schedule_defs} == {
        "benchmark_schedule",
        "deliberation_retention_schedule",
        "ab_test_schedule",
        "intake_drain_schedule",
    }
    assert {sensor.name for sensor in repository.sensor_defs} == {"deliberation_requests", "deliberation_outbox"}


def test_launchpad_needs_only_a_task():
    fields = DeliberationConfig.to_config_schema().as_field().config_type.fields
    required = {name for name, field in fields.items() if field.is_required}
    assert required == {"task"}


def test_launchpad_config_becomes_the_shared_request_model():
    request = DeliberationConfig(task="t", roles=["QA"]).to_request("abc")
    assert request.deliberation_id == "abc" and request.roles == ["QA"] and request.agents_per_role == 3


def test_the_launchpad_offers_the_profiles_as_roles_and_describes_every_field():
    fields = DeliberationConfig.to_config_schema().as_field().config_type.fields
    role_type = fields["roles"].config_type  # Noneable(Array(Enum))
    while not isinstance(role_type, dg.Enum):
        role_type = role_type.inner_type
    assert {value.config_value for value in role_type.enum_values} == set(available_roles())
    assert all(field.description for field in fields.values())


@pytest.mark.parametrize(
    "fields, named",
    [
        ({"roles": ["WIZARD"]}, ["WIZARD", "not in enum"]),  # by the config schema, as the launchpad types
        ({"agents_per_role": 0, "rounds": 9}, ["agents_per_role", "rounds"]),  # by the config mapping
    ],
)
def test_invalid_launchpad_config_is_refused_before_the_run_starts(instance, fields, named):
    instance.add_dynamic_partitions("deliberations", ["refused"])
    bad = {"ops": {"deliberation": {"config": {"task": "t", **fields}}}}
    with pytest.raises(dg.DagsterError) as caught:
        defs.resolve_job_def("deliberation_job").execute_in_process(
            run_config=bad, instance=instance, partition_key="refused"
        )
    cause = str(caught.value)
    assert all(name in cause for name in named), cause
    assert not instance.get_runs() or all(r.status != dg.DagsterRunStatus.SUCCESS for r in instance.get_runs())
    records = instance.fetch_materializations(dg.AssetKey("deliberation"), limit=1).records
    assert records == []
