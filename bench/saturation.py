"""P2: many deliberations queued at once against an engine of capacity C: how busy does fleet keep it?

Starts N deliberations at the same moment on the cluster's CouncilRunner (what N concurrent Dagster
runs' council ops do) against the simulated vLLM with C sequence slots, and prints the engine's mean
busy slots / C between its first request and the last answer. Target >= 0.9.

    python bench/saturation.py [--deliberations 50] [--capacity 16]
"""

import argparse
import os
import tempfile
import time
from pathlib import Path


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliberations", type=int, default=50)
    parser.add_argument("--capacity", type=int, default=16)
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--roles", type=int, default=2)
    parser.add_argument("--latency", type=float, default=0.2, help="time to first token, s")
    parser.add_argument("--per-token", type=float, default=0.01)
    parser.add_argument("--output-tokens", type=int, default=50)
    parser.add_argument(
        "--max-in-flight", type=int, default=None, help="the bound on calls in flight (default: for C, as deployed)"
    )
    args = parser.parse_args()

    os.environ.setdefault("FLEET_HOME", tempfile.mkdtemp(prefix="fleet-saturation-"))
    import ray

    from fleet_dagster.core.request import parse_request
    from fleet_dagster.llm.endpoint import LLMEndpoint, max_in_flight_for
    from fleet_dagster.ray_cluster.cluster_settings import DEFAULT_NAMESPACE
    from fleet_dagster.ray_cluster.council_client import CouncilClient
    from fleet_dagster.ray_cluster.local_head import ensure_local_head, stop_local_head
    from fleet_dagster.sim_llm.server import SimLLMServer, SimSettings

    state_dir = Path(os.environ["FLEET_HOME"]) / "ray"
    head = ensure_local_head(state_dir)
    ray.init(address=head.address, namespace=DEFAULT_NAMESPACE, log_to_driver=False)
    roles = ["DEV", "QA", "ARCHITECT", "DEVOPS", "DATA"][: args.roles]
    settings = SimSettings(
        latency_s=args.latency, per_token_s=args.per_token, capacity=args.capacity, output_tokens=args.output_tokens
    )
    try:
        with SimLLMServer(settings) as server:
            bound = args.max_in_flight or max_in_flight_for(args.capacity)
            endpoint = LLMEndpoint(base_url=server.base_url, max_tokens_cap=args.output_tokens, max_in_flight=bound)

            def run_batch(count: int, tag: str) -> tuple[float, list[float]]:
                requests = [
                    parse_request(
                        {
                            "task": "Design a cache",
                            "roles": roles,
                            "agents_per_role": args.agents,
                            "rounds": 1,
                            "deliberation_id": f"sat-{tag}-{i}",
                        }
                    )
                    for i in range(count)
                ]
                started = time.perf_counter()
                deadline_at = time.time() + 900
                clients = [CouncilClient(r.deliberation_id, owner=r.deliberation_id) for r in requests]
                for client, request in zip(clients, requests, strict=True):
                    assert not client.start(request, roles, deadline_at, endpoint, 120)
                results = [council for client in clients for council in client.collect(roles)]
                assert len(results) == len(requests) * len(roles)
                assert all(call.ok for council in results for call in council.calls)
                waits = [call.queue_ms for council in results for call in council.calls]
                return time.perf_counter() - started, waits

            run_batch(2, "warmup")
            server.load.reset()
            server.peak_in_flight = 0
            wall_s, waits = run_batch(args.deliberations, "run")
            utilization = server.load.utilization()
            peak = server.peak_in_flight
    finally:
        ray.shutdown()
        stop_local_head(state_dir)

    calls = args.deliberations * len(roles) * args.agents * 3
    service_s = args.latency + args.per_token * args.output_tokens
    print(f"deliberations at once       {args.deliberations} ({len(roles)} roles x {args.agents} agents x 1 round)")
    print(f"agent calls                 {calls}, up to {service_s:.2f} s each on the engine (reviews are shorter)")
    print(f"engine capacity C           {args.capacity} sequences")
    print(f"bound on calls in flight    {bound} (peak seen by the engine: {peak})")
    print(f"queue wait per call         p50 {quantile(waits, 0.5):.0f} ms, p95 {quantile(waits, 0.95):.0f} ms")
    print(f"wall time                   {wall_s:7.2f} s")
    print(f"mean busy slots / C         {utilization:7.3f}   (target >= 0.9)")


if __name__ == "__main__":
    main()
