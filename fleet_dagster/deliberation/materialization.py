"""A deliberation's outcome as its materialization's metadata: each field of the outcome under its own name
(numbers and text as they are, for the UI to plot and show; the rest as JSON), read back by status, retention
and the outbox, plus the tables the asset page shows and the final event."""

from typing import TYPE_CHECKING, Any, NamedTuple

import dagster as dg
from pydantic import BaseModel

from fleet_dagster.core.outcome import DeliberationOutcome
from fleet_dagster.deliberation.metadata_models import model_metadata
from fleet_dagster.deliberation.tables import proposals_frame, winners_markdown, winning_proposals_markdown
from fleet_dagster.nats_bridge.event_builders import FINAL_EVENT_METADATA_KEY, final_event, stored_event

if TYPE_CHECKING:
    import pandas as pd


class Collected(NamedTuple):
    """What the collect step makes of an outcome: the asset's value, its metadata, and the final event."""

    frame: "pd.DataFrame"
    metadata: dict[str, Any]
    final: tuple[str, BaseModel, str]


def collected(outcome: DeliberationOutcome, run_id: str) -> Collected:
    frame = proposals_frame(outcome)
    final = final_event(outcome, run_id)
    return Collected(frame, deliberation_metadata(outcome, frame, final), final)


def deliberation_metadata(
    outcome: DeliberationOutcome, frame: "pd.DataFrame", final: tuple[str, BaseModel, str]
) -> dict[str, Any]:
    table = frame.drop(columns=["content"]).assign(content=frame["content"].fillna("").str.slice(0, 200))
    return {
        **model_metadata(outcome),
        "winners_table": dg.MetadataValue.md(winners_markdown(outcome)),
        "winning_proposals": dg.MetadataValue.md(winning_proposals_markdown(outcome)),
        "proposals": dg.MetadataValue.md(table.to_markdown(index=False)),
        # What `fleet-dagster republish` publishes again by hand (the outbox delivers it through outages).
        FINAL_EVENT_METADATA_KEY: dg.MetadataValue.json(stored_event(final)),
    }
