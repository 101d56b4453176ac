"""The token budget is a bound, on a real model server (the sim over HTTP): prompts full of digits, a server
that reports no usage, a server without a tokenizer. Councils run in this process, without Ray."""

import asyncio
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import openai
import pytest

from fleet_dagster.core.budget import LocalTokenBudget, TokenLedger, bounded_prompt_tokens
from fleet_dagster.core.council import council_for, run_council
from fleet_dagster.core.records import CouncilResult
from fleet_dagster.core.request import agent_id, parse_request
from fleet_dagster.llm.endpoint import LLMEndpoint
from fleet_dagster.llm.openai_chat import OpenAIChatModel
from fleet_dagster.llm.tokenizer import Tokenizer

pytestmark = pytest.mark.integration

ROLES = ["DEV", "QA"]
AGENTS = 3
BUDGET = 10_000  # a few calls of the digit-heavy task below (about 3,600 tokens each), not all of them
# Every answer as long as its max_tokens: a call costs all that was counted for it, so any undercount shows.
FULL_ANSWERS = {"output_tokens": 100_000}


def digits_task() -> str:
    """About 3,000 characters that tokenizers count a token a digit (3 characters a token is a third of it)."""
    rng = random.Random(7)
    numbers = " ".join(str(rng.randrange(10**9, 10**10)) for _ in range(250))
    return f"Add up these numbers and give the total: {numbers}"


def budgeted_deliberation(base_url: str, task: str, budget: int) -> tuple[list[CouncilResult], TokenLedger]:
    request = parse_request(
        {
            "task": task,
            "roles": ROLES,
            "agents_per_role": AGENTS,
            "rounds": 1,
            "max_total_tokens": budget,
            "deliberation_id": "budgeted",
        }
    )
    ledger = TokenLedger(budget)
    model = OpenAIChatModel(LLMEndpoint(base_url=base_url))
    councils = [
        council_for(
            request, role, model, deadline_at=time.time() + 120, call_timeout_s=30, budget=LocalTokenBudget(ledger)
        )
        for role in ROLES
    ]

    async def run() -> list[CouncilResult]:
        return list(await asyncio.gather(*(run_council(council) for council in councils)))

    return asyncio.run(run()), ledger


def spent(councils: list[CouncilResult]) -> int:
    return sum(call.tokens for council in councils for call in council.calls)


@pytest.mark.parametrize("tokenize", [True, False], ids=["served-tokenizer", "no-tokenizer"])
def test_digit_heavy_prompts_never_pass_the_budget(sim_llm_factory, tokenize):
    server = sim_llm_factory(latency_s=0.05, tokenize=tokenize, **FULL_ANSWERS)
    councils, ledger = budgeted_deliberation(server.base_url, digits_task(), BUDGET)

    assert sum(c.calls_not_made for c in councils) > 0  # the budget was reached...
    assert spent(councils) == ledger.used <= BUDGET  # ...and not passed, as the server counted the tokens
    assert ledger.held == 0
    if not tokenize:  # asked by the first proposals, all at once; every later call counted by the bound
        calls = sum(len(c.calls) + c.calls_not_made for c in councils)
        assert server.tokenize_requests == len(ROLES) * AGENTS < calls


def test_a_server_that_reports_no_usage_is_charged_what_its_tokenizer_counts(sim_llm_factory):
    agents = [agent_id(role, i) for role in ROLES for i in range(AGENTS)]
    server = sim_llm_factory(latency_s=0.05, faults=dict.fromkeys(agents, ["nousage"]), **FULL_ANSWERS)
    councils, ledger = budgeted_deliberation(server.base_url, digits_task(), BUDGET)

    calls = [call for council in councils for call in council.calls]
    assert calls and all(call.ok for call in calls)
    assert all(call.tokens > call.completion_tokens > 0 for call in calls)  # a prompt and an answer, each counted
    assert spent(councils) == ledger.used <= BUDGET
    assert sum(c.calls_not_made for c in councils) > 0


class _TokenizeAnswers(BaseHTTPRequestHandler):
    """A /tokenize that answers each request with the next of `answers` (status, body): what other servers say."""

    answers: list[tuple[int, bytes]] = []
    asked = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status, body = self.answers[min(type(self).asked, len(self.answers) - 1)]
        type(self).asked += 1
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, b'{"tokens": []}'),  # llama.cpp's answer to a body without "content"
        (200, b'{"count": "12"}'),
        (200, b'{"count": true}'),
        (200, b'{"count": -1}'),
        (200, b"[12]"),
        (404, b'{"error": "no route"}'),
        (422, b'{"detail": "unknown field"}'),
    ],
)
def test_a_server_that_cannot_count_is_bounded_and_not_asked_again(status, body):
    handler = type("Answers", (_TokenizeAnswers,), {"answers": [(status, body)], "asked": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        tokenizer = Tokenizer(lambda url: openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0))
        messages = [{"role": "user", "content": digits_task()}]

        async def count_twice() -> list[int]:
            return [await tokenizer.prompt_tokens(base_url, "m", messages) for _ in range(2)]

        assert asyncio.run(count_twice()) == [bounded_prompt_tokens(messages)] * 2
        assert handler.asked == 1
    finally:
        server.shutdown()
        server.server_close()
