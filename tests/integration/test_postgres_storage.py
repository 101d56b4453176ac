"""The local PostgreSQL server the tests run Dagster on: a real server, Dagster's storage in it, stopped by PID."""

import contextlib
import time
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
import yaml
from dagster_postgres import PostgresRunStorage

from fleet_dagster.local_ports import port_open
from tests.postgres_server import LocalPostgres, dagster_storage_yaml

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_the_server_stops_by_pid_even_with_a_client_connected(tmp_path: Path):
    with LocalPostgres(tmp_path / "pg") as server:
        assert server.process is not None
        pid, port, cluster_dir = server.process.pid, server.port, server.cluster_dir
        assert port_open(f"127.0.0.1:{port}")
        # An open session would hold up a smart shutdown (SIGTERM) for good; a fast one (SIGINT) ends it.
        client = psycopg2.connect(server.url)
        started = time.monotonic()
    stopped_in = time.monotonic() - started
    with contextlib.suppress(psycopg2.Error):
        client.close()
    assert not port_open(f"127.0.0.1:{port}")
    assert not Path(f"/proc/{pid}").exists()
    assert stopped_in < 5, stopped_in
    # As root the cluster may live in a folder of the server's own, removed with it.
    assert cluster_dir == tmp_path / "pg" or not cluster_dir.exists()


def test_a_dagster_instance_keeps_its_runs_in_postgres(postgres: LocalPostgres, tmp_path: Path):
    url = postgres.create_database("instance_test")
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n" + dagster_storage_yaml(url))

    @dg.asset
    def one() -> int:
        return 1

    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        result = dg.materialize([one], instance=instance)
    assert result.success
    with contextlib.closing(psycopg2.connect(url)) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT run_id, status FROM runs")
        assert cursor.fetchall() == [(result.run_id, "SUCCESS")]


def test_the_charts_instance_config_connects_to_postgres(postgres: LocalPostgres, tmp_path: Path, monkeypatch):
    """helm/dagster-instance.yaml's storage, pointed at the local server, as run pods and the daemon read it."""
    postgres.create_database("chart")
    config = yaml.safe_load((ROOT / "helm" / "dagster-instance.yaml").read_text())
    # A K8sRunLauncher needs a cluster (and run monitoring one that resumes runs): storage is what is checked.
    del config["run_launcher"], config["run_monitoring"]
    config["storage"]["postgres"]["postgres_db"].update(hostname="127.0.0.1", port=postgres.port, db_name="chart")
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "unused")  # the server trusts local connections
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert instance.get_runs() == []
    values = yaml.safe_load((ROOT / "helm" / "dagster-values.yaml").read_text())
    assert values["postgresql"]["postgresqlScheme"] == config["storage"]["postgres"]["postgres_db"]["scheme"]
