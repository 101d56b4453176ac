"""Fleet vs the floor on the embedded model: how much of the gap between one raw stream and an agent call is ours?

The very same calls (same deliberation id, prompts and seeds; the response store off) go to the same
embedded engine four ways: one raw stream alone; the floor (the councils in this process, every call
straight to the engine with asyncio.gather); the councils on Ray without Dagster; and fleet (Dagster +
Ray, as `make deliberate` runs them). Prints wall times, generated tokens per second (per call and in
all) and the ratios.

    python bench/embedded_floor.py [--roles 2] [--agents 2] [--rounds 1]
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

from fleet_vs_floor import bench_request, run_councils_in_process


def generated(councils) -> tuple[int, float]:
    """Completion tokens and the sum of the calls' own durations (s)."""
    calls = [call for council in councils for call in council.calls]
    return sum(call.completion_tokens for call in calls), sum(call.latency_ms for call in calls) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--roles", type=int, default=2, choices=range(1, 6))
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="fleet-embedded-bench-"))
    os.environ.update(FLEET_HOME=str(home), DAGSTER_HOME=str(home / "dagster_home"), FLEET_RESPONSE_STORE="off")
    os.environ.pop("FLEET_LLM_URL", None)  # the embedded engine
    from fleet_dagster.settings import ensure_dagster_home

    ensure_dagster_home()
    import asyncio

    import dagster as dg
    import ray

    from fleet_dagster.cli.run_deliberation import execute_deliberation
    from fleet_dagster.llm.resources import LLMResource
    from fleet_dagster.ray_cluster.cluster_settings import DEFAULT_NAMESPACE
    from fleet_dagster.ray_cluster.deliberate import deliberate_on_ray
    from fleet_dagster.ray_cluster.local_head import ensure_local_head, stop_local_head
    from fleet_dagster.ray_cluster.model_endpoint import model_endpoint

    def request(name: str):
        return bench_request(args, f"embedded-{name}")

    head = ensure_local_head(home / "ray")
    instance = dg.DagsterInstance.get()
    try:
        execute_deliberation(instance, request("warmup"), quiet=True)  # starts the engine and the actors
        ray.init(address=head.address, namespace=DEFAULT_NAMESPACE, log_to_driver=False)
        endpoint = model_endpoint(LLMResource())

        probe = request("same")
        raw = asyncio.run(one_raw_stream(probe, endpoint.model_copy(update={"stream": True})))

        started = time.perf_counter()
        floor = run_councils_in_process(probe, endpoint)
        floor_s = time.perf_counter() - started

        started = time.perf_counter()
        on_ray = deliberate_on_ray(probe, endpoint, call_timeout_s=600)
        ray_s = time.perf_counter() - started
        ray.shutdown()

        started = time.perf_counter()
        document = execute_deliberation(instance, probe, quiet=True)
        fleet_s = time.perf_counter() - started
        assert document["status"] in ("COMPLETED", "PARTIAL"), document

        # Once more, last: the engine keeps the prompts' prefixes it has seen (llama.cpp's slot cache), so
        # the first of the runs above paid for prompt processing the later ones partly skipped.
        started = time.perf_counter()
        floor_again = run_councils_in_process(probe, endpoint)
        floor_again_s = time.perf_counter() - started
    finally:
        ray.shutdown()
        stop_local_head(home / "ray")

    calls = sum(len(council.calls) for council in floor)
    raw_rate = raw.completion_tokens / max(1e-9, (raw.latency_ms - (raw.first_token_ms or 0)) / 1000)
    print(f"shape: {args.roles} roles x {args.agents} agents x {args.rounds} rounds = {calls} calls, embedded engine")
    print(
        f"one raw stream alone        {raw.completion_tokens} tokens, {raw_rate:6.1f} tokens/s while decoding, "
        f"first token after {raw.first_token_ms or 0:.0f} ms"
    )
    for name, councils, wall_s in (
        ("floor (asyncio.gather)", floor, floor_s),
        ("councils on Ray", on_ray, ray_s),
        ("floor again, last", floor_again, floor_again_s),
    ):
        tokens, call_s = generated(councils)
        print(
            f"{name:<27} {wall_s:7.2f} s   {tokens} tokens: {tokens / wall_s:6.1f} tokens/s in all, "
            f"{tokens / call_s:5.1f} per call"
        )
    print(f"fleet (Dagster + Ray)       {fleet_s:7.2f} s   (inside the run: {document['duration_ms'] / 1000:.2f} s)")
    floor_best = min(floor_s, floor_again_s)
    print(f"Ray / floor (best of two)   {ray_s / floor_best:7.3f}")
    print(f"fleet / floor (best of two) {fleet_s / floor_best:7.3f}")


async def one_raw_stream(request, endpoint):
    """The deliberation's first proposal call, alone on the engine, streamed."""
    from fleet_dagster.core.council import agent_seed
    from fleet_dagster.core.profiles import load_profile
    from fleet_dagster.core.prompts import chat_messages
    from fleet_dagster.core.records import ChatRequest
    from fleet_dagster.core.request import agent_id
    from fleet_dagster.llm.openai_chat import OpenAIChatModel

    role = request.roles[0]
    profile, first = load_profile(role), agent_id(role, 0)
    messages = chat_messages(
        profile.system_prompt,
        "propose",
        task=request.task,
        requirements=request.requirements,
        role=role,
        agent_id=first,
        rubric=request.rubric,
    )
    call = ChatRequest(
        deliberation_id=request.deliberation_id,
        agent_id=first,
        role=role,
        phase="propose",
        round=0,
        model=profile.model,
        messages=messages,
        temperature=profile.temperature,
        max_tokens=profile.max_tokens,
        seed=agent_seed(request.deliberation_id, role, 0),
        timeout_s=600,
    )
    return await OpenAIChatModel(endpoint).complete(call)


if __name__ == "__main__":
    main()
