"""A real two-node Ray cluster on one machine: a council runner's process is killed mid-deliberation."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
import ray
from ray.actor import ActorHandle
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from fleet_dagster.core.request import DeliberationRequest, parse_request
from fleet_dagster.core.status import DeliberationStatus, final_status
from fleet_dagster.llm.endpoint import LLMEndpoint
from fleet_dagster.ray_cluster.actors import (
    AGENT_CALLERS,
    COUNCIL_RUNNERS,
    ActorPlace,
    agent_caller,
    council_runner,
    ledger_index,
    runner_index,
)
from fleet_dagster.ray_cluster.council_client import CouncilClient, CouncilResults
from fleet_dagster.ray_cluster.ledger_store import load_charges
from fleet_dagster.ray_cluster.local_head import ensure_local_head, ray_temp_dir, stop_local_head, stop_session
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

TASK = "Design a rate limiter for the public REST API"
SHAPE = {"task": TASK, "roles": ["DEV", "QA"], "agents_per_role": 3, "rounds": 1}


class KilledMidReview(NamedTuple):
    client: CouncilClient
    waiting: CouncilResults
    runner: ActorHandle
    victim: ActorPlace
    finished_before_kill: int


@ray.remote(num_cpus=0)
def _node_of() -> str:
    return ray.get_runtime_context().get_node_id()


@pytest.fixture
def two_node_cluster(fleet_home: Path, tmp_path: Path, ray_namespace: str) -> Iterator[str]:
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
        ray.init(address=head.address, namespace=ray_namespace, log_to_driver=False)
        wait_until(lambda: sum(n["Alive"] for n in ray.nodes()) >= 2, 60, "the second node", poll_s=0.2)
        # Alive is not yet schedulable: a soft placement on a node still joining lands on the head.
        for node_id in [n["NodeID"] for n in ray.nodes() if n["Alive"]]:
            pinned = NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)
            assert ray.get(_node_of.options(scheduling_strategy=pinned).remote(), timeout=60) == node_id
        yield head.address
    finally:
        ray.shutdown()
        stop_session(node.pid)
        stop_local_head(state_dir)


def kill_dev_runner_mid_review(request: DeliberationRequest, endpoint: LLMEndpoint, server) -> KilledMidReview:
    """Starts the deliberation and kills the process of DEV's runner once DEV's proposals are in."""
    client = CouncilClient(request.deliberation_id, owner="failover-test")
    assert not client.start(request, request.roles, time.time() + 120, endpoint, 30)
    runner = council_runner(runner_index(request.deliberation_id, "DEV"))
    victim = ray.get(runner.where.remote())
    wait_until(lambda: client.progress().get("DEV", {}).get("phase", "").startswith("review"), 30, "DEV's reviews")
    finished_before_kill = len(server.answered)
    os.kill(victim.pid, signal.SIGKILL)
    return KilledMidReview(client, client.results(request.roles), runner, victim, finished_before_kill)


def test_runners_and_callers_take_the_nodes_in_turn(two_node_cluster):
    nodes = sorted(node["NodeID"] for node in ray.nodes() if node["Alive"])
    runners = ray.get([council_runner(i).where.remote() for i in range(COUNCIL_RUNNERS)])
    callers = ray.get([agent_caller(i).where.remote() for i in range(AGENT_CALLERS)])
    # The i-th of each on the i-th node: one node's loss takes one runner and one caller, never all of them.
    assert [place.node_id for place in runners] == [nodes[i % len(nodes)] for i in range(COUNCIL_RUNNERS)]
    assert [place.node_id for place in callers] == [nodes[i % len(nodes)] for i in range(AGENT_CALLERS)]


def test_a_killed_runner_loses_no_deliberation_and_no_finished_call_is_sent_twice(two_node_cluster, sim_llm_factory):
    server = sim_llm_factory(latency_s=0.4, capacity=64)
    endpoint = LLMEndpoint(base_url=server.base_url)
    request = parse_request({**SHAPE, "deliberation_id": "failover-1"})
    client, waiting, runner, victim, finished_before_kill = kill_dev_runner_mid_review(request, endpoint, server)
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


@pytest.mark.parametrize("ledger_on_victim", [True, False], ids=["ledger-on-killed-runner", "ledger-on-other-runner"])
def test_a_killed_runner_neither_forgets_the_token_budget_nor_charges_a_call_twice(
    two_node_cluster, sim_llm_factory, ledger_on_victim
):
    # Every answer is max_tokens long: each call costs all that was held for it.
    server = sim_llm_factory(latency_s=0.4, capacity=64, output_tokens=100_000)
    endpoint = LLMEndpoint(base_url=server.base_url)
    reference = parse_request({**SHAPE, "deliberation_id": "budget-reference"})
    reference_client = CouncilClient(reference.deliberation_id, owner="budget-reference")
    assert not reference_client.start(reference, reference.roles, time.time() + 120, endpoint, 30)
    usage = sum(call.tokens for council in reference_client.collect(reference.roles) for call in council.calls)
    budget = int(1.2 * usage)  # what such a deliberation uses, and then some: enough when no call is charged twice
    deliberation_id = next(
        f"budget-failover-{n}"
        for n in range(100)
        if (ledger_index(f"budget-failover-{n}") == runner_index(f"budget-failover-{n}", "DEV")) == ledger_on_victim
    )
    request = parse_request({**SHAPE, "deliberation_id": deliberation_id, "max_total_tokens": budget})
    client, waiting, _, _, _ = kill_dev_runner_mid_review(request, endpoint, server)
    outcomes = waiting.wait_all()
    charges = load_charges(deliberation_id)  # the ledger as its runner keeps it, before release drops it
    client.release(timeout_s=30)

    assert "DEV" in waiting.restarted
    councils = [outcomes[role] for role in request.roles]
    assert final_status(request.roles, councils) is DeliberationStatus.COMPLETED  # no false PARTIAL
    calls = [call for council in councils for call in council.calls]
    recorded = sum(call.tokens for call in calls)
    assert all(charge.settled for charge in charges.values()) and len(charges) == len(calls)
    # Each call charged once, the answered ones replayed included, whichever runner died.
    assert sum(charge.tokens for charge in charges.values()) == recorded <= budget
