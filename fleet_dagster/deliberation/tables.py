"""Council results as tables: what the asset stores and shows."""

import json
from typing import Any

import pandas as pd

from fleet_dagster.core.records import CouncilResult

PROPOSAL_COLUMNS = [
    "role",
    "agent_id",
    "round",
    "is_winner",
    "score",
    "peer_score",
    "coverage",
    "checks",
    "answer",
    "flags",
    "tokens",
    "latency_ms",
    "error",
    "reviews_received",
    "reviews_unparsed",
    "temperature",
    "seed",
    "content",
]


def proposals_frame(councils: list[CouncilResult]) -> pd.DataFrame:
    rows = []
    for council in councils:
        for proposal in council.proposals:
            received = [r for r in council.reviews if r.author == proposal.agent_id]
            rows.append(
                {
                    **proposal.model_dump(include=set(PROPOSAL_COLUMNS)),
                    "reviews_received": len(received),
                    "reviews_unparsed": sum(not r.parsed for r in received),
                }
            )
    return pd.DataFrame(rows, columns=PROPOSAL_COLUMNS)


def winners_markdown(councils: list[CouncilResult]) -> str:
    lines = ["| role | winner | score | why |", "|---|---|---|---|"]
    for council in councils:
        winner = council.winner
        if winner is None:
            lines.append(f"| {council.role} | — | — | {council.selection.rationale} |")
        else:
            rationale = council.selection.rationale.replace("|", "\\|")  # quotes answers: a | would split the row
            lines.append(f"| {council.role} | {winner.agent_id} | {winner.score:.2f} | {rationale} |")
    return "\n".join(lines)


def winning_proposals_markdown(councils: list[CouncilResult]) -> str:
    """Each role's winning proposal in full, under why it won: what the asset page shows to read."""
    sections = []
    for council in councils:
        winner = council.winner
        if winner is None:
            sections.append(f"## {council.role}: no winner\n\n{council.selection.rationale}")
            continue
        score = "unscored" if winner.score is None else f"score {winner.score:.2f}"
        sections.append(
            f"## {council.role}: {winner.agent_id} ({score}, by {council.selection.method})\n\n"
            f"> {council.selection.rationale}\n\n{winner.content or ''}"
        )
    return "\n\n---\n\n".join(sections)


def results_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(frame.to_json(orient="records"))
