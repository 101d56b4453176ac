import dagster as dg

DELIBERATION_PARTITIONS = "deliberations"
deliberation_partitions = dg.DynamicPartitionsDefinition(name=DELIBERATION_PARTITIONS)

DELIBERATION_ASSET_KEY = dg.AssetKey("deliberation")
DELIBERATION_ID_TAG = "fleet/deliberation_id"
STREAM_SEQ_TAG = "fleet/stream_seq"
TRACEPARENT_TAG = "fleet/traceparent"  # the W3C trace the run belongs to (core/trace.py)
REQUEST_DIGEST_TAG = "fleet/request_digest"  # tells a producer's retried publish from another request
