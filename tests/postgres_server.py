"""A real PostgreSQL server for tests and benches, as production's Dagster storage runs on one.

Debian's `postgresql` package (`apt-get install postgresql`); its server runs as a child process in a
session of its own on a free port of 127.0.0.1 (TCP only, trust authentication, user `dagster`), and is
stopped by PID on exit. PostgreSQL refuses to run as root: as root, initdb and the server run as the
`postgres` user.
"""

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg2
import yaml
from psycopg2 import sql

from fleet_dagster.local_ports import free_port
from fleet_dagster.ray_cluster.local_head import stop_session
from tests.waiting import wait_until

USER = "dagster"
DEFAULT_DATABASE = "dagster"
INSTALL_HINT = "install PostgreSQL: `apt-get install postgresql` (`make test` does it)"


class PostgresNotInstalled(FileNotFoundError):
    pass


def postgres_bin_dir() -> Path:
    """Where initdb and postgres are: `pg_config --bindir`, else the newest /usr/lib/postgresql/*/bin, else PATH.
    (Debian's pg_config also comes with libpq-dev alone, naming a folder without a server in it.)"""
    candidates: list[Path] = []
    if pg_config := shutil.which("pg_config"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True)
            candidates.append(Path(done.stdout.strip()))
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        versions = [d for d in debian.iterdir() if d.name.isdigit()]
        candidates += [d / "bin" for d in sorted(versions, key=lambda d: int(d.name), reverse=True)]
    if initdb := shutil.which("initdb"):
        candidates.append(Path(initdb).parent)
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "postgres").is_file():
            return candidate
    raise PostgresNotInstalled(f"PostgreSQL's initdb and postgres were not found: {INSTALL_HINT}")


def dagster_storage_yaml(url: str) -> str:
    """The `storage:` block of a dagster.yaml that keeps runs, events and schedules in the database at `url`.

    The driver is named: SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3, while dagster-postgres installs
    psycopg2 (a bare URL fails with "No module named 'psycopg'")."""
    scheme, rest = url.split("://", 1)
    if scheme in ("postgresql", "postgres"):
        url = f"postgresql+psycopg2://{rest}"
    return yaml.safe_dump({"storage": {"postgres": {"postgres_url": url}}}, sort_keys=False)


class LocalPostgres:
    """Starts on enter (or `start()`): initdb into `data_dir` unless a cluster is there already, then the
    server; stops it by PID on exit (SIGINT, PostgreSQL's fast shutdown; SIGKILL after a grace period).

    As root the server runs as `postgres`, which cannot enter the 0700 folders that pytest and mkdtemp make:
    when `data_dir` is out of its reach, the cluster lives in a folder of its own under the temp dir instead,
    removed on exit (`self.cluster_dir` says where it is)."""

    def __init__(self, data_dir: Path, port: int | None = None):
        self.data_dir = data_dir
        self.cluster_dir = data_dir
        self._port = port
        self.process: subprocess.Popen[bytes] | None = None
        self._private_dir: Path | None = None
        self._as: dict[str, Any] = {}

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("LocalPostgres is not started")
        return self._port

    @property
    def url(self) -> str:
        """The `dagster` database, created on start."""
        return self.database_url(DEFAULT_DATABASE)

    def database_url(self, name: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{name}"

    def start(self, timeout_s: float = 60.0) -> "LocalPostgres":
        bin_dir = postgres_bin_dir()
        self._port = self._port or free_port()
        try:
            self._prepare_cluster_dir()
            if not (self.cluster_dir / "PG_VERSION").exists():
                self._run(
                    [
                        str(bin_dir / "initdb"),
                        "-D",
                        str(self.cluster_dir),
                        "-A",
                        "trust",
                        "-U",
                        USER,
                        "-E",
                        "UTF8",
                        "--locale=C",
                        "--no-sync",
                    ]
                )
            command = [
                str(bin_dir / "postgres"),
                "-D",
                str(self.cluster_dir),
                "-p",
                str(self._port),
                "-c",
                "listen_addresses=127.0.0.1",
                # TCP only: no socket file, whose path must stay under 108 bytes.
                "-c",
                "unix_socket_directories=",
                # A test server: what a crash would lose does not matter, the disk time on a shared machine does.
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ]
            with open(self.cluster_dir / "postgres.log", "ab") as log:
                self.process = subprocess.Popen(
                    command,
                    cwd=self.cluster_dir,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    **self._as,
                )
            self._wait_until_ready(timeout_s)
            self.create_database(DEFAULT_DATABASE, exist_ok=True)
        except BaseException:
            self.stop()
            raise
        return self

    def create_database(self, name: str, exist_ok: bool = False) -> str:
        """A new, empty database (or the one of that name with `exist_ok`); returns its URL."""
        with contextlib.closing(self._connect("postgres")) as connection:
            connection.autocommit = True  # CREATE DATABASE cannot run in a transaction
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if not (exist_ok and cursor.fetchone()):
                    cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.database_url(name)

    def stop(self, grace_s: float = 10.0) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGINT)  # fast shutdown: clients are disconnected
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(timeout=grace_s)
            # Whatever is left of its session (backends of a server that did not stop in time): SIGTERM, SIGKILL.
            stop_session(self.process.pid, grace_s=5)
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self.process = None
        if self._private_dir is not None:
            shutil.rmtree(self._private_dir, ignore_errors=True)
            self._private_dir = None

    def log(self) -> str:
        path = self.cluster_dir / "postgres.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def __enter__(self) -> "LocalPostgres":
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def _prepare_cluster_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            return
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresNotInstalled(
                f"running as root needs the `postgres` user to run the server: {INSTALL_HINT}"
            ) from None
        self._as = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
        os.chown(self.data_dir, owner.pw_uid, owner.pw_gid)
        self.data_dir.chmod(0o700)
        if subprocess.run(["test", "-w", str(self.data_dir)], **self._as).returncode != 0:
            self._private_dir = Path(tempfile.mkdtemp(prefix="fleet-postgres-"))
            os.chown(self._private_dir, owner.pw_uid, owner.pw_gid)
            self.cluster_dir = self._private_dir / "data"

    def _run(self, command: list[str]) -> None:
        done = subprocess.run(command, cwd="/", capture_output=True, text=True, **self._as)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")

    def _connect(self, database: str) -> Any:
        return psycopg2.connect(host="127.0.0.1", port=self.port, user=USER, dbname=database, connect_timeout=5)

    def _wait_until_ready(self, timeout_s: float) -> None:
        """The port opens before recovery is done ("the database system is starting up"): wait for a session."""
        process = self.process
        assert process is not None

        def session() -> bool:
            try:
                self._connect("postgres").close()
                return True
            except psycopg2.OperationalError as error:
                if process.poll() is not None:
                    raise RuntimeError(f"PostgreSQL exited on port {self.port}: {error}\n{self.log()}") from None
                return False

        wait_until(session, timeout_s, f"a PostgreSQL session on port {self.port}", detail=self.log)
