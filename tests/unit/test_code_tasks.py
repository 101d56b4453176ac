"""Code tasks in core: the request's fields, the rule that finds an answer's code, execution in the council's
phases and its weight in selection, the pass matrix and the choices made from it. The runner here is a pure
stand-in that grades by a marker in the code (the real sandbox is tested in tests/sandbox)."""

import asyncio
import time

import pytest

from fleet_dagster.core.code_task import null_solution, written_solution, written_tests
from fleet_dagster.core.council import Council, run_council
from fleet_dagster.core.cross_execution import cross_execute
from fleet_dagster.core.execution import ExecutionJob, ExecutionResult, TestOutcome
from fleet_dagster.core.outcome import deliberation_outcome
from fleet_dagster.core.pass_matrix import MatrixCell, PassMatrix, best_separating, most_agreed
from fleet_dagster.core.profiles import load_profile
from fleet_dagster.core.records import ChatRequest, ChatResult, CouncilResult, Proposal, Selection
from fleet_dagster.core.request import RequestError, parse_request
from fleet_dagster.core.selection import rank, select_by_score

TESTS = (
    "from solution import add\n\ndef test_one():\n    assert add(1, 2) == 3\n\n"
    "def test_two():\n    assert add(2, 2) == 4\n"
)
GOOD = "```python\ndef add(a, b):\n    return a + b\n```"
BAD = "```python\ndef add(a, b):\n    return a - b\n```"


class MarkerRunner:
    """Grades a job by what its solution says: `a + b` passes every test, anything else fails the first."""

    def __init__(self) -> None:
        self.jobs: list[ExecutionJob] = []

    async def run(self, job: ExecutionJob) -> ExecutionResult:
        self.jobs.append(job)
        names = [line[4:].split("(")[0] for line in job.tests.splitlines() if line.startswith("def test_")]
        if "return None" in job.solution or "a + b" in job.solution:
            tests = [TestOutcome(name=n, outcome="passed") for n in names]
            if "return None" in job.solution and "is_none" not in job.tests:
                tests = [TestOutcome(name=n, outcome="failed", message="assert None == 3") for n in names]
        else:
            tests = [TestOutcome(name=n, outcome="failed", message="assert -1 == 3") for n in names]
        verdict = "passed" if all(t.outcome == "passed" for t in tests) else "failed"
        failure = next((t.message for t in tests if t.message), None)
        return ExecutionResult(verdict=verdict, tests=tests, first_failure=failure, duration_ms=5.0)


def code_request(**fields):
    return parse_request(
        {"task": "Add two numbers.", "roles": ["DEV"], "agents_per_role": 3, "entry_point": "add", **fields}
    )


def test_a_request_with_tests_needs_an_entry_point():
    with pytest.raises(RequestError, match="tests need an entry_point"):
        parse_request({"task": "t", "tests": TESTS})
    with pytest.raises(RequestError, match="selection 'execution' needs a code task"):
        parse_request({"task": "t", "selection": "execution"})
    with pytest.raises(RequestError, match="entry_point"):
        parse_request({"task": "t", "entry_point": "os.system"})  # a name the tests import, not an expression
    request = code_request(tests=TESTS, test_timeout_s=2.0, test_memory_mb=128)
    assert request.is_code_task and request.test_limits.wall_s == 2.0 and request.test_limits.memory_mb == 128
    assert not parse_request({"task": "t"}).is_code_task


def test_an_answers_code_is_its_first_block_that_defines_what_it_must():
    prose = (
        "Here it is:\n```text\nadd things\n```\n```python\nimport math\n```\n" + GOOD + "\n```py\ndef add(): pass\n```"
    )
    assert written_solution(prose, "add") == "def add(a, b):\n    return a + b\n"
    assert written_solution("def add(a, b):\n    return a + b", "add").startswith("def add")  # no fences: the whole
    assert written_solution("```\nadd = lambda a, b: a + b\n```", "add") == "add = lambda a, b: a + b\n"
    assert written_solution("```python\ndef adder(a, b): ...\n```", "add") is None  # `adder` is not `add`
    assert written_solution("```js\nfunction add(a, b) {}\n```\n", "add") is None  # another language
    assert written_tests("```python\n" + TESTS + "```") == TESTS
    assert written_tests("```python\nassert add(1, 2) == 3\n```") is None  # no test_ function to run
    assert "return None" in null_solution("add")


def test_a_solution_that_imports_itself_as_the_tests_do_loses_that_line():
    """Shown tests, small models copy their `from solution import add` into the solution, which then cannot import
    (the module imports itself half-made): the rule drops the solution's imports of its own module."""
    copied = "```python\nfrom solution import add\nimport solution\n\ndef add(a, b):\n    return a + b\n```"
    assert written_solution(copied, "add") == "\n\ndef add(a, b):\n    return a + b\n"
    assert written_solution(copied.replace("solution", "adder"), "add", module="adder").startswith("\n\ndef add")
    kept = "```python\nfrom solutions_lib import helper\n\ndef add(a, b):\n    return a + b\n```"
    assert written_solution(kept, "add").startswith("from solutions_lib import helper")


def test_a_solution_is_run_after_propose_and_each_revision_and_revisions_see_the_failure():
    class Model:
        def __init__(self) -> None:
            self.revise_prompts: list[str] = []

        async def complete(self, request: ChatRequest) -> ChatResult:
            if request.phase == "review":
                return ChatResult(content='{"scores": {"correctness": 9}}', latency_ms=1)
            if request.phase == "revise":
                self.revise_prompts.append(request.messages[-1]["content"])
            answer = BAD if request.agent_id == "agent-dev-001" and request.phase == "propose" else GOOD
            return ChatResult(content=answer, prompt_tokens=10, completion_tokens=5, latency_ms=1)

        async def prompt_tokens(self, request: ChatRequest) -> int:
            return 10

    model, runner = Model(), MarkerRunner()
    request = code_request(tests=TESTS, rounds=1)
    council = Council(
        request, load_profile("DEV"), model, deadline_at=time.time() + 60, call_timeout_s=5, code_runner=runner
    )
    result = asyncio.run(run_council(council))
    assert len(runner.jobs) == 3 + 3  # every proposal, then every revision
    assert all(job.tests == TESTS and job.module == "solution" for job in runner.jobs)
    failing_feedback = [p for p in model.revise_prompts if "assert -1 == 3" in p]
    assert len(failing_feedback) == 1 and "0 of 2 tests passed" in failing_feedback[0]
    assert all(p.execution is not None and p.execution.verdict == "passed" for p in result.proposals)
    propose_runs = [c.execution.verdict for c in result.calls if c.phase == "propose"]
    assert sorted(propose_runs) == ["failed", "passed", "passed"]  # each call carries its answer's run
    outcome = deliberation_outcome(request, [result], 1000.0, {})
    assert outcome.executions == {"failed": 1, "passed": 5}
    assert {(r.tests_verdict, r.tests_passed, r.tests_total) for r in outcome.results} == {("passed", 2, 2)}


def test_a_council_whose_solutions_all_pass_skips_its_remaining_rounds():
    class Model:
        async def complete(self, request: ChatRequest) -> ChatResult:
            return ChatResult(content=GOOD, latency_ms=1)

        async def prompt_tokens(self, request: ChatRequest) -> int:
            return 10

    request = code_request(tests=TESTS, rounds=2)
    council = Council(
        request,
        load_profile("DEV"),
        Model(),
        deadline_at=time.time() + 60,
        call_timeout_s=5,
        code_runner=MarkerRunner(),
    )
    result = asyncio.run(run_council(council))
    assert result.early_stop == "every solution passes the request's tests: rounds 1-2 skipped"
    assert [c.phase for c in result.calls] == ["propose"] * 3 and result.calls_saved == 2 * (3 + 3)


def test_a_council_without_a_sandbox_says_so_and_a_text_role_runs_nothing():
    class Model:
        async def complete(self, request: ChatRequest) -> ChatResult:
            return ChatResult(content=GOOD, latency_ms=1)

        async def prompt_tokens(self, request: ChatRequest) -> int:
            return 10

    request = code_request(tests=TESTS, rounds=0, roles=["DEV", "ARCHITECT"])
    dev = asyncio.run(
        run_council(Council(request, load_profile("DEV"), Model(), deadline_at=time.time() + 60, call_timeout_s=5))
    )
    assert {p.execution.verdict for p in dev.proposals} == {"unavailable"}
    assert all(p.execution.pass_rate == 0 for p in dev.proposals)
    runner = MarkerRunner()
    architect = Council(
        request, load_profile("ARCHITECT"), Model(), deadline_at=time.time() + 60, call_timeout_s=5, code_runner=runner
    )
    assert all(p.execution is None for p in asyncio.run(run_council(architect)).proposals) and not runner.jobs


def test_code_that_restates_its_signature_is_no_echo():
    """The code benchmark found a short right answer flagged as an echo of its spec (the signature is in both), so
    that a wordy wrong one won by score: a role writing code is judged by its code, not by the prose rules' echo."""

    class Model:
        async def complete(self, request: ChatRequest) -> ChatResult:
            return ChatResult(content="```python\ndef minus_19(x):\n    return x - 19\n```", latency_ms=1)

        async def prompt_tokens(self, request: ChatRequest) -> int:
            return 10

    request = parse_request(
        {
            "task": "def minus_19(x): return x minus 19",
            "roles": ["DEV"],
            "agents_per_role": 1,
            "rounds": 0,
            "entry_point": "minus_19",
        }
    )
    council = Council(request, load_profile("DEV"), Model(), deadline_at=time.time() + 60, call_timeout_s=5)
    (written,) = asyncio.run(run_council(council)).proposals
    assert written.flags == []
    text = parse_request({"task": "def minus_19(x): return x minus 19", "roles": ["DEV"], "agents_per_role": 1})
    echoed = Council(text, load_profile("DEV"), Model(), deadline_at=time.time() + 60, call_timeout_s=5)
    (prose,) = asyncio.run(run_council(echoed)).proposals
    assert prose.flags and prose.flags[0].startswith("echo:")  # a text task's rules stay as they were


def proposal(agent: str, score: float, verdict: str | None = None, flags: list[str] | None = None) -> Proposal:
    run = None if verdict is None else ExecutionResult(verdict=verdict, tests=[])
    return Proposal(
        role="DEV",
        agent_id=agent,
        round=0,
        content="x",
        temperature=0.7,
        seed=1,
        score=score,
        execution=run,
        flags=flags or [],
    )


def test_a_solution_that_passes_every_test_is_never_beaten_by_one_that_does_not():
    passing = proposal("agent-dev-003", 2.0, "passed", flags=["echo: copies the task"])
    proposals = [proposal("agent-dev-001", 9.9, "failed"), proposal("agent-dev-002", 9.5), passing]
    assert [p.agent_id for p in rank(proposals)][0] == "agent-dev-003"
    selection = select_by_score(proposals)
    assert selection.winner == "agent-dev-003" and selection.rationale.startswith("passed: 0 of 0 tests passed")


def cell(solution: str, tests: str, passed: list[str], total: int = 2) -> MatrixCell:
    return MatrixCell(
        solution=solution,
        tests=tests,
        verdict="passed" if len(passed) == total else "failed",
        passed=passed,
        total=total,
    )


def test_dual_execution_agreement_picks_the_solution_whose_tests_the_most_solutions_agree_on():
    matrix = PassMatrix(
        solutions=["s1", "s2", "s3", "s4"],
        test_sets=["t1", "t2", "t3"],
        vacuous=["t3"],
        cells=[
            # s1 ranks first but passes only what a vacuous set and one test say; s2 and s3 agree on both tests.
            cell("s1", "t1", ["test_a"]),
            cell("s1", "t2", []),
            cell("s1", "t3", ["test_z", "test_y"]),
            cell("s2", "t1", ["test_a", "test_b"]),
            cell("s2", "t2", ["test_c"], 1),
            cell("s2", "t3", []),
            cell("s3", "t1", ["test_a", "test_b"]),
            cell("s3", "t2", ["test_c"], 1),
            cell("s3", "t3", []),
            cell("s4", "t1", []),
            cell("s4", "t2", []),
            cell("s4", "t3", []),
        ],
    )
    agreed = most_agreed(matrix, matrix.solutions)
    assert agreed is not None and (agreed.solution, agreed.group, agreed.tests_passed) == ("s2", 2, 3)
    assert most_agreed(matrix, ["s4"]) is None  # no deciding test passes it
    # t1 splits the solutions three ways and s2 passes it whole; t2 splits them two ways.
    assert best_separating(matrix, "s2") == "t1"
    assert best_separating(matrix.model_copy(update={"vacuous": ["t1", "t2", "t3"]}), "s2") is None


def council(role: str, answers: dict[str, str]) -> CouncilResult:
    proposals = [
        Proposal(role=role, agent_id=a, round=0, content=c, temperature=0.7, seed=i, score=5.0 - i)
        for i, (a, c) in enumerate(answers.items())
    ]
    return CouncilResult(
        role=role,
        expected_agents=len(proposals),
        proposals=proposals,
        reviews=[],
        calls=[],
        selection=Selection(winner=None, method="score", rationale="-"),
        started_at=0,
        finished_at=1,
    )


def test_execution_selection_across_councils_chooses_the_agreed_solution_and_the_separating_tests():
    dev = council("DEV", {"agent-dev-001": BAD, "agent-dev-002": GOOD, "agent-dev-003": GOOD})
    qa = council(
        "QA",
        {
            "agent-qa-001": "```python\ndef test_is_none():\n    assert add(1, 2) is None\n```",  # vacuous
            "agent-qa-002": "no code at all",
            "agent-qa-003": "```python\n" + TESTS + "```",
        },
    )
    request = code_request(roles=["DEV", "QA"], selection="execution")
    runner = MarkerRunner()
    councils, matrix = asyncio.run(
        cross_execute(request, [dev, qa], runner, deadline_at=time.time() + 60, clock=time.time)
    )
    assert matrix is not None and matrix.vacuous == ["agent-qa-001"] and list(matrix.unusable) == ["agent-qa-002"]
    assert len(matrix.cells) == 3 * 1  # only the deciding set is run against each solution
    by_role = {c.role: c for c in councils}
    assert by_role["DEV"].selection.winner == "agent-dev-002" and by_role["DEV"].selection.method == "execution"
    assert by_role["QA"].selection.winner == "agent-qa-003" and by_role["QA"].selection.asked == "execution"
    assert sum(p.is_winner for p in by_role["DEV"].proposals) == 1
    outcome = deliberation_outcome(request, councils, 1000.0, {}, matrix)
    assert outcome.pass_matrix == matrix and outcome.executions == {"passed": 2, "failed": 1}
