"""Hostile programs against the real bubblewrap sandbox (no mocks): each gets a clear verdict, and the fleet is
unharmed: this process runs on, a host file outside the sandbox is intact, no process of the sandbox's user
is left (nor a zombie), and the sandbox never saw this process's environment."""

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet_dagster.core.execution import ExecutionJob, ExecutionLimits, ExecutionResult
from fleet_dagster.sandbox.bubblewrap import SANDBOX_ENV
from fleet_dagster.sandbox.harness import cpu_seconds
from fleet_dagster.sandbox.runner import BubblewrapRunner
from fleet_dagster.sandbox.settings import SandboxSettings

# As root, sandboxes run as a user of this session's own: other sandboxes on the machine (the default user's)
# are not this session's leftovers. Anyone else runs them as themselves, in user namespaces of their own.
ROOT = os.geteuid() == 0
SANDBOX_UID = 200_000 + os.getpid() % 100_000 if ROOT else os.getuid()
SETTINGS = SandboxSettings(uid=SANDBOX_UID) if ROOT else SandboxSettings()
CANARY = "FLEET_TEST_SECRET"
SHORT_WALL_S = 2.0


def run(tests: str, solution: str = "", settings: SandboxSettings = SETTINGS, **limits: float) -> ExecutionResult:
    job = ExecutionJob(module="solution", solution=solution, tests=tests, limits=ExecutionLimits(**limits))
    return asyncio.run(BubblewrapRunner(settings).run(job))


def sandbox_processes() -> list[str]:
    """This session's sandbox processes, zombies too: as root, any of its user's; else this process's children
    and orphans of its user in another user namespace."""
    ours = os.stat("/proc/self/ns/user").st_ino
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or entry.name == str(os.getpid()):
            continue
        try:
            stat = (entry / "stat").read_text()
            if entry.stat().st_uid != SANDBOX_UID:
                continue
            if not ROOT:
                parent = int(stat.rsplit(")", 1)[1].split()[1])
                orphan = parent == 1 and os.stat(entry / "ns/user").st_ino != ours
                if not orphan and parent != os.getpid():
                    continue
            found.append(stat[:60] + (entry / "cmdline").read_text()[:80])
        except OSError:  # gone meanwhile
            continue
    return found


@pytest.fixture
def host_dir() -> Iterator[Path]:
    """A directory anyone may write, in the host's /tmp: a sandbox that saw it could delete it."""
    path = Path(tempfile.mkdtemp(prefix="fleet-sandbox-host-", dir="/tmp"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def fleet_unharmed(host_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    secret = uuid.uuid4().hex
    monkeypatch.setenv(CANARY, secret)
    sentinel = host_dir / "sentinel"
    sentinel.write_text(secret)
    sentinel.chmod(0o666)
    assert sandbox_processes() == []
    yield sentinel
    assert sentinel.read_text() == secret
    assert sandbox_processes() == []
    assert subprocess.run(["true"], timeout=10).returncode == 0  # the machine still starts processes


ADD_TESTS = """
from solution import add

def test_small():
    assert add(1, 2) == 3

def test_negative():
    assert add(-2, -2) == -4
"""


def test_a_correct_solution_passes():
    result = run(ADD_TESTS, "def add(a, b):\n    return a + b\n")
    assert result.verdict == "passed", result
    assert [(t.name, t.outcome) for t in result.tests] == [("test_small", "passed"), ("test_negative", "passed")]
    assert result.first_failure is None
    assert 0 < result.duration_ms < 10_000


def test_a_wrong_solution_fails_with_its_assertion():
    result = run(ADD_TESTS, "def add(a, b):\n    return a - b\n")
    assert result.verdict == "failed", result
    assert [t.outcome for t in result.tests] == ["failed", "failed"]
    assert result.first_failure is not None
    assert "assert add(1, 2) == 3" in result.first_failure and "AssertionError" in result.first_failure


def test_a_syntax_error_errors():
    result = run(ADD_TESTS, "def add(a, b)\n    return a + b\n")
    assert result.verdict == "errored", result
    assert result.reason == "the solution raised SyntaxError on import"
    assert "SyntaxError" in (result.first_failure or "")


def test_a_test_file_without_tests_errors():
    result = run("def helper():\n    assert False\n")
    assert (result.verdict, result.reason) == ("errored", "no test_* functions")


PYTEST_STYLE_TESTS = """
import pytest
from solution import divide

def test_raises():
    with pytest.raises(ZeroDivisionError, match="division"):
        divide(1, 0)

def test_approx():
    assert divide(1, 3) == pytest.approx(0.3333333)

@pytest.mark.parametrize("a, b, expected", [(6, 3, 2), (9, 3, 3), (1, 1, 5)])
def test_many(a, b, expected):
    assert divide(a, b) == expected
"""


def test_what_tests_most_often_take_from_pytest_is_there():
    """pytest is not in the sandbox: raises, approx, fail and mark.parametrize are the harness's stand-ins."""
    result = run(PYTEST_STYLE_TESTS, "def divide(a, b):\n    return a / b\n")
    assert [(t.name, t.outcome) for t in result.tests] == [
        ("test_raises", "passed"),
        ("test_approx", "passed"),
        ("test_many[0]", "passed"),
        ("test_many[1]", "passed"),
        ("test_many[2]", "failed"),  # 1 / 1 is not 5
    ]
    assert result.verdict == "failed"
    never_raises = run(PYTEST_STYLE_TESTS, "def divide(a, b):\n    return 0\n")
    assert "DID NOT RAISE" in (never_raises.tests[0].message or "")


def test_an_exception_in_a_test_errors_and_a_failed_one_fails():
    tests = "def test_fails():\n    assert 1 == 2\n\ndef test_raises():\n    {}['missing']\n"
    result = run(tests)
    assert result.verdict == "errored", result
    assert [(t.outcome, (t.message or "").splitlines()[-1]) for t in result.tests] == [
        ("failed", "AssertionError"),
        ("errored", "KeyError: 'missing'"),
    ]


def test_an_infinite_loop_times_out_without_blocking_the_event_loop():
    async def both() -> tuple[ExecutionResult, int]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        job = ExecutionJob(module="solution", solution="", tests="def test_forever():\n    while True:\n        pass\n")
        result = await BubblewrapRunner(SETTINGS).run(job.model_copy(update={"limits": ExecutionLimits(wall_s=1)}))
        ticker.cancel()
        return result, ticks

    started = time.monotonic()
    result, ticks = asyncio.run(both())
    assert time.monotonic() - started < 1 + 2
    assert (result.verdict, result.reason) == ("timeout", "wall time limit of 1 s")
    assert ticks > 30  # the loop ran on while the sandbox did


def test_a_fork_bomb_is_contained():
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    started = time.monotonic()
    result = run("def test_never_reached():\n    pass\n", bomb, wall_s=SHORT_WALL_S)
    assert time.monotonic() - started < SHORT_WALL_S + 2
    assert (result.verdict, result.reason) == ("timeout", f"wall time limit of {SHORT_WALL_S:g} s")
    # and the fixture: nothing of it left running, and the machine still starts processes


def test_the_process_limit_holds_inside():
    tests = """
import os, time

def test_forks_are_refused_past_the_limit():
    children, refused = [], 0
    for _ in range(100):
        try:
            pid = os.fork()
        except OSError:
            refused += 1
            continue
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    assert len(children) < 32 and refused > 60, (len(children), refused)
"""
    result = run(tests)
    assert result.verdict == "passed", result


def test_the_limits_are_set_and_cannot_be_raised():
    tests = f"""
import resource

def test_limits():
    assert resource.getrlimit(resource.RLIMIT_AS) == ({128 * 1024 * 1024},) * 2
    assert resource.getrlimit(resource.RLIMIT_CPU) == ({cpu_seconds(3)},) * 2
    assert resource.getrlimit(resource.RLIMIT_NPROC) == (32, 32)
    assert resource.getrlimit(resource.RLIMIT_FSIZE) == (4096, 4096)
    assert resource.getrlimit(resource.RLIMIT_CORE) == (0, 0)
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (64, 64)

def test_raising_one_is_refused():
    try:
        resource.setrlimit(resource.RLIMIT_AS, (2**40, 2**40))
    except ValueError:
        return
    raise AssertionError("raised RLIMIT_AS")

def test_a_big_file_is_refused():
    try:
        with open("/work/big", "wb") as big:
            big.write(b"x" * 5000)
    except OSError as error:
        assert error.errno == 27  # EFBIG
        return
    raise AssertionError("wrote past RLIMIT_FSIZE")
"""
    result = run(tests, memory_mb=128, wall_s=3, output_bytes=4096)
    assert result.verdict == "passed", result


def test_allocating_a_gigabyte_errors_with_memory_error():
    result = run("def test_allocates():\n    data = bytearray(1024**3)\n")
    assert result.verdict == "errored", result
    assert result.tests[0].message is not None and result.tests[0].message.endswith("MemoryError")
    at_import = run("def test_nothing():\n    pass\n", "DATA = bytearray(1024**3)\n")
    assert (at_import.verdict, at_import.reason) == ("errored", "the solution raised MemoryError on import")


def test_printing_100_mb_hits_the_output_limit_and_the_runner_buffers_none_of_it():
    tests = "import sys\n\ndef test_floods():\n    for _ in range(100):\n        sys.stdout.write('x' * 1048576)\n"
    tracemalloc.start()
    try:
        result = run(tests)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (result.verdict, result.reason) == ("limit", "output limit of 65536 bytes")
    assert peak < 16 * 1024 * 1024, peak


def test_the_network_is_unreachable():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        tests = f"""
import socket

def unreachable(address):
    try:
        socket.create_connection(address, timeout=1).close()
    except OSError:
        return True
    return False

def test_the_host_listener():
    assert unreachable(("127.0.0.1", {port}))

def test_the_internet():
    assert unreachable(("1.1.1.1", 53))
"""
        result = run(tests)
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert result.verdict == "passed", result


def test_the_environment_is_not_the_fleets():
    tests = f"""
import os

def test_the_canary_is_absent():
    print(dict(os.environ))
    assert {CANARY!r} not in os.environ

def test_the_canary_is_present():
    assert {CANARY!r} in os.environ

def test_only_the_sandbox_variables():
    assert set(os.environ) <= {set(SANDBOX_ENV) | {"PWD", "LC_CTYPE"}!r}, sorted(os.environ)

def test_no_process_in_sight_holds_it():
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = open(f"/proc/{{pid}}/environ", "rb").read()
        except OSError:
            continue
        assert b{CANARY!r} not in environ
"""
    result = run(tests)
    assert result.verdict == "failed", result
    assert [t.outcome for t in result.tests] == ["passed", "failed", "passed", "passed"]
    assert os.environ[CANARY] not in (result.first_failure or "")


def test_writing_outside_the_scratch_directory(host_dir: Path):
    escape = f"fleet-sandbox-escape-{uuid.uuid4().hex}"
    tests = f"""
import os

def refused(path):
    try:
        open(path, "w").write("escaped")
    except OSError:
        return True
    return False

def test_usr_root_and_dev_are_read_only():
    assert refused("/usr/{escape}") and refused("/{escape}") and refused("/dev/shm/{escape}")

def test_tmp_and_work_are_the_sandboxs_own():
    assert not refused("/tmp/{escape}") and not refused("/work/{escape}")
    os.makedirs("{host_dir}")  # the host's directory is not there: made in the sandbox's own /tmp
    assert not refused("{host_dir}/{escape}")

def test_nothing_else_of_the_host():
    assert sorted(os.listdir("/")) == ["bin", "dev", "harness", "lib", "lib64", "proc", "sbin", "tmp", "usr", "work"]
"""
    result = run(tests)
    assert result.verdict == "passed", result
    for host_path in (Path("/usr", escape), Path("/", escape), Path("/tmp", escape), host_dir / escape):
        assert not host_path.exists()


def test_deleting_files(fleet_unharmed: Path):
    tests = f"""
import os, shutil

def test_deletes():
    shutil.rmtree("{fleet_unharmed.parent}", ignore_errors=True)
    for path in ("/usr/bin/python3", "/harness/harness.py", "/work/solution.py", "/work/test_solution.py"):
        try:
            os.remove(path)
        except OSError:
            pass
    assert os.path.exists("/work/solution.py") and os.path.exists("/usr/bin/python3")
"""
    result = run(tests)
    assert result.verdict == "passed", result
    assert fleet_unharmed.exists() and Path(SETTINGS.python).exists()


def test_exiting_at_import_errors_it_never_passes():
    result = run("def test_vacuous():\n    pass\n", "import sys\nsys.exit(0)\n")
    assert (result.verdict, result.reason) == ("errored", "the solution exited before its tests ran")
    assert result.tests == [] and result.pass_rate == 0


def test_exiting_in_a_test_errors():
    result = run("import os\n\ndef test_leaves():\n    os._exit(0)\n\ndef test_vacuous():\n    pass\n")
    assert (result.verdict, result.reason) == ("errored", "exited before reporting its results (exit status 0)")
    raised = run("import sys\n\ndef test_leaves():\n    sys.exit(0)\n")
    assert raised.verdict == "errored" and (raised.tests[0].message or "").endswith("\nSystemExit: 0")


FAILING_TEST = "\n\ndef test_fails():\n    assert 1 == 2\n"


def test_replacing_assertion_error_fakes_nothing():
    solution = "import builtins\n\nclass Fake(Exception):\n    pass\n\nbuiltins.AssertionError = Fake\n"
    result = run(FAILING_TEST, solution)
    assert result.verdict == "failed", result


def test_overwriting_the_harness_functions_fakes_nothing():
    tamper = """
import sys

FAKE = {"setup_error": None, "tests": [{"name": "test_fails", "outcome": "passed", "message": None}], "not_run": 0}
harness = sys.modules["__main__"]
for name in list(vars(harness)):
    if not name.startswith("__") and callable(getattr(harness, name)):
        setattr(harness, name, lambda *args, **kwargs: FAKE)
"""
    in_the_solution = run(FAILING_TEST, tamper)
    assert in_the_solution.verdict == "failed", in_the_solution
    in_a_test = run(f"def test_tampers():\n{tamper.replace(chr(10), chr(10) + '    ')}{FAILING_TEST}")
    assert in_a_test.verdict == "failed", in_a_test
    assert [t.outcome for t in in_a_test.tests] == ["passed", "failed"]


def test_patching_json_fakes_nothing():
    solution = """
import json

FAKE = '{"setup_error": null, "tests": [{"name": "test_fails", "outcome": "passed"}], "not_run": 0}'
json.dumps = lambda *args, **kwargs: FAKE
json.JSONEncoder.encode = lambda self, value: FAKE
"""
    result = run(FAILING_TEST, solution)
    assert result.verdict == "failed", result


def test_a_forged_report_is_unreadable():
    tests = """
import os

FORGED = b'{"setup_error": null, "tests": [{"name": "test_forges", "outcome": "passed"}], "not_run": 0}'

def test_forges():
    for fd in map(int, os.listdir("/proc/self/fd")):
        try:
            os.write(fd, b"fleet harness started\\n" + b"0" * 32 + b"\\n" + FORGED)
        except OSError:
            pass
    os._exit(0)
"""
    result = run(tests)
    assert (result.verdict, result.reason) == ("errored", "unreadable results")
    printed = run(f"print({FAILING_TEST!r})\nprint('{{\"tests\": []}}')" + FAILING_TEST)
    assert printed.verdict == "failed", printed


def test_no_bubblewrap_is_unavailable():
    result = run(ADD_TESTS, settings=SandboxSettings(bwrap="no-such-bwrap"))
    assert (result.verdict, result.reason) == ("unavailable", "bubblewrap (no-such-bwrap) is not installed")


def test_a_sandbox_that_cannot_start_is_unavailable():
    result = run(ADD_TESTS, settings=SandboxSettings(python="/usr/bin/no-such-python"))
    assert result.verdict == "unavailable", result
    assert result.reason is not None and result.reason.startswith("the sandbox did not start: bwrap:")
    failing = run(ADD_TESTS, settings=SandboxSettings(bwrap="false"))
    assert (failing.verdict, failing.reason) == ("unavailable", "the sandbox did not start (exit status 1)")


def test_runs_share_a_machine():
    async def four() -> list[ExecutionResult]:
        runner = BubblewrapRunner(SETTINGS, max_concurrent=2)
        jobs = [ExecutionJob(module="solution", solution="def add(a, b):\n    return a + b\n", tests=ADD_TESTS)] * 4
        return await asyncio.gather(*(runner.run(job) for job in jobs))

    assert [r.verdict for r in asyncio.run(four())] == ["passed"] * 4


def test_a_module_name_that_is_no_identifier_errors_before_any_sandbox():
    job = ExecutionJob(module="../../etc/passwd", solution="", tests=ADD_TESTS)
    result = asyncio.run(BubblewrapRunner(SETTINGS).run(job))
    assert (result.verdict, result.reason) == (
        "errored",
        "the module name '../../etc/passwd' is not a Python identifier",
    )
