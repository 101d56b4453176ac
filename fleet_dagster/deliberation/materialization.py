"""What a collected deliberation's materialization says: the metadata that status, retention, the run-failure
sensor and the UI read. Built here once, from what the councils returned."""

from collections.abc import Mapping
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import BaseModel

from fleet_dagster.core.cost import ModelPrice, calls_cost
from fleet_dagster.core.outcome import budget_summary, critical_path_ms, early_stops, failed_calls_summary, winners
from fleet_dagster.core.records import CouncilResult
from fleet_dagster.core.request import DeliberationRequest
from fleet_dagster.core.status import DeliberationStatus
from fleet_dagster.deliberation.tables import results_records, winners_markdown, winning_proposals_markdown
from fleet_dagster.nats_bridge.event_builders import FINAL_EVENT_METADATA_KEY, stored_event


def deliberation_metadata(
    request: DeliberationRequest,
    councils: list[CouncilResult],
    frame: pd.DataFrame,
    status: DeliberationStatus,
    wall_ms: float,
    final: tuple[str, BaseModel, str],
    prices: Mapping[str, ModelPrice],
) -> dict[str, Any]:
    """`frame`: the councils' proposals (tables.proposals_frame), the asset's value; `final`: the final event."""
    critical_ms = critical_path_ms(councils)
    calls = [call for c in councils for call in c.calls]
    table = frame.drop(columns=["content"]).assign(content=frame["content"].fillna("").str.slice(0, 200))
    cost = calls_cost(calls, prices)
    return {
        "status": status.value,
        "expected_count": request.expected_count,
        "current_count": sum(c.proposals_done for c in councils),
        "winners": dg.MetadataValue.md(winners_markdown(councils)),
        "winners_json": dg.MetadataValue.json(winners(councils)),
        "winning_proposals": dg.MetadataValue.md(winning_proposals_markdown(councils)),
        "proposals": dg.MetadataValue.md(table.to_markdown(index=False)),
        "results": dg.MetadataValue.json(results_records(frame)),
        "total_tokens": int(sum(call.tokens for call in calls)),
        "estimated_cost": cost["estimated_cost"],
        "cost": dg.MetadataValue.json(cost),
        "agent_calls": len(calls),
        "failed_calls": sum(not call.ok for call in calls),
        "replayed_calls": sum(call.replayed for call in calls),
        "queue_wait_max_s": round(max((call.queue_ms for call in calls), default=0.0) / 1000, 3),
        "unparsed_reviews": sum(not r.parsed for c in councils for r in c.reviews),
        "flagged_proposals": sum(bool(p.flags) for c in councils for p in c.proposals),
        "budget": dg.MetadataValue.json(budget_summary(request.max_total_tokens, councils)),
        "early_stops": dg.MetadataValue.json(early_stops(councils)),
        "calls_saved": sum(c.calls_saved for c in councils),
        "wall_time_s": round(wall_ms / 1000, 3),
        "critical_path_s": round(critical_ms / 1000, 3),
        "parallel_efficiency": round(critical_ms / wall_ms, 3) if wall_ms else 0.0,
        "models": ", ".join(sorted({call.model for call in calls if call.model})) or "none",
        "errors": dg.MetadataValue.json([c.error for c in councils if c.error]),
        "traceparent": request.traceparent,
        "call_errors": dg.MetadataValue.text(failed_calls_summary(councils) or ""),
        # What `fleet-dagster republish` publishes again by hand (the outbox delivers it through outages).
        FINAL_EVENT_METADATA_KEY: dg.MetadataValue.json(stored_event(final)),
    }
