import dagster as dg

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
