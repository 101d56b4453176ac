"""A real two-node Ray cluster on one machine: a council runner's process is killed mid-deliberation."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from fleet_dagster.core.request import parse_request
from fleet_dagster.core.status import DeliberationStatus, final_status
from fleet_dagster.llm.endpoint import LLMEndpoint
from fleet_dagster.ray_cluster.actors import (
    AGENT_CALLERS,
    COUNCIL_RUNNERS,
    NAMESPACE,
    agent_caller,
    council_runner,
    runner_index,
)
from fleet_dagster.ray_cluster.council_client import CouncilClient
from fleet_dagster.ray_cluster.local_head import ensure_local_head, ray_temp_dir, stop_local_head, stop_session

pytestmark = pytest.mark.integration


@ray.remote(num_cpus=0)
def _node_of() -> str:
    return ray.get_runtime_context().get_node_id()


@pytest.fixture
def two_node_cluster(fleet_home: Path, tmp_path: Path) -> Iterator[str]:
    """A head and a second node that joins it (`ray start --address`), each in a session of its own."""
    state_dir = tmp_path / "ray"
    ray.shutdown()
    head = ensure_local_head(state_dir, num_cpus=1)
    command = [
        str(Path(sys.executable).with_name("ray")),
        "start",
        f"--address={head.address}",
        "--block",
        "--num-cpus=1",
        "--node-ip-address=127.0.0.1",
        "--disable-usage-stats",
        f"--temp-dir={ray_temp_dir(state_dir)}",
    ]
    with open(tmp_path / "second-node.log", "wb") as log:
        node = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "RAY_AUTH_MODE": "disabled"},
            start_new_session=True,
        )
    try:
        ray.init(address=head.address, namespace=NAMESPACE, log_to_driver=False)
        deadline = time.monotonic() + 60
        while sum(n["Alive"] for n in ray.nodes()) < 2:
            assert time.monotonic() < deadline, (tmp_path / "second-node.log").read_text()
            time.sleep(0.2)
        # Alive is not yet schedulable: a soft placement on a node still joining lands on the head.
        for node_id in [n["NodeID"] for n in ray.nodes() if n["Alive"]]:
            pinned = NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)
            assert ray.get(_node_of.options(scheduling_strategy=pinned).remote(), timeout=60) == node_id
        yield head.address
    finally:
        ray.shutdown()
        stop_session(node.pid)
        stop_local_head(state_dir)


def test_a_killed_runner_loses_no_deliberation_and_no_finished_call_is_sent_twice(two_node_cluster, sim_llm_factory):
    server = sim_llm_factory(latency_s=0.4, capacity=64)
    endpoint = LLMEndpoint(base_url=server.base_url)
    request = parse_request(
        {
            "task": "Design a rate limiter for the public REST API",
            "roles": ["DEV", "QA"],
            "agents_per_role": 3,
            "rounds": 1,
            "deliberation_id": "failover-1",
        }
    )
    client = CouncilClient(request.deliberation_id, owner="failover-test")
    assert not client.start(request, request.roles, time.time() + 120, endpoint, 30)
    runner = council_runner(runner_index(request.deliberation_id, "DEV"))
    victim = ray.get(runner.where.remote())

    # Mid-deliberation: DEV's proposals are in, its reviews are being made.
    deadline = time.monotonic() + 30
    while not client.progress().get("DEV", {}).get("phase", "").startswith("review"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    finished_before_kill = len(server.answered)
    os.kill(victim.pid, signal.SIGKILL)

    waiting = client.results(request.roles)
    outcomes = waiting.wait_all()
    client.release(timeout_s=30)

    assert "DEV" in waiting.restarted
    councils = [outcomes[role] for role in request.roles]
    assert final_status(request.roles, councils) is DeliberationStatus.COMPLETED
    assert all(council.proposals_done == 3 and council.selection.winner for council in councils)
    dev_calls = outcomes["DEV"].calls
    assert sum(call.replayed for call in dev_calls) >= 3 and all(call.ok for call in dev_calls)
    # Every call of both councils answered exactly once: those finished before the kill were replayed.
    assert finished_before_kill >= 3
    assert len(server.answered) == len(set(server.answered)) == 2 * 9
    assert ray.get(runner.where.remote()).pid != victim.pid

    places = ray.get(
        [council_runner(i).where.remote() for i in range(COUNCIL_RUNNERS)]
        + [agent_caller(i).where.remote() for i in range(AGENT_CALLERS)]
    )
    assert len({place.node_id for place in places}) == 2, places  # spread over both nodes
