"""What a council does differently for a code task: the prompts of a role that writes code, and the runs of
its solutions against the request's tests (after each version: propose, then every revision)."""

from collections.abc import Callable

from fleet_dagster.core.code_task import no_code, run_before_deadline, written_solution
from fleet_dagster.core.execution import CodeRunner, ExecutionResult
from fleet_dagster.core.profiles import RoleProfile
from fleet_dagster.core.prompts import chat_messages
from fleet_dagster.core.records import Proposal, Review
from fleet_dagster.core.request import DeliberationRequest


class CodeWork:
    def __init__(
        self,
        request: DeliberationRequest,
        profile: RoleProfile,
        runner: CodeRunner | None,
        *,
        deadline_at: float,
        clock: Callable[[], float],
    ) -> None:
        self.request = request
        self.profile = profile
        self.runner = runner
        self.deadline_at = deadline_at
        self.clock = clock
        # What this council writes: a solution, tests, or (a text task, or a role that writes no code) text.
        self.writes = profile.code_work if request.is_code_task else None

    @property
    def runs_solutions(self) -> bool:
        """Whether this council's proposals are run against the request's tests."""
        return self.writes == "solution" and bool(self.request.tests.strip())

    def _code_messages(self, template: str, **values) -> list[dict[str, str]]:
        request = self.request
        return chat_messages(
            self.profile.code_system_prompt or self.profile.system_prompt,
            template,
            task=request.task,
            requirements=request.requirements,
            language=request.language,
            entry_point=request.entry_point,
            module=request.module,
            **values,
        )

    def propose_messages(self) -> list[dict[str, str]]:
        if self.writes == "solution":
            # Not the tests, nor how they import it: shown them, the embedded model copies them instead of
            # writing the function (README, "Code tasks"). Its revisions see how its code fared against them.
            return self._code_messages("propose_solution")
        return self._code_messages("propose_tests")

    def revise_messages(self, proposal: Proposal, reviews: list[Review], round_: int) -> list[dict[str, str]]:
        """The revision of code sees its run against the tests (execution feedback) next to the reviews."""
        return self._code_messages(
            "revise_code", proposal=proposal.content, reviews=reviews, round=round_, execution=proposal.execution
        )

    async def run_answer(self, answer: str) -> ExecutionResult:
        """The solution in an answer run against the request's tests; what cannot run says why in its result."""
        request = self.request
        code = written_solution(answer, request.entry_point or "", request.language, request.module)
        if code is None:
            return no_code(f"no {self.request.language} code defines {self.request.entry_point}")
        return await run_before_deadline(
            self.runner, self.request, code, self.request.tests, deadline_at=self.deadline_at, clock=self.clock
        )
