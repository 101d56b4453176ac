"""The pass matrix of a code task (every solution run against every test set its councils wrote) and the
choices made from it: the solution by dual execution agreement (CodeT), the test set that separates best.

Dual execution agreement (CodeT, Chen et al. 2022): a test is one test function of one test set. Each
solution passes a set of tests; the solutions that pass exactly the same set form its consensus group, and
its agreement is (solutions in the group) x (tests it passes). The solution with the most agreement wins;
ties go to the council's own ranking (request tests first, then the score). Tests that pass a solution doing
nothing (returning None) are vacuous and left out: they agree with anything. When the request has tests, only
the solutions that pass the most of them may win: request tests always take precedence.

The test set that separates best: among the usable, non-vacuous test sets, the one whose tests split the
solutions into the most groups (distinct pass patterns), preferring a test set the chosen solution passes
whole; ties go to the test council's ranking.
"""

from pydantic import BaseModel, Field

from fleet_dagster.core.execution import ExecutionResult


class MatrixCell(BaseModel):
    solution: str = Field(description="The solution's agent id.")
    tests: str = Field(description="The test set's agent id.")
    verdict: str
    passed: list[str] = Field(default_factory=list, description="The test functions it passed.")
    total: int = 0
    first_failure: str | None = None

    @classmethod
    def of(cls, solution: str, tests: str, result: ExecutionResult) -> "MatrixCell":
        passed = [t.name for t in result.tests if t.outcome == "passed"]
        return cls(
            solution=solution,
            tests=tests,
            verdict=result.verdict,
            passed=passed,
            total=result.total,
            first_failure=result.first_failure,
        )


class PassMatrix(BaseModel):
    solutions: list[str] = Field(description="Solutions' agent ids, their council's ranking first to last.")
    test_sets: list[str] = Field(description="Test sets' agent ids, their council's ranking first to last.")
    cells: list[MatrixCell] = Field(default_factory=list)
    vacuous: list[str] = Field(default_factory=list, description="Test sets that a do-nothing solution passes.")
    unusable: dict[str, str] = Field(default_factory=dict, description="Test sets that could not be run, and why.")

    def cell(self, solution: str, tests: str) -> MatrixCell | None:
        return next((c for c in self.cells if c.solution == solution and c.tests == tests), None)

    @property
    def deciding_sets(self) -> list[str]:
        return [t for t in self.test_sets if t not in self.vacuous and t not in self.unusable]

    def passed_tests(self, solution: str) -> frozenset[tuple[str, str]]:
        """(test set, test function) of every deciding test the solution passes."""
        return frozenset(
            (tests, name)
            for tests in self.deciding_sets
            if (cell := self.cell(solution, tests)) is not None
            for name in cell.passed
        )


class Agreement(BaseModel):
    solution: str
    group: int = Field(description="Solutions passing exactly the same tests, itself included.")
    tests_passed: int

    @property
    def score(self) -> int:
        return self.group * self.tests_passed


def agreements(matrix: PassMatrix, candidates: list[str]) -> list[Agreement]:
    """Each candidate's dual execution agreement, in the candidates' order (see the module's docstring)."""
    passed = {s: matrix.passed_tests(s) for s in matrix.solutions}
    return [
        Agreement(
            solution=s,
            group=sum(passed[other] == passed[s] for other in matrix.solutions),
            tests_passed=len(passed[s]),
        )
        for s in candidates
    ]


def most_agreed(matrix: PassMatrix, candidates: list[str]) -> Agreement | None:
    """The candidate with the most agreement, the first in order among equals; None when no test passes any."""
    scored = agreements(matrix, candidates)
    best = max(scored, key=lambda a: a.score, default=None)
    return best if best is not None and best.score > 0 else None


def separation(matrix: PassMatrix, tests: str) -> int:
    """Into how many groups the test set splits the solutions (1: it tells none apart)."""
    patterns = set()
    for solution in matrix.solutions:
        cell = matrix.cell(solution, tests)
        patterns.add((cell.verdict, tuple(sorted(cell.passed))) if cell else None)
    return len(patterns)


def best_separating(matrix: PassMatrix, chosen_solution: str | None) -> str | None:
    """The deciding test set that separates the solutions most, preferring one the chosen solution passes
    whole; the first in order among equals. None when no test set decides."""

    def passes_chosen(tests: str) -> bool:
        cell = matrix.cell(chosen_solution, tests) if chosen_solution else None
        return cell is not None and cell.verdict == "passed"

    ranked = sorted(
        enumerate(matrix.deciding_sets), key=lambda it: (not passes_chosen(it[1]), -separation(matrix, it[1]), it[0])
    )
    return ranked[0][1] if ranked else None
