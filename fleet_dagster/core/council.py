"""One role's council: propose, review and revise in rounds, score, select."""

import asyncio
import time
import zlib
from collections.abc import Callable

from fleet_dagster.core.admission import PRIORITY_RANK
from fleet_dagster.core.agent_mix import council_agents
from fleet_dagster.core.answers import final_answer
from fleet_dagster.core.budget import TokenBudget, call_key
from fleet_dagster.core.chat_model import ChatModel
from fleet_dagster.core.code_work import CodeWork
from fleet_dagster.core.execution import CodeRunner, ExecutionResult
from fleet_dagster.core.profiles import RoleProfile, load_profile
from fleet_dagster.core.prompts import chat_messages
from fleet_dagster.core.records import (
    MIN_CALL_S,
    AgentCall,
    ChatRequest,
    ChatResult,
    CouncilResult,
    Phase,
    Proposal,
    Review,
    Selection,
)
from fleet_dagster.core.request import DeliberationRequest, agent_id
from fleet_dagster.core.reviews import parse_review, redact_ids, review_assignments, review_json_schema
from fleet_dagster.core.scoring import coverage_items, score_proposal
from fleet_dagster.core.selection import (
    ARCHITECT_MAX_TOKENS,
    SELECT_FROM_PROPOSALS,
    architect_json_schema,
    blind_order,
    candidate_labels,
    eligible,
    fell_back,
    parse_architect_choice,
    select_by_score,
)
from fleet_dagster.core.trace import child_traceparent


def agent_seed(deliberation_id: str, role: str, index: int) -> int:
    return zlib.crc32(f"{deliberation_id}/{role}/{index}".encode()) & 0x7FFFFFFF


def judging_seed(deliberation_id: str, role: str) -> int:
    """Seeds the order of reviews and of the architect's finalists: recorded, so a judgement can be redone."""
    return zlib.crc32(f"{deliberation_id}/{role}/judging".encode()) & 0x7FFFFFFF


class Council:
    """Holds the council's state as it goes, so that a deadline keeps whatever finished."""

    def __init__(
        self,
        request: DeliberationRequest,
        profile: RoleProfile,
        chat: ChatModel,
        *,
        deadline_at: float,
        call_timeout_s: float,
        architect: RoleProfile | None = None,
        budget: TokenBudget | None = None,
        on_call: Callable[[AgentCall], None] | None = None,
        code_runner: CodeRunner | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.request = request
        self.profile = profile
        self.role = profile.role
        self.chat = chat
        self.deadline_at = deadline_at
        self.call_timeout_s = call_timeout_s
        self.architect = architect or profile
        self.budget = budget
        self.on_call = on_call  # sees each call once recorded (the Ray adapter counts it in metrics)
        self.clock = clock
        self.code = CodeWork(request, profile, code_runner, deadline_at=deadline_at, clock=clock)
        self.agent_ids = [agent_id(self.role, i) for i in range(request.agents_per_role)]
        self.agents = {spec.agent_id: spec for spec in council_agents(profile, self.agent_ids, request.agent_models)}
        self.proposals: dict[str, Proposal] = {
            aid: Proposal(
                role=self.role,
                agent_id=aid,
                round=0,
                temperature=self.agents[aid].temperature,
                seed=agent_seed(request.deliberation_id, self.role, i),
                model=self.agents[aid].model,
            )
            for i, aid in enumerate(self.agent_ids)
        }
        self.judging_seed = judging_seed(request.deliberation_id, self.role)
        self.reviews: list[Review] = []
        self.calls: list[AgentCall] = []
        self.selection: Selection | None = None
        self.deadline_hit = False
        self.calls_not_made = 0  # refused by the token budget
        self.early_stop: str | None = None
        self.calls_saved = 0
        self.phase = "pending"
        self.phase_total = 0
        self.phase_done = 0
        self.started_at = clock()

    # progress -------------------------------------------------------------------------------------
    @property
    def proposals_done(self) -> int:
        return sum(1 for p in self.proposals.values() if p.content is not None)

    def progress(self) -> dict:
        return {
            "phase": self.phase,
            "done": self.phase_done,
            "total": self.phase_total,
            "proposals": self.proposals_done,
            "agents": len(self.agent_ids),
        }

    # calls ----------------------------------------------------------------------------------------
    async def _call(
        self,
        aid: str,
        phase: Phase,
        round_: int,
        messages: list[dict[str, str]],
        *,
        target: str | None = None,
        json_schema: dict | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        model: str | None = None,
        run_solution: bool = False,
    ) -> ChatResult:
        """Makes the call if the token budget lets it (see core/budget.py) and records it; `run_solution`: its
        answer's solution is run against the request's tests first, and the run recorded with the call."""
        request = self._chat_request(
            aid, phase, round_, messages, json_schema, temperature, max_tokens or self.profile.max_tokens, model
        )
        if request is None:
            result = ChatResult(error="deadline reached before the call was made")
        else:
            budgeted = await self._budgeted(request, target)
            if budgeted is None:
                self.calls_not_made += 1
                self.phase_done += 1
                limit = self.request.max_total_tokens
                return ChatResult(error=f"not made: it could pass the deliberation's budget of {limit} tokens")
            result = budgeted
        execution = await self.code.run_answer(result.content or "") if run_solution and result.ok else None
        if request is not None and not result.model:  # unanswered: the model it was sent to
            result = result.model_copy(update={"model": request.model})
        self._record(aid, phase, round_, target, result, request.traceparent if request else None, execution)
        return result

    async def _budgeted(self, request: ChatRequest, target: str | None) -> ChatResult | None:
        """The call's answer, or None when the token budget does not let it be made."""
        if self.budget is None:
            return await self.chat.complete(request)
        key = call_key(request, target)
        estimate = await self.chat.prompt_tokens(request) + request.max_tokens
        if not await self.budget.reserve(key, estimate):
            return None
        # Cancelled here (the deadline), the call keeps its hold: its agent caller may still finish it.
        result = await self.chat.complete(request)
        # An answer whose server reported no usage costs what was held for it.
        used = result.prompt_tokens + result.completion_tokens or (estimate if result.ok else 0)
        await self.budget.settle(key, used, result.replayed)
        return result

    def _chat_request(
        self,
        aid: str,
        phase: Phase,
        round_: int,
        messages: list[dict[str, str]],
        json_schema: dict | None,
        temperature: float | None,
        max_tokens: int,
        model: str | None,
    ) -> ChatRequest | None:
        """The call as the model receives it; None when the deadline leaves no time to make it."""
        remaining = self.deadline_at - self.clock()
        if remaining < MIN_CALL_S:
            self.deadline_hit = True
            return None
        proposal = self.proposals[aid]
        sampling = self.architect if phase == "select" else self.profile
        return ChatRequest(
            deliberation_id=self.request.deliberation_id,
            agent_id=aid,
            role=self.role,
            phase=phase,
            round=round_,
            model=model or self.agents[aid].model,
            messages=messages,
            temperature=proposal.temperature if temperature is None else temperature,
            max_tokens=max_tokens,
            seed=proposal.seed + round_,
            timeout_s=min(self.call_timeout_s, remaining),
            json_schema=json_schema,
            frequency_penalty=sampling.frequency_penalty,
            presence_penalty=sampling.presence_penalty,
            repetition_penalty=sampling.repetition_penalty,
            deadline_at=self.deadline_at,
            traceparent=child_traceparent(self.request.traceparent) if self.request.traceparent else None,
            replay=self.request.replay_answers,
            priority=PRIORITY_RANK[self.request.priority],
        )

    def _record(
        self,
        aid: str,
        phase: Phase,
        round_: int,
        target: str | None,
        result: ChatResult,
        traceparent: str | None,
        execution: ExecutionResult | None = None,
    ) -> None:
        tokens = result.prompt_tokens + result.completion_tokens
        call = AgentCall(
            agent_id=aid,
            role=self.role,
            phase=phase,
            round=round_,
            target_agent_id=target,
            ok=result.ok,
            error=result.error,
            tokens=tokens,
            completion_tokens=result.completion_tokens,
            latency_ms=result.latency_ms,
            first_token_ms=result.first_token_ms,
            model=result.model,
            queue_ms=result.queue_ms,
            replayed=result.replayed,
            traceparent=traceparent,
            execution=execution,
        )
        self.calls.append(call)
        if self.on_call is not None:
            self.on_call(call)
        # Read again after the await: the agent's other calls (its reviews in "all" mode) may have added theirs.
        current = self.proposals[aid]
        update: dict[str, object] = {
            "tokens": current.tokens + tokens,
            "latency_ms": current.latency_ms + result.latency_ms,
        }
        if execution is not None:  # the run of the version this call wrote
            update["execution"] = execution
        self.proposals[aid] = current.model_copy(update=update)
        self.phase_done += 1

    def _messages(self, aid: str, template: str, **values) -> list[dict[str, str]]:
        """Every phase's prompt sees the agent's system prompt (its kind's, else the role's), the task and its
        requirements."""
        return chat_messages(
            self.agents[aid].system_prompt,
            template,
            task=self.request.task,
            requirements=self.request.requirements,
            **values,
        )

    @property
    def asks_confidence(self) -> bool:
        """A weighted vote weighs each answer by the confidence its agent states: its proposals are asked for one."""
        return self.request.selection == "weighted-vote"

    def _start_phase(self, name: str, total: int) -> None:
        self.phase, self.phase_total, self.phase_done = name, total, 0

    def _active(self) -> list[str]:
        return [aid for aid in self.agent_ids if self.proposals[aid].content is not None]

    # phases ---------------------------------------------------------------------------------------
    async def run(self) -> None:
        await self._propose()
        for round_ in range(1, self.request.rounds + 1):
            if agreed := self._agreement():
                self._stop_early(agreed, round_)
                break
            reviews = await self._review(round_)
            if not await self._revise(round_, reviews) and round_ < self.request.rounds:
                self._stop_early(f"round {round_} changed no proposal", round_ + 1)
                break
        if self.request.selection == "architect":
            await self._architect_select()
        self.phase = "done"

    def _agreement(self) -> str | None:
        """Why another round would change nothing: every proposal states the same final answer, or (a code task)
        every solution passes every test of the request."""
        runs = [self.proposals[aid].execution for aid in self._active()]
        if self.code.runs_solutions and runs and all(run is not None and run.verdict == "passed" for run in runs):
            return "every solution passes the request's tests"
        answers = {final_answer(self.proposals[aid].content) for aid in self._active()}
        if len(self._active()) >= 2 and len(answers) == 1 and None not in answers:
            return f"the agents agree on the final answer {answers.pop()!r}"
        return None

    def _stop_early(self, reason: str, from_round: int) -> None:
        """Skips rounds from_round.. to the last, counting the reviews and revisions each would have made."""
        active = self._active()
        per_round = len(self._review_pairs(active, seed=0)) + len(active)
        self.early_stop = f"{reason}: rounds {from_round}-{self.request.rounds} skipped"
        self.calls_saved = per_round * (self.request.rounds - from_round + 1)

    async def _propose(self) -> None:
        self._start_phase("propose", len(self.agent_ids))

        async def propose(aid: str) -> None:
            if self.code.writes:
                messages = self.code.propose_messages()
            else:
                messages = self._messages(
                    aid,
                    "propose",
                    role=self.role,
                    agent_id=aid,
                    rubric=self.request.rubric,
                    ask_confidence=self.asks_confidence,
                )
            result = await self._call(aid, "propose", 0, messages, run_solution=self.code.runs_solutions)
            update = {"content": result.content} if result.ok else {"error": f"propose: {result.error}"}
            self.proposals[aid] = self.proposals[aid].model_copy(update=update)

        await asyncio.gather(*(propose(aid) for aid in self.agent_ids))

    def _review_pairs(self, authors: list[str], seed: int) -> list[tuple[str, str]]:
        """Who reviews whom; between agents of different models only, when the request says so."""
        models = {aid: self.agents[aid].model for aid in authors} if self.request.cross_model_reviews else None
        return review_assignments(authors, self.request.review_mode, seed=seed, models=models)

    async def _review(self, round_: int) -> list[Review]:
        pairs = self._review_pairs(self._active(), seed=self.judging_seed + round_)
        self._start_phase(f"review r{round_}", len(pairs))
        schema = review_json_schema(self.profile.rubric, self.profile.max_tokens)

        async def review(reviewer: str, author: str) -> Review | None:
            messages = self._messages(
                reviewer,
                "review",
                proposal=redact_ids(self.proposals[author].content or "", self.agent_ids),
                reviewer_id=reviewer,
                criteria=self.profile.rubric,
            )
            result = await self._call(reviewer, "review", round_, messages, target=author, json_schema=schema)
            if not result.ok:
                return None
            return parse_review(
                result.content or "", self.profile.rubric, reviewer=reviewer, author=author, round=round_
            )

        reviews = [r for r in await asyncio.gather(*(review(a, b) for a, b in pairs)) if r is not None]
        self.reviews.extend(reviews)
        return reviews

    async def _revise(self, round_: int, reviews: list[Review]) -> bool:
        """Whether a revision changed its proposal, or none could be made (another round may then help)."""
        authors = self._active()
        self._start_phase(f"revise r{round_}", len(authors))
        before = {aid: " ".join((self.proposals[aid].content or "").split()) for aid in authors}

        async def revise(aid: str) -> bool:
            received = [r for r in reviews if r.author == aid]
            if self.code.writes:
                messages = self.code.revise_messages(self.proposals[aid], received, round_)
            else:
                messages = self._messages(
                    aid,
                    "revise",
                    proposal=self.proposals[aid].content,
                    reviews=received,
                    round=round_,
                    ask_confidence=self.asks_confidence,
                )
            result = await self._call(aid, "revise", round_, messages, run_solution=self.code.runs_solutions)
            if result.ok and (result.content or "").strip():
                self.proposals[aid] = self.proposals[aid].model_copy(
                    update={"content": result.content, "round": round_}
                )
                return True
            # The author keeps its previous version; the failure stays visible on its row.
            reason = result.error or "empty revision"
            self.proposals[aid] = self.proposals[aid].model_copy(update={"error": f"revise r{round_}: {reason}"})
            return False

        revised = await asyncio.gather(*(revise(aid) for aid in authors))
        changed = [
            aid
            for aid, ok in zip(authors, revised, strict=True)
            if ok and before[aid] != " ".join((self.proposals[aid].content or "").split())
        ]
        return bool(changed) or not any(revised)

    async def _architect_select(self) -> None:
        finalists = eligible(await asyncio.to_thread(self.scored))[: self.request.select_top_k]
        if len(finalists) < 2:
            reason = f"{len(finalists)} proposal{'' if len(finalists) == 1 else 's'} could win: nothing to choose among"
            self.selection = fell_back(select_by_score(finalists), reason)
            return
        self._start_phase("select", 1)
        shown = blind_order(finalists, self.judging_seed)
        candidates = [
            (label, redact_ids(c.content or "", self.agent_ids))
            for label, c in zip(candidate_labels(len(shown)), shown, strict=True)
        ]
        messages = chat_messages(
            self.architect.system_prompt, "select", task=self.request.task, role=self.role, candidates=candidates
        )
        result = await self._call(
            finalists[0].agent_id,
            "select",
            self.request.rounds,
            messages,
            temperature=0.0,
            max_tokens=ARCHITECT_MAX_TOKENS,
            json_schema=architect_json_schema(shown),
            model=self.architect.model,
        )
        fallback = select_by_score(finalists)
        choice = parse_architect_choice(result.content or "", shown) if result.ok else None
        if choice is None:
            choice = fell_back(fallback, f"architect: {result.error or 'its answer named no finalist'}")
        self.selection = choice

    # results --------------------------------------------------------------------------------------
    def scored(self) -> list[Proposal]:
        last_round = max((r.round for r in self.reviews), default=None)
        final_reviews = [r for r in self.reviews if r.round == last_round]
        items = coverage_items(self.request.task, self.request.requirements, self.request.rubric)
        # Code restates its spec (the signature, the names): a role writing code is judged by its code (the checks,
        # the tests), and copying the prompt is no echo there.
        system_prompts = dict.fromkeys(spec.system_prompt for spec in self.agents.values())
        prompt = [*system_prompts, self.request.task, *self.request.requirements, self.request.rubric]
        sources = [] if self.code.writes else prompt
        return [
            score_proposal(p, [r for r in final_reviews if r.author == p.agent_id], items, sources)
            for p in self.proposals.values()
        ]

    def result(self, *, timed_out: bool = False, error: str | None = None) -> CouncilResult:
        proposals = self.scored()
        asked = self.request.selection
        selection = self.selection or SELECT_FROM_PROPOSALS.get(asked, select_by_score)(proposals)
        if selection.method != asked and selection.fallback_reason is None:  # the architect's step never came
            selection = fell_back(selection, f"the council ended before the {asked} step")
        proposals = [p.model_copy(update={"is_winner": p.agent_id == selection.winner}) for p in proposals]
        return self._result(proposals, selection, timed_out=timed_out, error=error)

    def unscored_result(self, *, timed_out: bool, error: str) -> CouncilResult:
        """What is kept when the result cannot be built: every call, review and proposal, unscored, no winner."""
        reason = f"no result could be built: {error}"
        selection = Selection(winner=None, method="score", rationale=reason, fallback_reason=reason)
        return self._result(list(self.proposals.values()), selection, timed_out=timed_out, error=error)

    def _result(
        self, proposals: list[Proposal], selection: Selection, *, timed_out: bool, error: str | None
    ) -> CouncilResult:
        return CouncilResult(
            role=self.role,
            expected_agents=len(self.agent_ids),
            proposals=proposals,
            reviews=list(self.reviews),
            calls=list(self.calls),
            selection=selection.model_copy(update={"asked": self.request.selection}),
            timed_out=timed_out or self.deadline_hit,
            error=error,
            judging_seed=self.judging_seed,
            budget_exhausted=self.calls_not_made > 0,
            calls_not_made=self.calls_not_made,
            early_stop=self.early_stop,
            calls_saved=self.calls_saved,
            started_at=self.started_at,
            finished_at=self.clock(),
        )


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc)[:300]}"  # a message may quote a whole (hostile) answer


def council_for(
    request: DeliberationRequest,
    role: str,
    chat: ChatModel,
    *,
    deadline_at: float,
    call_timeout_s: float,
    budget: TokenBudget | None = None,
    on_call: Callable[[AgentCall], None] | None = None,
    code_runner: CodeRunner | None = None,
) -> Council:
    """The role's council, with its profile and, when the request lets the architect pick, the architect's.
    `budget`: the deliberation's, shared with its other councils, when the request sets max_total_tokens."""
    architect = load_profile("ARCHITECT") if request.selection == "architect" else None
    return Council(
        request,
        load_profile(role),
        chat,
        deadline_at=deadline_at,
        call_timeout_s=call_timeout_s,
        architect=architect,
        budget=budget,
        on_call=on_call,
        code_runner=code_runner,
    )


async def run_council(council: Council) -> CouncilResult:
    """Runs a council to its end or its deadline, whichever comes first. Never raises: an unexpected failure (a
    bug, or scoring that breaks on some text) becomes the result's error, and what finished is kept."""
    timed_out, error = False, None
    try:
        await asyncio.wait_for(council.run(), timeout=max(0.0, council.deadline_at - council.clock()))
    except TimeoutError:
        timed_out = True
    except Exception as exc:  # noqa: BLE001 - run_council never raises: the failure becomes the result's error
        error = _describe(exc)
    try:
        # Scoring is CPU work over untrusted text: in a thread, the loop keeps serving the runner's other councils.
        return await asyncio.to_thread(council.result, timed_out=timed_out, error=error)
    except Exception as exc:  # noqa: BLE001 - scoring failed: the calls and reviews are still worth keeping
        failure = f"building the result failed: {_describe(exc)}"
        return council.unscored_result(timed_out=timed_out, error=f"{error}; {failure}" if error else failure)
