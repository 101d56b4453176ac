"""Running a proposal's code against tests: what is asked of a sandbox, and what comes back.

Core says what to run and how to read the result; where it runs (bubblewrap on one machine, a sandbox
worker pod on Kubernetes) is an adapter's business (fleet_dagster/sandbox, the Ray executors).
"""

from typing import ClassVar, Literal, Protocol

from pydantic import BaseModel, Field

# The languages a request may name; each has a harness in fleet_dagster/sandbox. Python first.
Language = Literal["python"]

# A verdict: passed (every test passed), failed (a test's assertion failed), errored (the code or a test
# raised, would not import, or exited before its tests ran), timeout (the wall or CPU limit), limit (memory,
# processes or output past their limit), unavailable (no sandbox could run it: never run unsandboxed).
Verdict = Literal["passed", "failed", "errored", "timeout", "limit", "unavailable"]
TestOutcomeKind = Literal["passed", "failed", "errored"]

# The first failure's output kept on a result: enough for a traceback's last lines and an assertion's values.
MAX_FAILURE_CHARS = 2_000
# Tests a harness reports one by one; more are counted as errored together.
MAX_REPORTED_TESTS = 200

# Limits of one test run (the request's, bounded here once).
DEFAULT_TEST_TIMEOUT_S = 10.0
MAX_TEST_TIMEOUT_S = 60.0
DEFAULT_TEST_MEMORY_MB = 256
MIN_TEST_MEMORY_MB = 64
MAX_TEST_MEMORY_MB = 2_048
DEFAULT_TEST_OUTPUT_BYTES = 65_536
MIN_TEST_OUTPUT_BYTES = 1_024
MAX_TEST_OUTPUT_BYTES = 1_048_576
# Processes and threads a test run may have at once: enough for a test that starts a few, not a fork bomb.
TEST_PROCESSES = 32


class ExecutionLimits(BaseModel):
    wall_s: float = Field(DEFAULT_TEST_TIMEOUT_S, gt=0, le=MAX_TEST_TIMEOUT_S)
    memory_mb: int = Field(DEFAULT_TEST_MEMORY_MB, ge=MIN_TEST_MEMORY_MB, le=MAX_TEST_MEMORY_MB)
    output_bytes: int = Field(DEFAULT_TEST_OUTPUT_BYTES, ge=MIN_TEST_OUTPUT_BYTES, le=MAX_TEST_OUTPUT_BYTES)
    processes: int = Field(TEST_PROCESSES, ge=1, le=256)


class ExecutionJob(BaseModel):
    """One run of a solution against one test file, in a sandbox."""

    language: Language = "python"
    module: str  # the solution's module name: what the tests import (`from solution import add`)
    solution: str  # the solution's source
    tests: str  # the test file's source: test_* functions with plain asserts (pytest style)
    limits: ExecutionLimits = Field(default_factory=ExecutionLimits)


class TestOutcome(BaseModel):
    __test__: ClassVar[bool] = False  # a model, not a test class for pytest to collect

    name: str
    outcome: TestOutcomeKind
    message: str | None = None  # the assertion's or exception's text, bounded


class ExecutionResult(BaseModel):
    verdict: Verdict
    tests: list[TestOutcome] = Field(default_factory=list)
    # Why the run ended as it did, in a line ("wall time limit of 10 s", "exited before its tests ran").
    reason: str | None = None
    # The first failing or erroring test's output, or the run's own when no test ran (bounded).
    first_failure: str | None = None
    duration_ms: float = 0.0

    @property
    def passed(self) -> int:
        return sum(t.outcome == "passed" for t in self.tests)

    @property
    def total(self) -> int:
        return len(self.tests)

    @property
    def pass_rate(self) -> float:
        """Share of tests passed: 0 when no test ran (a run that never reached its tests passed none)."""
        return self.passed / self.total if self.total and self.verdict != "unavailable" else 0.0


class CodeRunner(Protocol):
    async def run(self, job: ExecutionJob) -> ExecutionResult:
        """Runs one job in a sandbox. Failures (a sandbox that cannot start included) come back as a
        result's verdict, never as exceptions."""
        ...
