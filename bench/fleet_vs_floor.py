"""Fleet vs the floor vs the sequential path, against an OpenAI-compatible server with a fixed latency.

One run prints: the deliberation through Dagster + Ray (fleet), the same calls with plain
asyncio.gather and no Dagster or Ray (floor), and the same calls one after another (sequential, what
the original synchronous path did), with the ratios fleet/floor and sequential/fleet.

    python bench/fleet_vs_floor.py [--latency 2.0] [--roles 5] [--agents 3] [--rounds 1] [--trace]

--trace prints the fleet run's event log as a timeline (each event's time since the run was asked for,
and since the event before), then the time before, inside and after the councils, per step.
"""

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

ROLES = ["DEV", "QA", "ARCHITECT", "DEVOPS", "DATA"]
TASK = "Design a rate limiter for the public REST API"


class OneAtATime:
    """The same model, but calls wait for each other, as in a synchronous loop."""

    def __init__(self, model):
        self.model = model
        self.lock = asyncio.Lock()

    async def complete(self, request):
        async with self.lock:
            return await self.model.complete(request)


def bench_request(args: argparse.Namespace, deliberation_id: str):
    """The deliberation every benchmark here runs: TASK, with the shape the flags give."""
    from fleet_dagster.core.request import parse_request

    shape = {"roles": ROLES[: args.roles], "agents_per_role": args.agents, "rounds": args.rounds}
    return parse_request({"task": TASK, **shape, "deliberation_id": deliberation_id})


def run_councils_in_process(request, endpoint, one_at_a_time: bool = False) -> list:
    """The same councils, no Dagster and no Ray: every agent call straight to the server. Their results."""
    from fleet_dagster.core.council import council_for, run_council
    from fleet_dagster.llm.openai_chat import OpenAIChatModel

    async def run() -> list:
        model = OpenAIChatModel(endpoint)  # an asyncio client belongs to one loop
        chat = OneAtATime(model) if one_at_a_time else model
        deadline_at = time.time() + request.deadline_s
        councils = [
            council_for(request, role, chat, deadline_at=deadline_at, call_timeout_s=120) for role in request.roles
        ]
        return await asyncio.gather(*(run_council(c) for c in councils))

    results = asyncio.run(run())
    failed = [call.error for council in results for call in council.calls if not call.ok]
    assert not failed and all(council.calls for council in results), f"calls failed: {failed[:3]}"
    return results


def print_trace(instance, run_id: str, asked_at: float, returned_at: float, councils_s: float) -> None:
    """The run's event log as a timeline, then where the time went between its milestones: the run's and
    each step's start and end, and the councils' span as the run measured it (`councils_s`, from the first
    council's start, which the CLI makes before it creates the run, to the collect step's outcome, which it
    outputs at once)."""
    from dagster import DagsterEventType

    entries = instance.all_logs(run_id)
    print(f"\ntimeline of run {run_id} (s since asked, s since the event before)")
    previous = asked_at
    for entry in entries:
        event = entry.dagster_event
        what = event.event_type_value if event else (entry.user_message or "").splitlines()[0][:90]
        print(
            f"  {entry.timestamp - asked_at:7.3f} {entry.timestamp - previous:+7.3f}  {entry.step_key or '':34} {what}"
        )
        previous = entry.timestamp

    def at(event_type: DagsterEventType, step_key: str | None = None) -> float:
        return next(
            e.timestamp for e in entries if e.dagster_event_type == event_type and step_key in (None, e.step_key)
        )

    steps = list(dict.fromkeys(e.step_key for e in entries if e.dagster_event_type == DagsterEventType.STEP_START))
    councils_done = at(DagsterEventType.STEP_OUTPUT, steps[-1])  # the collect step's output
    councils_started = councils_done - councils_s
    milestones = sorted(
        [
            (asked_at, "asked"),
            (at(DagsterEventType.RUN_START), "RUN_START"),
            *((at(DagsterEventType.STEP_START, step), f"{step} starts") for step in steps),
            *((at(DagsterEventType.STEP_SUCCESS, step), f"{step} ends") for step in steps),
            (councils_started, "councils start"),
            (councils_done, "councils done"),
            (at(DagsterEventType.RUN_SUCCESS), "RUN_SUCCESS"),
            (returned_at, "status document returned"),
        ]
    )
    print("\nwhere the time went (s)")
    for (begun, name), (ended, next_name) in zip(milestones, milestones[1:], strict=False):
        print(f"  {ended - begun:6.3f}  {name} -> {next_name}")
    print(
        f"  before the councils {councils_started - asked_at:.3f} s, councils {councils_s:.3f} s, "
        f"after the councils {returned_at - councils_done:.3f} s\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=2.0, help="seconds per call")
    parser.add_argument("--roles", type=int, default=5, choices=range(1, 6))
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--skip-sequential", action="store_true")
    parser.add_argument("--trace", action="store_true", help="the fleet run's timeline, per event and per step")
    args = parser.parse_args()

    os.environ.setdefault("FLEET_HOME", tempfile.mkdtemp(prefix="fleet-bench-"))
    os.environ["DAGSTER_HOME"] = str(Path(os.environ["FLEET_HOME"]) / "dagster_home")
    from fleet_dagster.settings import ensure_dagster_home

    ensure_dagster_home()
    import dagster as dg

    from fleet_dagster.cli.run_deliberation import execute_deliberation
    from fleet_dagster.llm.endpoint import LLMEndpoint
    from fleet_dagster.llm.settings import LLM_ENV
    from fleet_dagster.ray_cluster.local_head import ensure_local_head, stop_local_head
    from fleet_dagster.sim_llm.server import SimLLMServer, SimSettings

    state_dir = Path(os.environ["FLEET_HOME"]) / "ray"
    started_head = time.perf_counter()
    ensure_local_head(state_dir)
    head_s = time.perf_counter() - started_head
    instance = dg.DagsterInstance.get()

    def request(name: str):
        return bench_request(args, f"bench-{name}-{int(time.time())}")

    try:
        with SimLLMServer(SimSettings(latency_s=args.latency)) as server:
            os.environ[LLM_ENV["base_url"]] = server.base_url  # this process is the deployment
            started = time.perf_counter()
            execute_deliberation(instance, request("warmup"), quiet=True)
            cold_s = time.perf_counter() - started

            started, asked_at = time.perf_counter(), time.time()
            document = execute_deliberation(instance, request("fleet"), quiet=True)
            fleet_s = time.perf_counter() - started
            assert document["status"] == "COMPLETED", document
            if args.trace:
                print_trace(instance, document["run_id"], asked_at, asked_at + fleet_s, document["duration_ms"] / 1000)

            endpoint = LLMEndpoint(base_url=server.base_url)
            run_councils_in_process(request("floor-warmup"), endpoint)  # imports, templates
            started = time.perf_counter()
            run_councils_in_process(request("floor"), endpoint)
            floor_s = time.perf_counter() - started

            sequential_s = None
            if not args.skip_sequential:
                started = time.perf_counter()
                run_councils_in_process(request("sequential"), endpoint, one_at_a_time=True)
                sequential_s = time.perf_counter() - started
    finally:
        import ray

        ray.shutdown()
        stop_local_head(state_dir)

    calls = len(document["results"]) * (1 + 2 * args.rounds)
    phases = 1 + 2 * args.rounds
    print(
        f"shape: {args.roles} roles x {args.agents} agents x {args.rounds} rounds = {calls} calls, "
        f"{phases} phases, {args.latency:.2f} s per call"
    )
    print(f"local Ray head start        {head_s:7.2f} s")
    print(f"first run (cold actors)     {cold_s:7.2f} s")
    print(f"ideal (phases x latency)    {phases * args.latency:7.2f} s")
    print(f"floor (asyncio.gather)      {floor_s:7.2f} s")
    print(f"fleet (Dagster + Ray)       {fleet_s:7.2f} s   (councils: {document['duration_ms'] / 1000:.2f} s)")
    if sequential_s is not None:
        print(f"sequential                  {sequential_s:7.2f} s")
    print(f"fleet / floor               {fleet_s / floor_s:7.3f}   (goal <= 1.10)")
    if sequential_s is not None:
        print(f"sequential / fleet          {sequential_s / fleet_s:7.2f}")


if __name__ == "__main__":
    main()
