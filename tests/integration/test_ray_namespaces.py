"""Two fleets (or two tests) on one Ray cluster keep apart by their namespace: their runners, callers and token
ledgers are their own."""

import uuid

import pytest
import ray

from fleet_dagster.ray_cluster.actors import council_runner, ledger_index
from tests.ray_namespaces import stop_namespace_actors
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def test_two_namespaces_share_no_runner_and_no_token_ledger(ray_head, ray_namespace):
    other = f"test-{uuid.uuid4().hex[:12]}"
    runner_of = {}
    try:
        for namespace in (ray_namespace, other):
            ray.init(address=ray_head.address, namespace=namespace, log_to_driver=False)
            try:
                runner = council_runner(ledger_index("shared-id"))
                runner_of[namespace] = ray.get(runner.where.remote()).pid
                # The same deliberation id, a budget of 100: each namespace's ledger has all of it.
                assert ray.get(runner.reserve_tokens.remote("shared-id", 100, f"call-{namespace}", 80))
            finally:
                ray.shutdown()
        assert runner_of[ray_namespace] != runner_of[other]

        # The first namespace's runner, restarted empty, reads its ledger back from its own keys only.
        ray.init(address=ray_head.address, namespace=ray_namespace, log_to_driver=False)
        try:
            runner = council_runner(ledger_index("shared-id"))
            ray.kill(runner, no_restart=False)

            def restarted() -> bool:
                try:
                    return ray.get(runner.where.remote(), timeout=10).pid != runner_of[ray_namespace]
                except ray.exceptions.RayError:  # asked while it was dying
                    return False

            wait_until(restarted, 60, "the runner's restart", poll_s=0.5)
            assert not ray.get(runner.reserve_tokens.remote("shared-id", 100, "one-more", 30), timeout=60)
            # Its own 80 were read back, not the other namespace's too: 20 more still fit.
            assert ray.get(runner.reserve_tokens.remote("shared-id", 100, "fits", 20), timeout=60)
        finally:
            ray.shutdown()
    finally:
        stop_namespace_actors(ray_head, other)
