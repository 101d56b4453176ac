"""The fleet's Prometheus metrics, scraped over HTTP from the local Ray head's metrics agent while a real
deliberation runs through Dagster and Ray, and checked against the deliberation's own calls."""

import json
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
import ray
from prometheus_client.parser import text_string_to_metric_families

from fleet_dagster.cli.run_deliberation import execute_deliberation
from fleet_dagster.core.request import parse_request
from fleet_dagster.core.trace import trace_id
from fleet_dagster.llm.settings import LLM_ENV, display_url
from fleet_dagster.ray_cluster.actors import AGENT_CALLERS, COUNCIL_RUNNERS, agent_caller, council_runner
from fleet_dagster.ray_cluster.local_head import LocalHead
from tests.integration.test_deliberation_on_ray import materialization_metadata
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
# Ray exports what actors recorded about every 10 s.
EXPORT_WAIT_S = 90
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


Samples = dict[tuple[str, frozenset], float]


def metrics_text(head: LocalHead, wait_s: float = 60) -> str:
    """The agent starts a few seconds after the head: asked too early, it refuses the connection."""

    def served() -> str | None:
        try:
            return urllib.request.urlopen(head.metrics_url, timeout=10).read().decode()
        except OSError:
            return None

    return wait_until(served, wait_s, "the metrics agent's answer", poll_s=1)


def scrape(head: LocalHead, workers: set[str], keep_as: Path | None = None) -> Samples:
    """Every fleet sample the head's metrics agent serves that the given worker processes recorded, by name and
    labels (Ray's own labels dropped); `keep_as`: a file that keeps the fleet's lines as served (tests/artifacts,
    for a person to read)."""
    text = metrics_text(head)
    if keep_as is not None:
        keep_as.parent.mkdir(parents=True, exist_ok=True)
        keep_as.write_text("".join(f"{line}\n" for line in text.splitlines() if "ray_fleet_" in line))
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("ray_fleet_") and sample.labels.get("WorkerId") in workers:
                labels = {k: v for k, v in sample.labels.items() if k[0].islower() and not k.startswith("otel")}
                key = (sample.name, frozenset(labels.items()))
                samples[key] = samples.get(key, 0.0) + sample.value  # summed over the processes that recorded
    return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(value for (n, got), value in samples.items() if n == name and wanted <= got)


def by_label(samples: Samples, name: str, *keys: str) -> Counter:
    counts: Counter = Counter()
    for (n, labels), value in samples.items():
        if n == name:
            found = dict(labels)
            counts[tuple(found[k] for k in keys)] += value
    return counts


def test_a_deliberations_calls_tokens_and_cost_in_the_scraped_metrics(
    ray_head, ray_namespace, instance, sim_llm_factory, deploy_llm, monkeypatch
):
    server = sim_llm_factory(latency_s=0.05)
    deploy_llm(server)
    model = server.settings.model  # the one model it serves answers every role (the preflight's override)
    monkeypatch.setenv(LLM_ENV["prices"], json.dumps({model: {"prompt": 0.5, "completion": 1.5}}))
    request = parse_request(
        {
            "task": "Design a cache for the product catalogue",
            "roles": ["DEV", "QA"],
            "agents_per_role": 2,
            "rounds": 1,
            "deliberation_id": "metrics-1",
            "traceparent": TRACEPARENT,
        }
    )
    document = execute_deliberation(instance, request)
    assert document["status"] == "COMPLETED", document["error_message"]
    metadata = materialization_metadata(instance, "metrics-1")
    calls = metadata["agent_calls"]
    assert metadata["models"] == [model]
    assert calls == 12  # 2 roles x 2 agents x (propose, review, revise)
    # The test's namespace has runners and callers of its own, started by this deliberation: what their processes
    # recorded is this deliberation's and nothing else's, whatever earlier tests' actors export late.
    # The run left this process connected (RayClusterResource keeps its connection): the same namespace.
    ray.init(address=ray_head.address, namespace=ray_namespace, log_to_driver=False, ignore_reinit_error=True)
    try:
        actors = [council_runner(i) for i in range(COUNCIL_RUNNERS)] + [agent_caller(i) for i in range(AGENT_CALLERS)]
        workers = {place.worker_id for place in ray.get([actor.where.remote() for actor in actors])}
    finally:
        ray.shutdown()

    def exported() -> Samples | None:
        after = scrape(ray_head, workers, keep_as=ARTIFACTS / "metrics-scrape.txt")
        finished = total(after, "ray_fleet_deliberations_finished_total", status="COMPLETED")
        made = total(after, "ray_fleet_agent_calls_total")
        queued = total(after, "ray_fleet_queue_wait_seconds_count")
        return after if finished >= 1 and made >= calls and queued >= calls else None

    after = wait_until(exported, EXPORT_WAIT_S, "the deliberation in the metrics", poll_s=2)

    assert total(after, "ray_fleet_deliberations_started_total") == 1
    assert total(after, "ray_fleet_deliberations_finished_total", status="COMPLETED") == 1
    assert total(after, "ray_fleet_agent_calls_total") == calls
    assert total(after, "ray_fleet_agent_calls_total", outcome="ok") == calls
    calls_by_phase = by_label(after, "ray_fleet_agent_calls_total", "role", "phase")
    assert calls_by_phase == {(role, phase): 2 for role in ("DEV", "QA") for phase in ("propose", "review", "revise")}
    assert total(after, "ray_fleet_agent_call_latency_seconds_count") == calls
    tokens = total(after, "ray_fleet_prompt_tokens_total", model=model) + total(
        after, "ray_fleet_completion_tokens_total", model=model
    )
    assert tokens == metadata["total_tokens"] > 0
    assert metadata["estimated_cost"] > 0
    assert total(after, "ray_fleet_estimated_cost_total", model=model) == pytest.approx(
        metadata["estimated_cost"], rel=1e-6
    )
    assert metadata["cost"]["by_model"] == {model: pytest.approx(metadata["estimated_cost"])}

    endpoint = display_url(server.base_url)
    assert total(after, "ray_fleet_queue_wait_seconds_count", endpoint=endpoint) == calls
    assert total(after, "ray_fleet_circuit_state", endpoint=endpoint) == 0  # closed
    assert ("ray_fleet_calls_in_flight", frozenset({("endpoint", endpoint)})) in after

    # The same deliberation's trace, on every model call and in the status document.
    sent = server.traceparents["metrics-1"]
    assert len(sent) == calls and {trace_id(tp) for tp in sent} == {trace_id(TRACEPARENT)}
    assert document["traceparent"] == TRACEPARENT and metadata["traceparent"] == TRACEPARENT
