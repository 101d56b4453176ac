"""What a launch can and cannot change: endpoints and credentials are the deployment's, never run config's."""

import dagster as dg
import pytest

from fleet_dagster.core.request import parse_request
from fleet_dagster.definitions import defs
from fleet_dagster.deliberation.run_config import run_config_for
from fleet_dagster.llm.settings import LLM_ENV

pytestmark = pytest.mark.integration

KEY = "sk-deployment-key"


def launch(instance, deliberation_id: str, resources: dict) -> dg.ExecuteInProcessResult:
    request = parse_request({"task": "Design a cache", "roles": ["DEV"], "agents_per_role": 2, "rounds": 0})
    request = request.model_copy(update={"deliberation_id": deliberation_id})
    instance.add_dynamic_partitions("deliberations", [deliberation_id])
    return defs.resolve_job_def("deliberation_job").execute_in_process(
        run_config={**run_config_for(request), "resources": resources},
        instance=instance,
        partition_key=deliberation_id,
        raise_on_error=False,
    )


@pytest.mark.parametrize(
    ("resources", "field"),
    [
        ({"llm": {"config": {"base_url": "{elsewhere}"}}}, "base_url"),
        ({"llm": {"config": {"model_urls": {"m": "{elsewhere}"}}}}, "model_urls"),
        ({"nats": {"config": {"url": "nats://{elsewhere_host}"}}}, "url"),
    ],
    ids=["llm.base_url", "llm.model_urls", "nats.url"],
)
def test_a_launch_cannot_point_the_deployments_credentials_elsewhere(
    ray_head, instance, sim_llm_factory, monkeypatch, resources, field
):
    deployed = sim_llm_factory(latency_s=0.01, api_key=KEY)
    elsewhere = sim_llm_factory(latency_s=0.01)
    monkeypatch.setenv(LLM_ENV["base_url"], deployed.base_url)
    monkeypatch.setenv(LLM_ENV["api_key"], KEY)
    host = elsewhere.base_url.split("//")[1].split("/")[0]
    text = repr(resources).replace("{elsewhere}", elsewhere.base_url).replace("{elsewhere_host}", host)
    with pytest.raises(dg.DagsterInvalidConfigError, match=field):
        launch(instance, f"redirect-{field}", eval(text))  # noqa: S307 - the test's own literal
    assert elsewhere.authorizations == []


def test_the_deployments_key_reaches_the_deployments_server(ray_head, instance, sim_llm_factory, monkeypatch):
    deployed = sim_llm_factory(latency_s=0.01, api_key=KEY)
    monkeypatch.setenv(LLM_ENV["base_url"], deployed.base_url)
    monkeypatch.delenv(LLM_ENV["api_key"], raising=False)
    refused = launch(instance, "no-key", {})
    assert not refused.success and set(deployed.authorizations) == {"Bearer not-needed"}
    monkeypatch.setenv(LLM_ENV["api_key"], KEY)
    outcome = launch(instance, "with-key", {})
    assert outcome.success
    assert f"Bearer {KEY}" in deployed.authorizations
