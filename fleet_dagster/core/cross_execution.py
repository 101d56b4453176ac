"""A code task once every council has ended: the solutions run against the tests the councils wrote (the pass
matrix), and, when the request asks for selection by execution, the winners chosen from it (core/pass_matrix.py
says how)."""

import asyncio
from collections.abc import Awaitable, Callable

from fleet_dagster.core.code_task import no_code, null_solution, run_before_deadline, written_solution, written_tests
from fleet_dagster.core.execution import CodeRunner, ExecutionResult
from fleet_dagster.core.pass_matrix import MatrixCell, PassMatrix, best_separating, most_agreed, separation
from fleet_dagster.core.profiles import CodeWork, ProfileError, load_profile
from fleet_dagster.core.records import CouncilResult, Proposal, Selection
from fleet_dagster.core.request import DeliberationRequest
from fleet_dagster.core.selection import fell_back, rank, select_by_score


def _writes(role: str) -> CodeWork | None:
    try:
        return load_profile(role).code_work
    except ProfileError:
        return None  # its council ran with the profile as it was; without one now, it is judged as text


def _ranked_with_content(council: CouncilResult) -> list[Proposal]:
    return [p for p in rank(council.proposals) if p.content is not None]


async def pass_matrix(
    request: DeliberationRequest,
    solutions: list[Proposal],
    test_sets: list[Proposal],
    run: Callable[[str, str], Awaitable[ExecutionResult]],
) -> PassMatrix:
    """`run(solution, tests)` runs one pair before the deliberation's deadline."""
    entry_point, language = request.entry_point or "", request.language
    solution_codes = {
        p.agent_id: written_solution(p.content or "", entry_point, language, request.module) for p in solutions
    }
    test_codes = {p.agent_id: written_tests(p.content or "", language) for p in test_sets}
    matrix = PassMatrix(solutions=[p.agent_id for p in solutions], test_sets=[p.agent_id for p in test_sets])
    matrix.unusable = {t: f"no {language} code defines a test_ function" for t, code in test_codes.items() if not code}
    runnable = {t: code for t, code in test_codes.items() if code}
    null_runs = await asyncio.gather(*(run(null_solution(entry_point, language), c) for c in runnable.values()))
    for tests, null_run in zip(runnable, null_runs, strict=True):
        if null_run.verdict == "passed":
            matrix.vacuous.append(tests)
        elif null_run.verdict == "unavailable":
            matrix.unusable[tests] = f"not run: {null_run.reason}"

    async def cell(solution: str, tests: str) -> MatrixCell:
        code = solution_codes[solution]
        result = await run(code, runnable[tests]) if code else no_code(f"no code defines {entry_point}")
        return MatrixCell.of(solution, tests, result)

    pairs = [(s, t) for s in matrix.solutions for t in matrix.deciding_sets]  # a vacuous set decides nothing
    matrix.cells = list(await asyncio.gather(*(cell(s, t) for s, t in pairs)))
    return matrix


def _solution_selection(council: CouncilResult, matrix: PassMatrix, request: DeliberationRequest) -> Selection:
    candidates = _ranked_with_content(council)
    if request.tests.strip():  # request tests take precedence: only the solutions that pass the most may win
        best = max((p.execution.pass_rate if p.execution else 0.0) for p in candidates) if candidates else 0.0
        candidates = [p for p in candidates if (p.execution.pass_rate if p.execution else 0.0) == best]
    agreed = most_agreed(matrix, [p.agent_id for p in candidates])
    if agreed is None:
        return fell_back(select_by_score(council.proposals), "no test a council wrote passes any solution")
    rationale = (
        f"dual execution agreement {agreed.score}: it passes {agreed.tests_passed} of the councils' tests, as "
        f"{agreed.group - 1} other solution(s) do exactly"
    )
    return Selection(winner=agreed.solution, method="execution", rationale=rationale)


def _tests_selection(council: CouncilResult, matrix: PassMatrix, chosen_solution: str | None) -> Selection:
    winner = best_separating(matrix, chosen_solution)
    if winner is None:
        reason = "no test set it wrote decides anything (each is vacuous or could not run)"
        return fell_back(select_by_score(council.proposals), reason)
    cell = matrix.cell(chosen_solution, winner) if chosen_solution else None
    rationale = f"its tests split the {len(matrix.solutions)} solutions into {separation(matrix, winner)} groups" + (
        f"; the chosen solution {cell.verdict} them" if cell else ""
    )
    return Selection(winner=winner, method="execution", rationale=rationale)


def _with_selection(council: CouncilResult, selection: Selection) -> CouncilResult:
    proposals = [p.model_copy(update={"is_winner": p.agent_id == selection.winner}) for p in council.proposals]
    return council.model_copy(
        update={"proposals": proposals, "selection": selection.model_copy(update={"asked": "execution"})}
    )


async def cross_execute(
    request: DeliberationRequest,
    councils: list[CouncilResult],
    runner: CodeRunner | None,
    *,
    deadline_at: float,
    clock: Callable[[], float],
) -> tuple[list[CouncilResult], PassMatrix | None]:
    """The councils (their winners chosen by execution when the request asks so) and the pass matrix, when the
    task is a code task with a council that writes solutions and one that writes tests."""
    if not request.is_code_task:
        return councils, None
    writes = {c.role: _writes(c.role) for c in councils}
    solutions = [p for c in councils if writes[c.role] == "solution" for p in _ranked_with_content(c)]
    test_sets = [p for c in councils if writes[c.role] == "tests" for p in _ranked_with_content(c)]
    matrix = None
    if solutions and test_sets:

        def run(solution: str, tests: str) -> Awaitable[ExecutionResult]:
            return run_before_deadline(runner, request, solution, tests, deadline_at=deadline_at, clock=clock)

        matrix = await pass_matrix(request, solutions, test_sets, run)
    if request.selection != "execution":
        return councils, matrix
    chosen: dict[str, CouncilResult] = {}
    for council in sorted(councils, key=lambda c: writes[c.role] != "solution"):  # solutions first: tests need one
        role_writes = writes[council.role]
        if matrix is None or role_writes is None:
            reason = "its role writes no code" if role_writes is None else "no council wrote the other half to run"
            selection = fell_back(select_by_score(council.proposals), reason)
        elif role_writes == "solution":
            selection = _solution_selection(council, matrix, request)
        else:
            dev = next((c.selection.winner for c in chosen.values() if writes[c.role] == "solution"), None)
            selection = _tests_selection(council, matrix, dev)
        chosen[council.role] = _with_selection(council, selection)
    return [chosen[c.role] for c in councils], matrix
