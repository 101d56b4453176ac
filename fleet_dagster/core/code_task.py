"""A code task's code, read out of an agent's answer, and the runs that grade it.

The rule (documented in the README, "Code tasks"): an answer's code is its first fenced block in the task's
language (or with no language named) that defines what it must: the entry point for a solution, a `test_`
function for tests. An answer with no such block counts whole when it defines it itself (small models often
leave out the fences); otherwise it has no code, and its run is an error that says so, without a sandbox. A
solution's lines that import its own module are dropped: small models copy the tests' `from solution import f`
into the solution, which then cannot import itself half-made.
"""

import re
from collections.abc import Callable

from fleet_dagster.core.execution import CodeRunner, ExecutionJob, ExecutionResult, Language
from fleet_dagster.core.records import MIN_CALL_S
from fleet_dagster.core.request import DeliberationRequest
from fleet_dagster.core.scoring import fenced_blocks

# What a fence may name for each language: its own name, common short forms, or nothing.
FENCE_NAMES: dict[Language, frozenset[str]] = {"python": frozenset({"python", "py", "python3", ""})}
# How a module imports a module (`{module}`) at its top level, per language.
_IMPORTS: dict[Language, str] = {"python": r"^(?:from\s+{module}\s+import\b|import\s+{module}\s*$).*$"}
# How a module defines a name at its top level, per language.
_DEFINES: dict[Language, str] = {"python": r"^(?:async\s+def|def|class)\s+{name}\b|^{name}\s*(?::[^=\n]*)?="}
TEST_PREFIX = "test_"


def _defines(code: str, name: str, language: Language) -> bool:
    pattern = _DEFINES[language].format(name=re.escape(name) if name != TEST_PREFIX else rf"{TEST_PREFIX}\w*")
    return re.search(pattern, code, re.MULTILINE) is not None


def _code_defining(answer: str, name: str, language: Language) -> str | None:
    for fence, code in fenced_blocks(answer):
        if fence in FENCE_NAMES[language] and _defines(code, name, language):
            return code
    return answer if _defines(answer, name, language) else None


def written_solution(
    answer: str, entry_point: str, language: Language = "python", module: str = "solution"
) -> str | None:
    """The solution in an answer, by the rule above: the code that defines `entry_point`, without its imports of
    its own `module`."""
    code = _code_defining(answer, entry_point, language)
    own_imports = _IMPORTS[language].format(module=re.escape(module))
    return None if code is None else re.sub(own_imports, "", code, flags=re.MULTILINE)


def written_tests(answer: str, language: Language = "python") -> str | None:
    """The tests in an answer, by the rule above: the code that defines a test_ function."""
    return _code_defining(answer, TEST_PREFIX, language)


def null_solution(entry_point: str, language: Language = "python") -> str:
    """A solution that does nothing (returns None): tests it passes test nothing (they are vacuous)."""
    return {"python": f"def {entry_point}(*args, **kwargs):\n    return None\n"}[language]


def no_code(what: str) -> ExecutionResult:
    """The run of an answer with no code to run: an error, and no sandbox was asked."""
    return ExecutionResult(verdict="errored", reason=f"no code: {what}", first_failure=f"no code: {what}")


async def run_before_deadline(
    runner: CodeRunner | None,
    request: DeliberationRequest,
    solution: str,
    tests: str,
    *,
    deadline_at: float,
    clock: Callable[[], float],
) -> ExecutionResult:
    """The run, its wall time cut to what is left before the deliberation's deadline; unavailable, saying why,
    without a sandbox or without time left."""
    remaining = deadline_at - clock()
    if runner is None or remaining < MIN_CALL_S:
        reason = "no sandbox runs code here" if runner is None else "the deadline left no time to run it"
        return ExecutionResult(verdict="unavailable", reason=reason)
    return await runner.run(run_of(request, solution, tests, wall_s=remaining))


def run_of(request: DeliberationRequest, solution: str, tests: str, wall_s: float | None = None) -> ExecutionJob:
    """The run of `solution` against `tests` under the request's limits (its wall time cut to `wall_s`)."""
    limits = request.test_limits
    if wall_s is not None:
        limits = limits.model_copy(update={"wall_s": min(limits.wall_s, wall_s)})
    return ExecutionJob(language=request.language, module=request.module, solution=solution, tests=tests, limits=limits)
