"""Earlier benchmark (and A/B test) summaries, read back from the Dagster instance (one per partition, latest wins)."""

from typing import Any

import dagster as dg

BENCHMARK_ASSET_KEY = dg.AssetKey("benchmark_results")
HISTORY_LIMIT = 200


def summaries_by_partition(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey = BENCHMARK_ASSET_KEY
) -> list[tuple[str, dict[str, Any], int]]:
    """(partition, summary, storage id) for each materialized partition of a daily benchmark asset, oldest
    partition first."""
    records = instance.fetch_materializations(asset_key, limit=HISTORY_LIMIT, ascending=False).records
    latest: dict[str, tuple[dict[str, Any], int]] = {}
    for record in records:
        materialization = record.asset_materialization
        if materialization is None or not materialization.partition or materialization.partition in latest:
            continue
        summary = materialization.metadata.get("summary")
        if summary is not None and isinstance(summary.value, dict):
            latest[materialization.partition] = (summary.value, record.storage_id)
    return [(partition, *latest[partition]) for partition in sorted(latest)]


def current_and_previous(instance: dg.DagsterInstance) -> tuple[dict[str, Any] | None, list[dict[str, Any]], str]:
    """The newest materialization's summary, and the summaries of the partitions before its partition."""
    history = summaries_by_partition(instance)
    if not history:
        return None, [], ""
    partition, summary, _ = max(history, key=lambda item: item[2])
    return summary, [s for p, s, _ in history if p < partition], partition
