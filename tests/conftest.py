"""Shared fixtures: a real local Ray head for the session, a Dagster instance, the simulated LLM server."""

import os
import signal
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from fleet_dagster.llm.settings import LLM_ENV
from fleet_dagster.nats_bridge.local_server import LocalNatsServer
from fleet_dagster.nats_bridge.settings import NATS_ENV
from fleet_dagster.ray_cluster.local_head import LocalHead, ensure_local_head, stop_local_head
from fleet_dagster.sim_llm.server import SimLLMServer, SimSettings
from tests.helm_chart import helm_binary
from tests.postgres_server import LocalPostgres, PostgresNotInstalled
from tests.ray_namespaces import RAY_NAMESPACE_ENV, stop_namespace_actors


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    # A CI timeout sends SIGTERM: turn it into an interrupt so fixtures still stop Ray, NATS and servers.
    signal.signal(signal.SIGTERM, _interrupt)
    # Started as a background job (CI), the process ignores SIGINT, and after each run it executes in the main
    # thread Dagster gives SIGTERM SIGINT's disposition: later runs' compute-log `tail` processes would ignore
    # SIGTERM and outlive the suite (tests/unit/test_suite_signals.py).
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def fleet_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("fleet_home")
    previous = os.environ.get("FLEET_HOME")
    os.environ["FLEET_HOME"] = str(home)
    os.environ.pop("RAY_ADDRESS", None)
    yield home
    if previous is None:
        os.environ.pop("FLEET_HOME", None)
    else:
        os.environ["FLEET_HOME"] = previous


@pytest.fixture(scope="session")
def ray_head(fleet_home: Path) -> Iterator[LocalHead]:
    """One real local Ray head for the whole session, stopped by PID (its own session) at the end."""
    head = ensure_local_head(fleet_home / "ray", num_cpus=2)
    try:
        yield head
    finally:
        import ray

        ray.shutdown()
        stop_local_head(fleet_home / "ray")


@pytest.fixture(autouse=True)
def ray_namespace(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Each test's councils in a Ray namespace of their own (FLEET_RAY_NAMESPACE, which the run workers and CLI
    processes it starts inherit): no runner, caller, engine or token ledger of one test is found by the next,
    and the test's actors are stopped when it ends."""
    namespace = f"test-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv(RAY_NAMESPACE_ENV, namespace)
    yield namespace
    if "ray_head" in request.fixturenames:
        stop_namespace_actors(request.getfixturevalue("ray_head"), namespace)
    elif (ray := sys.modules.get("ray")) is not None and ray.is_initialized():
        ray.shutdown()  # whatever connected, the next test connects to its own namespace


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPostgres]:
    """One real PostgreSQL server for the session, as production's Dagster storage runs on one; stopped by PID
    at the end. Missing binaries fail the tests that need it: they are never skipped."""
    server = LocalPostgres(tmp_path_factory.mktemp("postgres") / "data")
    try:
        server.start()
    except PostgresNotInstalled as error:
        pytest.fail(str(error))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def ray_connected(ray_head: LocalHead, ray_namespace: str) -> Iterator[LocalHead]:
    """This process connected to the session's head, in the test's namespace."""
    import ray

    ray.init(address=ray_head.address, namespace=ray_namespace, log_to_driver=False)
    try:
        yield ray_head
    finally:
        ray.shutdown()


@pytest.fixture
def runner(ray_connected: LocalHead):
    """runner(deliberation_id, role="DEV"): the CouncilRunner actor that runs that council, asked directly."""
    from fleet_dagster.ray_cluster.actors import council_runner, runner_index

    return lambda deliberation_id, role="DEV": council_runner(runner_index(deliberation_id, role))


@pytest.fixture
def dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh DAGSTER_HOME, set in the environment as the CLI and `dagster dev` would see it."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@pytest.fixture
def instance(dagster_home: Path) -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.get() as dagster_instance:
        yield dagster_instance


@pytest.fixture
def deploy_llm(monkeypatch):
    """Names a model server in this process's environment, where the deployment's settings come from
    (fleet_dagster/llm/settings.py); run workers started from here inherit it."""

    def deploy(server: SimLLMServer, model: str | None = None) -> None:
        monkeypatch.setenv(LLM_ENV["base_url"], server.base_url)
        if model is not None:
            monkeypatch.setenv(LLM_ENV["model_override"], model)

    return deploy


@pytest.fixture(scope="session")
def helm(tmp_path_factory) -> str:
    return helm_binary(tmp_path_factory.mktemp("helm-download"))


@pytest.fixture
def deploy_nats(monkeypatch):
    """Names a NATS server in this process's environment, where runs and sensors read it (NATS_ENV)."""

    def deploy(url: str) -> None:
        monkeypatch.setenv(NATS_ENV["url"], url)

    return deploy


@pytest.fixture
def nats_server(tmp_path: Path, deploy_nats, ray_head: LocalHead) -> Iterator[LocalNatsServer]:
    """A JetStream server of the test's own, deployed: runs and sensors of this process publish to it."""
    with LocalNatsServer(tmp_path / "jetstream") as server:
        deploy_nats(server.url)
        yield server


@pytest.fixture
def sim_llm_factory():
    servers: list[SimLLMServer] = []

    def start(**settings) -> SimLLMServer:
        server = SimLLMServer(SimSettings(**settings)).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__(None, None, None)
