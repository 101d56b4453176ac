"""Prometheus metrics from where the work happens: the Ray actors record them with `ray.util.metrics`, and each
Ray node's metrics agent serves them (`--metrics-export-port`; KubeRay's `metrics` port), every name
prefixed `ray_`. No label names a deliberation or an agent: a label per id would grow without bound.

Ray exports what an actor recorded every few seconds (about 10 s by default), and estimates a histogram's
sum from its buckets' midpoints: count and buckets are exact, the sum is close.
"""

import functools
from collections.abc import Mapping

from ray.util import metrics

from fleet_dagster.core.cost import ModelPrice, call_cost
from fleet_dagster.core.records import AgentCall
from fleet_dagster.llm.guarded_calls import EndpointState

RAY_PREFIX = "ray_"
LATENCY_BOUNDARIES_S = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]
TTFT_BOUNDARIES_S = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
QUEUE_BOUNDARIES_S = [0.001, 0.01, 0.1, 0.5, 1, 5, 10, 30, 60, 300]
CIRCUIT_STATE_VALUES = {"closed": 0, "half-open": 1, "open": 2}


class _FleetMetrics:
    """One set per actor process: Ray metrics are process-wide and keyed by name."""

    def __init__(self) -> None:
        call_tags = ("role", "phase", "model")
        self.deliberations_started = metrics.Counter(
            "fleet_deliberations_started", description="Deliberations whose first council started."
        )
        self.deliberations_finished = metrics.Counter(
            "fleet_deliberations_finished",
            description="Deliberations collected, by final status.",
            tag_keys=("status",),
        )
        self.agent_calls = metrics.Counter(
            "fleet_agent_calls",
            description="Agent calls recorded by councils; outcome: ok, failed, replayed (from the response store).",
            tag_keys=(*call_tags, "outcome"),
        )
        self.call_latency = metrics.Histogram(
            "fleet_agent_call_latency_seconds",
            description="Agent call latency, sent to answered (calls made, not replayed).",
            boundaries=LATENCY_BOUNDARIES_S,
            tag_keys=call_tags,
        )
        self.call_ttft = metrics.Histogram(
            "fleet_agent_call_ttft_seconds",
            description="Time to the first streamed token (streaming endpoints).",
            boundaries=TTFT_BOUNDARIES_S,
            tag_keys=("model",),
        )
        self.prompt_tokens = metrics.Counter(
            "fleet_prompt_tokens", description="Prompt tokens of calls made.", tag_keys=("model",)
        )
        self.completion_tokens = metrics.Counter(
            "fleet_completion_tokens", description="Completion tokens of calls made.", tag_keys=("model",)
        )
        self.executions = metrics.Counter(
            "fleet_executions",
            description="Code runs in the sandbox (a code task's solutions against tests), by verdict.",
            tag_keys=("verdict",),
        )
        self.execution_seconds = metrics.Histogram(
            "fleet_execution_seconds",
            description="Code run duration in the sandbox, started to verdict.",
            boundaries=LATENCY_BOUNDARIES_S,
            tag_keys=("verdict",),
        )
        self.estimated_cost = metrics.Counter(
            "fleet_estimated_cost",
            description="Estimated cost of calls made, at the deployment's per-model prices.",
            tag_keys=("model",),
        )
        self.in_flight = metrics.Gauge(
            "fleet_calls_in_flight",
            description="Calls in flight to the endpoint (this caller).",
            tag_keys=("endpoint",),
        )
        self.waiting = metrics.Gauge(
            "fleet_calls_waiting", description="Calls waiting for a slot at the endpoint.", tag_keys=("endpoint",)
        )
        self.queue_wait = metrics.Histogram(
            "fleet_queue_wait_seconds",
            description="Time a call waited for a slot at the endpoint before it was sent.",
            boundaries=QUEUE_BOUNDARIES_S,
            tag_keys=("endpoint",),
        )
        self.circuit_state = metrics.Gauge(
            "fleet_circuit_state",
            description="The endpoint's circuit: 0 closed, 1 half-open, 2 open.",
            tag_keys=("endpoint",),
        )
        self.store_hits = metrics.Counter(
            "fleet_response_store_hits",
            description="Calls answered from the response store, no model call made.",
            tag_keys=("endpoint",),
        )


@functools.cache
def fleet_metrics() -> _FleetMetrics:
    return _FleetMetrics()


# Counters gain `_total`, histograms `_bucket`, `_sum` and `_count` in the exposition format.
EXPORTED_METRIC_NAMES = tuple(
    RAY_PREFIX + name
    for name in (
        "fleet_deliberations_started_total",
        "fleet_deliberations_finished_total",
        "fleet_agent_calls_total",
        "fleet_agent_call_latency_seconds",
        "fleet_agent_call_ttft_seconds",
        "fleet_prompt_tokens_total",
        "fleet_completion_tokens_total",
        "fleet_estimated_cost_total",
        "fleet_calls_in_flight",
        "fleet_calls_waiting",
        "fleet_queue_wait_seconds",
        "fleet_circuit_state",
        "fleet_response_store_hits_total",
    )
)


def record_call(call: AgentCall, prices: Mapping[str, ModelPrice]) -> None:
    """A council's call, once recorded (see Council.on_call)."""
    recorded = fleet_metrics()
    model = call.model or "unknown"
    outcome = "replayed" if call.replayed else "ok" if call.ok else "failed"
    tags = {"role": call.role, "phase": call.phase, "model": model}
    recorded.agent_calls.inc(1.0, tags={**tags, "outcome": outcome})
    if call.replayed or call.latency_ms <= 0:
        return  # no model call was made (answered from the store, or never sent)
    recorded.call_latency.observe(call.latency_ms / 1000, tags=tags)
    if call.first_token_ms is not None:
        recorded.call_ttft.observe(call.first_token_ms / 1000, tags={"model": model})
    prompt_tokens = call.tokens - call.completion_tokens
    if prompt_tokens:
        recorded.prompt_tokens.inc(prompt_tokens, tags={"model": model})
    if call.completion_tokens:
        recorded.completion_tokens.inc(call.completion_tokens, tags={"model": model})
    if (price := prices.get(call.model)) is not None and call.tokens:
        recorded.estimated_cost.inc(call_cost(price, prompt_tokens, call.completion_tokens), tags={"model": model})


def record_execution(verdict: str, duration_ms: float) -> None:
    """A code run in the sandbox, once it has its verdict."""
    recorded = fleet_metrics()
    recorded.executions.inc(1.0, tags={"verdict": verdict})
    recorded.execution_seconds.observe(duration_ms / 1000, tags={"verdict": verdict})


def record_endpoint_call(endpoint: str, queue_ms: float, replayed: bool) -> None:
    """An agent caller's call to `endpoint` (its display URL), once answered."""
    recorded = fleet_metrics()
    if replayed:
        recorded.store_hits.inc(1.0, tags={"endpoint": endpoint})
    else:
        recorded.queue_wait.observe(queue_ms / 1000, tags={"endpoint": endpoint})


def record_endpoint_states(states: Mapping[str, EndpointState]) -> None:
    recorded = fleet_metrics()
    for endpoint, state in states.items():
        tags = {"endpoint": endpoint}
        recorded.in_flight.set(state.in_flight, tags=tags)
        recorded.waiting.set(state.waiting, tags=tags)
        recorded.circuit_state.set(CIRCUIT_STATE_VALUES[state.circuit], tags=tags)


def record_deliberation_started() -> None:
    fleet_metrics().deliberations_started.inc(1.0)


def record_deliberation_finished(status: str) -> None:
    fleet_metrics().deliberations_finished.inc(1.0, tags={"status": status})
