"""What a launch (launchpad, GraphQL, a sensor's run request) may set on the resources: only how calls are
made, never where a run connects or what it ships there, since the run pod holds the deployment's secrets."""

import dagster as dg
import pytest
from pydantic import BaseModel

from fleet_dagster.definitions import defs

# Reviewed: none of these names a host, a credential or anything shipped to the cluster.
LAUNCH_TUNABLE = {
    "llm": {"max_retries", "call_timeout_s", "embedded_slots", "embedded_threads", "embedded_max_tokens"},
}


def _every_declared_field(resource: object) -> set[str]:
    """The fields the resource class and every pydantic base declare, so a field hidden from run config in
    a subclass is still tried."""
    return {name for cls in type(resource).__mro__ if issubclass(cls, BaseModel) for name in cls.model_fields}


# Each job that uses the resources, with the least config it launches with.
JOBS = {"deliberation_job": {"ops": {"deliberation": {"config": {"task": "t"}}}}, "benchmark_job": {}}
RESOURCE_FIELDS = sorted((key, name) for key, res in defs.resources.items() for name in _every_declared_field(res))


@pytest.mark.parametrize("key, field", RESOURCE_FIELDS, ids=[f"{key}.{field}" for key, field in RESOURCE_FIELDS])
def test_a_launch_sets_only_reviewed_resource_fields(key, field):
    declared = type(defs.resources[key]).model_fields.get(field)
    value = declared.get_default(call_default_factory=True) if declared else None
    value = value.model_dump() if isinstance(value, BaseModel) else value  # a valid value: only the key may be refused
    for job, launch in JOBS.items():
        run_config = {**launch, "resources": {key: {"config": {field: value}}}}
        if field in LAUNCH_TUNABLE.get(key, set()):
            dg.validate_run_config(defs.resolve_job_def(job), run_config)
        else:
            with pytest.raises(dg.DagsterInvalidConfigError, match=f'unexpected config entry "{field}"'):
                dg.validate_run_config(defs.resolve_job_def(job), run_config)
