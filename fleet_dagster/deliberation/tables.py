"""A deliberation's outcome as tables: the asset's value and what its page shows."""

from typing import TYPE_CHECKING

from fleet_dagster.core.outcome import DeliberationOutcome, ProposalResult

if TYPE_CHECKING:
    import pandas as pd

PROPOSAL_COLUMNS = list(ProposalResult.model_fields)


def proposals_frame(outcome: DeliberationOutcome) -> "pd.DataFrame":
    # pandas is imported by the step that makes the value, not by every process that loads the definitions.
    import pandas as pd

    return pd.DataFrame([result.model_dump() for result in outcome.results], columns=PROPOSAL_COLUMNS)


def winners_markdown(outcome: DeliberationOutcome) -> str:
    lines = ["| role | winner | score | why |", "|---|---|---|---|"]
    for role in outcome.roles:
        winner = outcome.winners.get(role)
        if winner is None:
            lines.append(f"| {role} | — | — | {_cell(_no_winner(outcome, role))} |")
        else:
            score = "—" if winner.score is None else f"{winner.score:.2f}"
            lines.append(f"| {role} | {winner.agent_id} | {score} | {_cell(winner.rationale)} |")
    return "\n".join(lines)


def winning_proposals_markdown(outcome: DeliberationOutcome) -> str:
    """Each role's winning proposal in full, under why it won: what the asset page shows to read."""
    sections = []
    for role in outcome.roles:
        winner = outcome.winners.get(role)
        if winner is None:
            sections.append(f"## {role}: no winner\n\n{_no_winner(outcome, role)}")
            continue
        content = outcome.winning_content(role)
        score = "unscored" if winner.score is None else f"score {winner.score:.2f}"
        sections.append(
            f"## {role}: {winner.agent_id} ({score}, by {winner.decided_by})\n\n> {winner.rationale}\n\n{content or ''}"
        )
    return "\n\n---\n\n".join(sections)


def _no_winner(outcome: DeliberationOutcome, role: str) -> str:
    return outcome.no_winner.get(role, "no council result")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")  # rationales quote answers: a | would split the row
