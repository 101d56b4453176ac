"""Council results as a table, winners and run figures: what the asset stores and shows."""

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


def winners(councils: list[CouncilResult]) -> dict[str, dict[str, Any]]:
    return {
        c.role: {
            "agent_id": c.winner.agent_id,
            "score": c.winner.score,
            "method": c.selection.method,
            "rationale": c.selection.rationale,
        }
        for c in councils
        if c.winner is not None
    }


def winners_markdown(councils: list[CouncilResult]) -> str:
    lines = ["| role | winner | score | why |", "|---|---|---|---|"]
    for council in councils:
        winner = council.winner
        if winner is None:
            lines.append(f"| {council.role} | — | — | {council.selection.rationale} |")
        else:
            lines.append(f"| {council.role} | {winner.agent_id} | {winner.score:.2f} | {council.selection.rationale} |")
    return "\n".join(lines)


def critical_path_ms(councils: list[CouncilResult]) -> float:
    """Longest chain of dependent calls: per council, the slowest call of each phase, summed."""
    longest = 0.0
    for council in councils:
        slowest: dict[tuple[str, int], float] = {}
        for call in council.calls:
            key = (call.phase, call.round)
            slowest[key] = max(slowest.get(key, 0.0), call.latency_ms)
        longest = max(longest, sum(slowest.values()))
    return longest


def results_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(frame.to_json(orient="records"))
