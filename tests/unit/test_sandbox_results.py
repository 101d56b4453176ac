"""The sandbox's reading of what a run reported (untrusted), its verdict rule, and the command it builds."""

import json
import signal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet_dagster.core.env_settings import SettingsError
from fleet_dagster.core.execution import MAX_FAILURE_CHARS, MAX_REPORTED_TESTS, ExecutionLimits
from fleet_dagster.sandbox.bubblewrap import SANDBOX_ENV, SandboxFds, bwrap_command
from fleet_dagster.sandbox.harness import STARTED, cpu_seconds
from fleet_dagster.sandbox.results import MAX_NAME_CHARS, MAX_REPORT_BYTES, RunEnd, judge, parse_report
from fleet_dagster.sandbox.settings import SandboxSettings

NONCE = b"0123456789abcdef0123456789abcdef"
LIMITS = ExecutionLimits(wall_s=5, memory_mb=128)


def document(tests: list[dict] | None = None, setup_error: dict | None = None, not_run: int = 0) -> bytes:
    report = {"setup_error": setup_error, "tests": tests or [], "not_run": not_run}
    return NONCE + b"\n" + json.dumps(report).encode()


def reported(name: str, outcome: str, message: str | None = None) -> dict:
    return {"name": name, "outcome": outcome, "message": message}


def end(results: bytes | None = None, output: bytes = b"", exit_status: int | None = 0, **kwargs) -> RunEnd:
    """A run that started (unless results say otherwise) and reported `results`."""
    return RunEnd(
        output=output,
        results=STARTED + (results if results is not None else b""),
        nonce=NONCE,
        exit_status=exit_status,
        **kwargs,
    )


def verdict(run_end: RunEnd) -> tuple[str, str | None]:
    result = judge(run_end, LIMITS)
    return result.verdict, result.reason


def test_a_report_is_read():
    report = parse_report(
        document([reported("test_a", "passed"), reported("test_b", "failed", "AssertionError")]), NONCE
    )
    assert report is not None
    assert [(t.name, t.outcome, t.message) for t in report.tests] == [
        ("test_a", "passed", None),
        ("test_b", "failed", "AssertionError"),
    ]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage",
        document([reported("test_a", "passed")])[len(NONCE) :],  # no secret
        b"f" * 32 + document([reported("test_a", "passed")])[32:],  # another secret
        NONCE + b"\nnot json",
        NONCE + b"\n" + json.dumps({"tests": []}).encode(),  # a field missing
        document([reported("test_a", "passed")]) + b"{}",  # two documents
        document([reported("test_a", "maybe")]),
        document([{"name": 1, "outcome": "passed"}]),
        document([{**reported("test_a", "passed"), "extra": True}]),
        document([reported("test_a", "passed")] * (MAX_REPORTED_TESTS + 1)),
        document(not_run=-1),
        document(setup_error={"stage": "elsewhere", "error": "X", "message": "m"}),
        NONCE + b"\n" + b"[" * 100_000 + b"]" * 100_000,
        document([reported("test_a", "passed", "x" * MAX_REPORT_BYTES)]),
    ],
)
def test_anything_else_is_unreadable(data):
    assert parse_report(data, NONCE) is None


def test_names_and_messages_are_cut_to_size():
    long = reported("test_" + "a" * 10_000, "failed", "\udcff" + "m" * 10_000)
    report = parse_report(document([long]), NONCE)
    assert report is not None
    assert len(report.tests[0].name) == MAX_NAME_CHARS
    assert report.tests[0].message is not None and len(report.tests[0].message) == MAX_FAILURE_CHARS
    report.tests[0].message.encode("utf-8")  # a lone surrogate replaced: the text goes anywhere


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2_000))
def test_garbage_bytes_never_raise(data):
    for candidate in (data, NONCE + b"\n" + data):
        report = parse_report(candidate, NONCE)
        assert report is None or len(report.tests) <= MAX_REPORTED_TESTS
        assert judge(end(candidate), LIMITS).verdict in {"passed", "failed", "errored"}


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)
TEST_LIKE = st.fixed_dictionaries(
    {"name": st.text(max_size=300), "outcome": st.sampled_from(["passed", "failed", "errored", "other"])},
    optional={"message": st.none() | st.text(max_size=3_000), "extra": JSON},
)


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "setup_error": st.none() | JSON,
            "tests": st.lists(TEST_LIKE, max_size=5) | JSON,
            "not_run": st.integers() | JSON,
        },
    )
)
def test_json_documents_never_raise_and_stay_bounded(report):
    result = judge(end(NONCE + b"\n" + json.dumps(report).encode()), LIMITS)
    assert len(result.tests) <= MAX_REPORTED_TESTS + 1
    assert all(len(t.name) <= MAX_NAME_CHARS + 20 for t in result.tests)
    assert all(t.message is None or len(t.message) <= MAX_FAILURE_CHARS for t in result.tests)
    assert result.first_failure is None or len(result.first_failure) <= MAX_FAILURE_CHARS
    assert result.verdict in {"passed", "failed", "errored"}


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        (["passed", "passed"], "passed"),
        (["passed", "failed"], "failed"),
        (["failed", "failed"], "failed"),
        (["failed", "errored"], "errored"),
        (["passed", "errored"], "errored"),
    ],
)
def test_the_verdict_of_the_tests(outcomes, expected):
    tests = [
        reported(f"test_{i}", outcome, None if outcome == "passed" else outcome) for i, outcome in enumerate(outcomes)
    ]
    result = judge(end(document(tests)), LIMITS)
    assert result.verdict == expected
    assert [t.outcome for t in result.tests] == outcomes
    assert result.first_failure == next((o for o in outcomes if o != "passed"), None)


def test_no_tests_errors_with_the_output():
    result = judge(end(document(), output=b"printed"), LIMITS)
    assert (result.verdict, result.reason, result.first_failure) == ("errored", "no test_* functions", "printed")


def test_tests_past_the_reported_ones_count_as_errored_together():
    result = judge(end(document([reported("test_a", "passed")], not_run=7)), LIMITS)
    assert result.verdict == "errored"
    assert [(t.name, t.outcome) for t in result.tests] == [("test_a", "passed"), ("7 more tests", "errored")]


@pytest.mark.parametrize(
    ("setup_error", "reason"),
    [
        (
            {"stage": "solution", "error": "SystemExit", "message": "SystemExit: 0"},
            "the solution exited before its tests ran",
        ),
        (
            {"stage": "solution", "error": "MemoryError", "message": "MemoryError"},
            "the solution raised MemoryError on import",
        ),
        (
            {"stage": "tests", "error": "ImportError", "message": "ImportError: x"},
            "the test file raised ImportError on import",
        ),
    ],
)
def test_a_file_that_will_not_load_errors(setup_error, reason):
    result = judge(end(document(setup_error=setup_error)), LIMITS)
    assert (result.verdict, result.reason, result.first_failure) == ("errored", reason, setup_error["message"])
    assert result.pass_rate == 0


PASSING = document([reported("test_a", "passed")])


@pytest.mark.parametrize(
    ("run_end", "expected"),
    [
        (
            RunEnd(b"bwrap: No permissions to create new namespace\n", b"", NONCE, 1),
            ("unavailable", "the sandbox did not start: bwrap: No permissions to create new namespace"),
        ),
        (RunEnd(b"", b"", NONCE, 1), ("unavailable", "the sandbox did not start (exit status 1)")),
        (end(PASSING, stopped="output"), ("limit", "output limit of 65536 bytes")),
        (end(PASSING, stopped="wall"), ("timeout", "wall time limit of 5 s")),
        (end(exit_status=128 + signal.SIGXCPU), ("timeout", "CPU time limit of 6 s")),
        (end(exit_status=128 + signal.SIGKILL, cpu_s=cpu_seconds(5)), ("timeout", "CPU time limit of 6 s")),
        (
            end(exit_status=128 + signal.SIGKILL, cpu_s=0.5),
            ("errored", "exited before reporting its results (killed by SIGKILL)"),
        ),
        (end(exit_status=0), ("errored", "exited before reporting its results (exit status 0)")),
        (end(exit_status=3), ("errored", "exited before reporting its results (exit status 3)")),
        (end(output=b"Fatal Python error: MemoryError", exit_status=134), ("limit", "memory limit of 128 MB")),
        (end(b"junk" + PASSING), ("errored", "unreadable results")),
        (end(PASSING, stopped="report"), ("errored", "unreadable results")),
        (end(PASSING, exit_status=1), ("passed", "all 1 tests passed")),
    ],
)
def test_how_a_run_ended(run_end, expected):
    assert verdict(run_end) == expected


def test_a_sandbox_that_never_started_says_why():
    result = judge(RunEnd(b"bwrap: setting up uid map: Permission denied\n", b"", NONCE, 1), LIMITS)
    assert result.reason == "the sandbox did not start: bwrap: setting up uid map: Permission denied"
    assert result.pass_rate == 0


def test_first_failure_falls_back_to_the_output_tail():
    result = judge(end(output=b"x" * 10_000 + b"the end", exit_status=1), LIMITS)
    assert result.first_failure is not None and result.first_failure.endswith("the end")
    assert len(result.first_failure) == MAX_FAILURE_CHARS


FDS = SandboxFds(config=10, result=11, status=12, solution=13, tests=14, harness=15)


def test_the_command_shares_nothing_of_the_fleet():
    command = bwrap_command("/usr/bin/bwrap", "/usr/bin/python3", "solution", FDS)
    for flag in ("--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent", "--new-session"):
        assert flag in command
    assert command.index("--clearenv") < command.index("--setenv")
    env = {command[i + 1]: command[i + 2] for i, arg in enumerate(command) if arg == "--setenv"}
    assert env == SANDBOX_ENV
    binds = [command[i + 1] for i, arg in enumerate(command) if arg.endswith("bind")]
    assert binds == ["/usr"] or set(binds) <= {"/usr", "/bin", "/sbin", "/lib", "/lib64"}
    assert not any(arg.startswith(("/etc", "/home", "/root", "/work/main")) for arg in command)
    assert command[-7:] == ["/usr/bin/python3", "-I", "-S", "-B", "/harness/harness.py", "10", "11"]
    scratch = next(i for i, arg in enumerate(command) if command[i - 1 : i + 1] == ["--tmpfs", "/work"])
    assert command[scratch - 3 : scratch - 1] == ["--size", str(64 * 1024 * 1024)]


def test_the_settings():
    assert SandboxSettings.from_environ({}) == SandboxSettings(python="/usr/bin/python3", bwrap="bwrap", uid=65534)
    chosen = SandboxSettings.from_environ(
        {"FLEET_SANDBOX_PYTHON": "/usr/local/bin/python3.12", "FLEET_SANDBOX_UID": "1000"}
    )
    assert (chosen.python, chosen.uid) == ("/usr/local/bin/python3.12", 1000)
    for python in ("/opt/python3", "python3", "/usr/../opt/python3"):
        with pytest.raises(SettingsError):
            SandboxSettings.from_environ({"FLEET_SANDBOX_PYTHON": python})
    with pytest.raises(SettingsError):
        SandboxSettings.from_environ({"FLEET_SANDBOX_UID": "0"})
