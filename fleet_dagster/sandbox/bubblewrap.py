"""Runs a job's code in a bubblewrap sandbox on this machine, and reads what came back (results.py judges it).

The sandbox: new user, pid, network (empty: no connection leaves it), ipc, uts and cgroup namespaces, no
further user namespaces, a session of its own, an environment of four variables (nothing of the fleet's,
no credential), the host's /usr read-only (and the /bin, /sbin, /lib, /lib64 links into it), its own /proc
and a read-only /dev, size-limited tmpfs /tmp and /work, and nothing else of the host: no /etc, /home, /root,
repository or virtual environment. The solution, the tests and the harness are copied in from memory (no host
file is shared). As root the fleet starts bubblewrap as an unprivileged user (settings.py says why). The
harness is the sandbox's pid 1 (--as-pid-1): bubblewrap's own init would outlive bubblewrap and stay a zombie
wherever the host's pid 1 does not reap orphans (containers). Inside, then, the model's orphans stay zombies
until the run ends, and a signal the harness's process sends itself without a handler is ignored.

The runner reads the output (its head, up to the output limit: past it the run is stopped) and the harness's
result fd, and stops the run at its wall limit. Stopping kills the sandbox's init by a pidfd (bubblewrap
reaps it; its pid namespace takes every process in it along, double-forked and setsid ones too), and only if
bubblewrap lingers kills its process group: no process of a run outlives it, nor stays a zombie.
"""

import asyncio
import contextlib
import json
import keyword
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from fleet_dagster.core.execution import MAX_FAILURE_CHARS, MAX_REPORTED_TESTS, ExecutionJob, ExecutionResult
from fleet_dagster.sandbox.harness import SCRATCH
from fleet_dagster.sandbox.results import MAX_NAME_CHARS, MAX_REPORT_BYTES, RunEnd, Stopped, judge
from fleet_dagster.sandbox.settings import SandboxSettings

HARNESS_SOURCE = Path(__file__).with_name("harness.py")
HARNESS = "/harness/harness.py"
# Each of /tmp and /work: a tmpfs lives in the host's memory, outside the run's RLIMIT_AS.
SCRATCH_BYTES = 64 * 1024 * 1024
SANDBOX_ENV = {"PATH": "/usr/bin:/bin", "HOME": SCRATCH, "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"}
ROOT_LINKS = ("bin", "sbin", "lib", "lib64")
MAX_MODULE_CHARS = 100
STATUS_BYTES = 65_536
CHUNK_BYTES = 65_536
STOP_GRACE_S = 2.0


@dataclass(frozen=True)
class SandboxFds:
    """The descriptors bubblewrap reads (the files' contents, where to write its status) and the harness's two."""

    config: int
    result: int
    status: int
    solution: int
    tests: int
    harness: int


def bwrap_command(bwrap: str, python: str, module: str, fds: SandboxFds) -> list[str]:
    command = [bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session"]
    command += ["--as-pid-1", "--hostname", "sandbox", "--clearenv"]
    for name, value in SANDBOX_ENV.items():
        command += ["--setenv", name, value]
    command += ["--ro-bind", "/usr", "/usr", *_root_links(), "--proc", "/proc", "--dev", "/dev"]
    for scratch in ("/tmp", SCRATCH):
        command += ["--size", str(SCRATCH_BYTES), "--tmpfs", scratch]
    command += ["--ro-bind-data", str(fds.solution), f"{SCRATCH}/{module}.py"]
    command += ["--ro-bind-data", str(fds.tests), f"{SCRATCH}/test_{module}.py"]
    command += ["--ro-bind-data", str(fds.harness), HARNESS]
    command += ["--remount-ro", "/", "--remount-ro", "/dev", "--json-status-fd", str(fds.status), "--chdir", SCRATCH]
    return [*command, python, "-I", "-S", "-B", HARNESS, str(fds.config), str(fds.result)]


def _root_links() -> list[str]:
    """/bin, /sbin, /lib, /lib64 as the host has them: links into /usr (merged /usr) or directories, or none."""
    args = []
    for name in ROOT_LINKS:
        path = Path("/", name)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    return args


async def run_job(job: ExecutionJob, settings: SandboxSettings) -> ExecutionResult:
    """Runs `job` in a sandbox, in a thread: the event loop never waits on it. Never raises: a sandbox that
    cannot run is a result ("unavailable"), and nothing ever runs unsandboxed."""
    try:
        return await asyncio.to_thread(run_job_blocking, job, settings)
    except Exception as exc:  # noqa: BLE001 - the CodeRunner contract: failures are results
        return _unavailable(f"the sandbox failed: {type(exc).__name__}: {exc}")


def run_job_blocking(job: ExecutionJob, settings: SandboxSettings) -> ExecutionResult:
    started = time.monotonic()
    try:
        result = _run(job, settings)
    except Exception as exc:  # noqa: BLE001 - as run_job
        result = _unavailable(f"the sandbox failed: {type(exc).__name__}: {exc}")
    return result.model_copy(update={"duration_ms": (time.monotonic() - started) * 1000})


def _unavailable(reason: str) -> ExecutionResult:
    return ExecutionResult(verdict="unavailable", reason=reason[:MAX_FAILURE_CHARS])


def _run(job: ExecutionJob, settings: SandboxSettings) -> ExecutionResult:
    bwrap = shutil.which(settings.bwrap)
    if bwrap is None:
        return _unavailable(f"bubblewrap ({settings.bwrap}) is not installed")
    module = job.module
    if not module.isidentifier() or keyword.iskeyword(module) or len(module) > MAX_MODULE_CHARS:
        reason = f"the module name {module[:MAX_MODULE_CHARS]!r} is not a Python identifier"
        return ExecutionResult(verdict="errored", reason=reason)
    nonce = secrets.token_hex(16)
    with _Descriptors() as fds:
        config_read, config_write = fds.pipe()
        os.write(config_write, _harness_config(job, nonce))  # far below a pipe's buffer: it never blocks
        fds.close(config_write)
        result_read, result_write = fds.pipe()
        status_read, status_write = fds.pipe()
        sandbox_fds = SandboxFds(
            config=config_read,
            result=result_write,
            status=status_write,
            solution=fds.memory(job.solution.encode("utf-8", "replace")),
            tests=fds.memory(job.tests.encode("utf-8", "replace")),
            harness=fds.memory(HARNESS_SOURCE.read_bytes()),
        )
        process = subprocess.Popen(
            bwrap_command(bwrap, settings.python, module, sandbox_fds),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(sandbox_fds.config, sandbox_fds.result, sandbox_fds.status, *_data_fds(sandbox_fds)),
            start_new_session=True,
            cwd="/",
            env={},
            **_as_user(settings),
        )
        # Only the sandbox holds the write ends now: their EOF is its end. This thread waits for bubblewrap to
        # the end: --die-with-parent follows the thread that started it, not the process.
        fds.close(config_read, result_write, status_write, *_data_fds(sandbox_fds))
        assert process.stdout is not None
        try:
            return judge(_watch(process, process.stdout.fileno(), result_read, status_read, job, nonce), job.limits)
        finally:
            if process.returncode is None:  # the watch failed: the run must not outlive it
                _stop(process, b"")
            process.stdout.close()


def _harness_config(job: ExecutionJob, nonce: str) -> bytes:
    config = {
        "module": job.module,
        "nonce": nonce,
        "limits": job.limits.model_dump(),
        "max_tests": MAX_REPORTED_TESTS,
        "max_message_chars": MAX_FAILURE_CHARS,
        "max_name_chars": MAX_NAME_CHARS,
    }
    return json.dumps(config).encode()


def _data_fds(fds: SandboxFds) -> tuple[int, int, int]:
    return fds.solution, fds.tests, fds.harness


def _as_user(settings: SandboxSettings) -> dict:
    """Root starts bubblewrap as the sandbox's user (no preexec_fn: the runner lives in threaded workers)."""
    if os.geteuid() != 0:
        return {}
    return {"user": settings.uid, "group": settings.uid, "extra_groups": []}


@dataclass
class _Stream:
    fd: int
    cap: int
    overflow: Stopped | None  # what going past the cap means; None: bubblewrap's own, only cut
    data: bytearray = field(default_factory=bytearray)


def _watch(process: subprocess.Popen, output: int, result: int, status: int, job: ExecutionJob, nonce: str) -> RunEnd:
    streams = [
        _Stream(output, job.limits.output_bytes, "output"),
        _Stream(result, MAX_REPORT_BYTES, "report"),
        _Stream(status, STATUS_BYTES, None),
    ]
    stopped = _pump(streams, deadline=time.monotonic() + job.limits.wall_s)
    cpu_s = 0.0
    if stopped is not None:
        _stop(process, bytes(streams[2].data) + _available(status))
    else:
        _, wait_status, usage = os.wait4(process.pid, 0)  # bubblewrap is exiting: its every pipe is closed
        process.returncode = os.waitstatus_to_exitcode(wait_status)
        cpu_s = usage.ru_utime + usage.ru_stime  # the sandbox's processes', reaped by bubblewrap and its init
    return RunEnd(
        output=bytes(streams[0].data),
        results=bytes(streams[1].data),
        nonce=nonce.encode(),
        exit_status=process.returncode,
        cpu_s=cpu_s,
        stopped=stopped,
    )


def _pump(streams: list[_Stream], deadline: float) -> Stopped | None:
    """Reads every stream to its end, keeping each one's head; why the run must stop, if it must."""
    with selectors.DefaultSelector() as selector:
        for stream in streams:
            selector.register(stream.fd, selectors.EVENT_READ, stream)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "wall"
            for key, _ in selector.select(remaining):
                stream = key.data
                chunk = os.read(stream.fd, CHUNK_BYTES)
                if not chunk:
                    selector.unregister(stream.fd)
                    continue
                room = stream.cap - len(stream.data)
                stream.data += chunk[:room]
                if len(chunk) > room and stream.overflow is not None:
                    return stream.overflow
    return None


def _available(fd: int) -> bytes:
    """What a pipe holds now, without waiting for more."""
    os.set_blocking(fd, False)
    data = b""
    with contextlib.suppress(BlockingIOError):
        while (chunk := os.read(fd, CHUNK_BYTES)) and len(data) < STATUS_BYTES:
            data += chunk
    return data


def _stop(process: subprocess.Popen, status: bytes) -> None:
    init = _sandbox_init(status)
    if init is not None:
        _kill_init(process.pid, init)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(STOP_GRACE_S)
            return
    # No init known, or bubblewrap lingers: its whole process group (its init, orphaned, may stay a zombie).
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _sandbox_init(status: bytes) -> int | None:
    """The host pid of the sandbox's init (its pid namespace's pid 1), from bubblewrap's status."""
    for line in status.splitlines():
        with contextlib.suppress(ValueError):
            pid = json.loads(line).get("child-pid")
            if isinstance(pid, int) and pid > 1:
                return pid
    return None


def _kill_init(bwrap_pid: int, pid: int) -> None:
    """SIGKILL to the sandbox's init through a pidfd, once its parent is seen to be bubblewrap: a pid reused
    since by another process is never signalled."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if _parent(pid) == bwrap_pid:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    finally:
        os.close(pidfd)


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])  # after "pid (comm) state"; comm may hold anything


class _Descriptors:
    """The run's descriptors, each closed once: a number closed twice may by then be another thread's file."""

    def __init__(self) -> None:
        self._open: set[int] = set()

    def __enter__(self) -> "_Descriptors":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close(*self._open)

    def pipe(self) -> tuple[int, int]:
        read, write = os.pipe()
        self._open |= {read, write}
        return read, write

    def memory(self, data: bytes) -> int:
        """A memory file holding `data`, at its start: what bubblewrap copies into the sandbox."""
        fd = os.memfd_create("sandbox-file")
        self._open.add(fd)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.lseek(fd, 0, os.SEEK_SET)
        return fd

    def close(self, *fds: int) -> None:
        for fd in fds:
            if fd in self._open:
                self._open.discard(fd)
                os.close(fd)
