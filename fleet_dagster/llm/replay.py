"""A stored deliberation scored again from the response store alone: `fleet-dagster replay ID`.

Its councils run as they ran (same prompts, seeds and order of phases) against the answers the model
gave; a call that never finished is reported missing, never made. Scoring and selection run anew, so a
change to them can be tried on real deliberations without paying for a single call.
"""

import asyncio
import time

from fleet_dagster.core.budget import bounded_prompt_tokens
from fleet_dagster.core.council import council_for, run_council
from fleet_dagster.core.records import ChatRequest, ChatResult, CouncilResult
from fleet_dagster.llm.prepared_call import prepare_call
from fleet_dagster.llm.response_store import ReplayDocument, ResponseStore

NOT_STORED = "not in the response store (the call never finished, or its answer expired)"


class StoredAnswers:
    """A ChatModel that only answers from the store."""

    def __init__(self, store: ResponseStore, document: ReplayDocument) -> None:
        self._store = store
        self._endpoint = document.endpoint

    async def complete(self, request: ChatRequest) -> ChatResult:
        stored = await self._store.get(prepare_call(self._endpoint, request).key)
        return stored.model_copy(update={"replayed": True}) if stored else ChatResult(error=NOT_STORED)

    async def prompt_tokens(self, request: ChatRequest) -> int:
        return bounded_prompt_tokens(request.messages)  # a replay has no budget to ask for


async def replay_deliberation(
    store: ResponseStore, deliberation_id: str
) -> tuple[ReplayDocument, list[CouncilResult]] | None:
    """The stored request and every role's council replayed, in the request's order; None when not stored."""
    stored = await store.deliberation(deliberation_id)
    if stored is None:
        return None
    document = ReplayDocument.model_validate_json(stored)
    answers = StoredAnswers(store, document)
    deadline_at = time.time() + 3600.0  # stored answers come at once: the deadline is never what stops a replay
    councils = [
        council_for(document.request, role, answers, deadline_at=deadline_at, call_timeout_s=60.0)
        for role in document.request.roles
    ]
    return document, list(await asyncio.gather(*(run_council(council) for council in councils)))
