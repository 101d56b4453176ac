"""What a deliberation produces: agent calls, reviews, proposals, council results."""

from typing import Any, Literal

from pydantic import BaseModel, Field

from fleet_dagster.core.execution import ExecutionResult

Phase = Literal["propose", "review", "revise", "select"]
# Who reviews whom: ring, each agent the next one's proposal; all, every other one's.
ReviewMode = Literal["ring", "all"]
# How a council's winner is chosen: best score, the architect among the top k, the most frequent final answer (each
# vote counted once, or weighted by its calibrated confidence), or
# (a code task) by running the solutions against the tests the councils wrote (core/cross_execution.py).
SelectionMethod = Literal["score", "architect", "vote", "weighted-vote", "execution"]


# Less time than this left before the deadline: a call is not worth sending. A council makes none; a caller waits
# for a slot at the endpoint only until this much is left.
MIN_CALL_S = 0.1


class ChatRequest(BaseModel):
    """One agent call, as the LLM adapter receives it."""

    deliberation_id: str
    agent_id: str
    role: str
    phase: Phase
    round: int
    model: str
    messages: list[dict[str, str]]
    temperature: float
    max_tokens: int
    seed: int
    timeout_s: float
    json_schema: dict[str, Any] | None = None
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    repetition_penalty: float | None = None
    # The deliberation's deadline (epoch s): waiting for a slot at the endpoint counts against it, not timeout_s.
    deadline_at: float | None = None
    traceparent: str | None = None  # this call's span in the deliberation's trace (see core/trace.py)
    replay: bool = True  # an answer stored before may answer it (the request's replay_answers)
    priority: int = 0  # its deliberation's rank (core/admission.py): the higher, the earlier it gets a slot


class ChatResult(BaseModel):
    content: str | None = None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    first_token_ms: float | None = None
    model: str = ""
    queue_ms: float = 0.0  # waiting for a slot at the endpoint, before the call was sent
    replayed: bool = False  # answered from the response store: no call was made
    # The endpoint could not answer (connection refused or reset, HTTP 5xx): what trips its circuit.
    endpoint_fault: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and self.content is not None

    def stored_form(self) -> str | None:
        """What a response store keeps: answers only (a failure is worth asking again), and only what a
        replay needs: the answer, its cost and the model that gave it."""
        return self.model_dump_json(include=STORED_RESULT_FIELDS) if self.ok else None


STORED_RESULT_FIELDS = {"content", "prompt_tokens", "completion_tokens", "model", "first_token_ms"}


class AgentCall(BaseModel):
    agent_id: str
    role: str
    phase: Phase
    round: int
    target_agent_id: str | None = None
    ok: bool
    error: str | None = None
    tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    first_token_ms: float | None = None
    model: str = ""
    queue_ms: float = 0.0
    replayed: bool = False
    traceparent: str | None = None
    # A code task's solution in this call's answer, run against the request's tests.
    execution: ExecutionResult | None = None


class Review(BaseModel):
    reviewer: str
    author: str
    round: int
    parsed: bool
    scores: dict[str, float] = Field(default_factory=dict)
    strengths: list[str] = Field(default_factory=list)
    weaknesses: list[str] = Field(default_factory=list)
    suggestions: list[str] = Field(default_factory=list)
    parse_error: str | None = None
    raw: str = ""

    @property
    def mean_score(self) -> float | None:
        return sum(self.scores.values()) / len(self.scores) if self.parsed and self.scores else None


class CheckResult(BaseModel):
    language: str
    passed: bool
    error: str | None = None


class Proposal(BaseModel):
    role: str
    agent_id: str
    round: int
    content: str | None = None
    error: str | None = None
    temperature: float
    seed: int
    model: str = ""  # the model its agent calls (core/agent_mix.py)
    tokens: int = 0
    latency_ms: float = 0.0
    peer_score: float | None = None
    coverage: float | None = None
    checks: float | None = None
    # A code task's solution run against the request's tests, after its last version (propose or revise).
    execution: ExecutionResult | None = None
    score: float | None = None
    addressed: list[str] = Field(default_factory=list)
    missed: list[str] = Field(default_factory=list)
    check_results: list[CheckResult] = Field(default_factory=list)
    # Degenerate text ("empty: ...", "loop: ...", "echo: ..."): never the winner while an unflagged one exists.
    flags: list[str] = Field(default_factory=list)
    answer: str | None = None  # its final answer (an `Answer:` line or JSON field), normalized; what votes count
    confidence: float | None = None  # how sure its agent says it is of that answer, 0..1 (a `Confidence:` line)
    is_winner: bool = False


class Selection(BaseModel):
    winner: str | None
    method: SelectionMethod  # what decided
    rationale: str
    # What the request asked for (set by the council), and why that did not decide where `method` differs.
    asked: SelectionMethod | None = None
    fallback_reason: str | None = None
    # By vote: each final answer's count among the proposals that could win, and the answer that won.
    votes: dict[str, int] = Field(default_factory=dict)
    # By weighted vote: each final answer's summed calibrated confidence.
    weighted_votes: dict[str, float] = Field(default_factory=dict)
    answer: str | None = None
    # The architect's finalists in the (shuffled) order it saw them, labelled A, B, ... in that order.
    candidate_order: list[str] = Field(default_factory=list)


class CouncilResult(BaseModel):
    role: str
    expected_agents: int
    proposals: list[Proposal]
    reviews: list[Review]
    calls: list[AgentCall]
    selection: Selection
    timed_out: bool = False
    error: str | None = None
    # Seeds the order of reviews in "all" mode (seed + round) and of the architect's finalists.
    judging_seed: int | None = None
    # Calls not made because the deliberation's token budget would have been passed.
    budget_exhausted: bool = False
    calls_not_made: int = 0
    # Why the council skipped its remaining rounds (its agents agreed), and the calls that saved.
    early_stop: str | None = None
    calls_saved: int = 0
    started_at: float
    finished_at: float

    @property
    def winner(self) -> Proposal | None:
        return next((p for p in self.proposals if p.agent_id == self.selection.winner), None)

    @property
    def proposals_done(self) -> int:
        return sum(1 for p in self.proposals if p.content is not None)

    @property
    def scored_proposals(self) -> list[Proposal]:
        return [p for p in self.proposals if p.score is not None]
