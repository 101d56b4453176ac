"""What a sandboxed run reported, read as untrusted input, and the verdict it earns.

The harness's document comes from the process the model's code ran in, which could have written to its fd:
it is read within a size cap, must follow the run's secret, and is validated field by field (names and
messages cut to size); anything else is unreadable, and an unreadable report errors, it never passes.

The verdict rule, first match wins:
1. unavailable: no sandbox ran the code (bubblewrap missing or failing, or the harness never said it started).
2. limit: the output went past its limit (the runner stopped the run).
3. timeout: the wall limit (the runner stopped the run), or the CPU limit (the kernel did: SIGXCPU, or a
   SIGKILL after the run used its CPU time).
4. With a readable report:
   errored: the solution or the test file raised while loading (a SystemExit too: it exited before its tests
   ran), or the test file has no test_* function;
   passed: every test passed;
   failed: every test that did not pass failed an assertion;
   errored: otherwise: some test raised anything but an AssertionError (SystemExit and MemoryError included).
5. Without one:
   errored "unreadable results": something other than the harness's one document arrived;
   limit: the process died with signs of running out of memory (MemoryError, "Cannot allocate memory");
   errored "exited before reporting its results (exit status N)": anything else, sys.exit(0) or os._exit(0)
   included: a run that never reported passed nothing.
"""

import json
import signal
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from fleet_dagster.core.execution import (
    MAX_FAILURE_CHARS,
    MAX_REPORTED_TESTS,
    ExecutionLimits,
    ExecutionResult,
    TestOutcome,
    TestOutcomeKind,
    Verdict,
)
from fleet_dagster.core.profiles import CodeWork
from fleet_dagster.sandbox.harness import STARTED, cpu_seconds

MAX_NAME_CHARS = 200
# The largest document an honest harness writes: every test's name and message, each character escaped.
MAX_REPORT_BYTES = MAX_REPORTED_TESTS * (MAX_NAME_CHARS + MAX_FAILURE_CHARS + 100) * 6 + 4_096
_MEMORY_SIGNS = (b"MemoryError", b"Cannot allocate memory", b"out of memory")

# Why the runner itself stopped a run.
Stopped = Literal["wall", "output", "report"]


def _bounded(limit: int) -> AfterValidator:
    """Cut to `limit` characters, with any lone surrogate replaced: the text must encode wherever it goes."""
    return AfterValidator(lambda text: text[:limit].encode("utf-8", "replace").decode("utf-8"))


class _Reported(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ReportedTest(_Reported):
    name: Annotated[str, _bounded(MAX_NAME_CHARS)]
    outcome: TestOutcomeKind
    message: Annotated[str, _bounded(MAX_FAILURE_CHARS)] | None = None


class SetupError(_Reported):
    stage: CodeWork  # the file that would not load: the solution's or the tests'
    error: Annotated[str, _bounded(100)]  # the exception's type
    message: Annotated[str, _bounded(MAX_FAILURE_CHARS)]


class HarnessReport(_Reported):
    setup_error: SetupError | None
    tests: list[ReportedTest] = Field(max_length=MAX_REPORTED_TESTS)
    not_run: int = Field(ge=0, le=1_000_000_000)  # tests past MAX_REPORTED_TESTS, counted together


def parse_report(data: bytes, nonce: bytes) -> HarnessReport | None:
    """The harness's document (what followed STARTED on its fd), or None when it is not one."""
    secret = nonce + b"\n"
    if len(data) > MAX_REPORT_BYTES or not nonce or not data.startswith(secret):
        return None
    try:
        # json, not pydantic's own parser: that one refuses a lone surrogate, which an honest message may hold.
        return HarnessReport.model_validate(json.loads(data[len(secret) :]))
    except (ValueError, RecursionError):  # not JSON, not UTF-8, nested too deep, or not a report
        return None


@dataclass(frozen=True)
class RunEnd:
    """What the runner saw of one sandboxed run."""

    output: bytes  # stdout and stderr together: the head, up to the output limit
    results: bytes  # what arrived on the result fd
    nonce: bytes  # the run's secret, which the harness's document starts with
    exit_status: int | None  # bwrap's: the harness's exit code, 128 + the signal that killed it, -N if bwrap died
    cpu_s: float = 0.0  # the CPU time of the whole sandbox
    stopped: Stopped | None = None


def judge(end: RunEnd, limits: ExecutionLimits) -> ExecutionResult:
    """The verdict of a run by the rule above (duration_ms left for the runner to set)."""
    if not end.results.startswith(STARTED):
        detail = _text(end.output).strip().splitlines()
        why = f": {detail[-1][:300]}" if detail else f" ({_exit_text(end.exit_status)})"
        return ExecutionResult(verdict="unavailable", reason=f"the sandbox did not start{why}")
    tail = _text(end.output)[-MAX_FAILURE_CHARS:] or None
    if end.stopped == "output":
        reason = f"output limit of {limits.output_bytes} bytes"
        return ExecutionResult(verdict="limit", reason=reason, first_failure=tail)
    if end.stopped == "wall":
        return ExecutionResult(verdict="timeout", reason=f"wall time limit of {limits.wall_s:g} s", first_failure=tail)
    if _out_of_cpu(end, limits):
        reason = f"CPU time limit of {cpu_seconds(limits.wall_s)} s"
        return ExecutionResult(verdict="timeout", reason=reason, first_failure=tail)
    document = end.results[len(STARTED) :]
    report = None if end.stopped == "report" else parse_report(document, end.nonce)
    if report is not None:
        return _judge_report(report, tail)
    if document:
        return ExecutionResult(verdict="errored", reason="unreadable results", first_failure=tail)
    if any(sign in end.output for sign in _MEMORY_SIGNS):
        return ExecutionResult(verdict="limit", reason=f"memory limit of {limits.memory_mb} MB", first_failure=tail)
    reason = f"exited before reporting its results ({_exit_text(end.exit_status)})"
    return ExecutionResult(verdict="errored", reason=reason, first_failure=tail)


def _judge_report(report: HarnessReport, tail: str | None) -> ExecutionResult:
    if (setup := report.setup_error) is not None:
        what = "the solution" if setup.stage == "solution" else "the test file"
        did = "exited before its tests ran" if setup.error == "SystemExit" else f"raised {setup.error} on import"
        return ExecutionResult(verdict="errored", reason=f"{what} {did}", first_failure=setup.message)
    tests = [TestOutcome(name=t.name, outcome=t.outcome, message=t.message) for t in report.tests]
    if report.not_run:
        message = f"not run: a run reports at most {MAX_REPORTED_TESTS} tests"
        tests.append(TestOutcome(name=f"{report.not_run} more tests", outcome="errored", message=message))
    if not tests:
        return ExecutionResult(verdict="errored", reason="no test_* functions", first_failure=tail)
    failed = sum(t.outcome == "failed" for t in tests)
    errored = sum(t.outcome == "errored" for t in tests)
    first = next((t for t in tests if t.outcome != "passed"), None)
    first_failure = (first.message or f"{first.name} {first.outcome}") if first else None
    verdict: Verdict
    if first is None:
        verdict, reason = "passed", f"all {len(tests)} tests passed"
    elif not errored:
        verdict, reason = "failed", f"{failed} of {len(tests)} tests failed"
    else:
        verdict, reason = "errored", f"{errored} of {len(tests)} tests raised an error, {failed} failed"
    return ExecutionResult(verdict=verdict, tests=tests, reason=reason, first_failure=first_failure)


def _out_of_cpu(end: RunEnd, limits: ExecutionLimits) -> bool:
    """SIGXCPU is the CPU limit's own signal; a SIGKILL is its hard limit's when the CPU time was spent."""
    if end.exit_status == 128 + signal.SIGXCPU:
        return True
    return end.exit_status == 128 + signal.SIGKILL and end.cpu_s >= cpu_seconds(limits.wall_s)


def _exit_text(status: int | None) -> str:
    if status is None:
        return "exit status unknown"
    number = status - 128 if status > 128 else -status
    if number > 0 and number in signal.valid_signals():
        return f"killed by {signal.Signals(number).name}"
    return f"exit status {status}"


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")
