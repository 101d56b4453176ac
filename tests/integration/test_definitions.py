import dagster as dg
import pytest

from fleet_dagster.definitions import defs
from fleet_dagster.deliberation.config import DeliberationConfig


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)
    job = defs.resolve_job_def("deliberation_job")
    assert job.partitions_def.name == "deliberations"
    asset = defs.resolve_assets_def("deliberation")
    assert asset.key == dg.AssetKey("deliberation")
    assert {"ray_cluster", "llm"} <= set(defs.resources)


def test_launchpad_needs_only_a_task():
    fields = DeliberationConfig.to_config_schema().as_field().config_type.fields
    required = {name for name, field in fields.items() if field.is_required}
    assert required == {"task"}


def test_launchpad_config_becomes_the_shared_request_model():
    request = DeliberationConfig(task="t", roles=["dev"]).to_request("abc")
    assert request.deliberation_id == "abc" and request.roles == ["DEV"] and request.agents_per_role == 3


def test_invalid_launchpad_config_is_refused_before_the_run_starts(instance):
    instance.add_dynamic_partitions("deliberations", ["refused"])
    bad = {"ops": {"deliberation": {"config": {"task": "t", "roles": ["WIZARD"], "agents_per_role": 0}}}}
    with pytest.raises(dg.DagsterError) as caught:
        defs.resolve_job_def("deliberation_job").execute_in_process(
            run_config=bad, instance=instance, partition_key="refused"
        )
    cause = str(caught.value)
    assert "agents_per_role" in cause and "WIZARD" in cause
    assert not instance.get_runs() or all(r.status != dg.DagsterRunStatus.SUCCESS for r in instance.get_runs())
    records = instance.fetch_materializations(dg.AssetKey("deliberation"), limit=1).records
    assert records == []
