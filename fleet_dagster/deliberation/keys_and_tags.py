"""How Dagster names a deliberation: its partition set and asset key, and the tags its runs carry."""

import dagster as dg

DELIBERATION_PARTITIONS = "deliberations"
deliberation_partitions = dg.DynamicPartitionsDefinition(name=DELIBERATION_PARTITIONS)

DELIBERATION_ASSET_KEY = dg.AssetKey("deliberation")
DELIBERATION_ID_TAG = "fleet/deliberation_id"
STREAM_SEQ_TAG = "fleet/stream_seq"
# When the stream of that sequence was created: a stream deleted and created again reuses its sequences.
STREAM_CREATED_TAG = "fleet/stream_created"
TRACEPARENT_TAG = "fleet/traceparent"  # the W3C trace the run belongs to (core/trace.py)
REQUEST_DIGEST_TAG = "fleet/request_digest"  # tells a producer's retried publish from another request
# Dagster's queued-run coordinator starts runs of a higher `dagster/priority` first: a request's priority rank.
RUN_PRIORITY_TAG = "dagster/priority"
