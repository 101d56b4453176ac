"""How the Dagster instance answers as deliberations pile up: 1k, 10k, 50k partitions, on SQLite and Postgres.

Each deliberation is what a finished run leaves: a dynamic partition, a SUCCESS run of deliberation_job with
the sensor's tags, and one materialization whose metadata is the collect step's (3 roles x 3 agents of about
1,200 characters each, built with the asset's own builders: winners, results, proposals table, winning
proposals, final event), about 36 KB as Dagster stores it; they ended over the past 60 days, oldest first.
Measured at each size:

  status     `deliberation_status` of a random id (what `fleet-dagster status` and the CLI's polls cost)
  sensor     the NATS sensor's tick without NATS: `triage` of 100 new request messages with the sensor's real
             prior-use lookup (`_prior_uses`: the latest runs by tag, two queries a batch), then adding their 100
             dynamic partitions; and the part of it spent in the instance (the rest reads the requests)
  health     the asset page's PartitionHealthQuery (every partition key and the materialized/failed ones),
             as the UI sends it, through dagster-graphql against a code server of fleet_dagster.definitions
             (a request context per query, as the webserver makes one per request); its first call (the
             partition status cache catching up with what was added) and then warm
  events     the asset page's events list: assetEventHistory, the latest 100 materializations with metadata
  retention  one run of deliberation_retention_job archiving the 100 oldest (JSON files), then deleting their
             runs and partitions: its wall time per deliberation (the next size tops the 100 back up)

The rows are bulk-inserted (the bench's own inserts into Dagster's tables, not its API: 50k runs through
`add_run` and `store_event` would take most of an hour), 25 distinct materializations each deliberation
takes one of under its own ids and time. On SQLite the materializations go into the index database only,
where asset queries read them; a real run also keeps its events in a file of its own, which deleting the
run opens: the bench makes those files for the runs retention deletes, untimed.

    PYTHONPATH=. python bench/partition_scale.py [--sizes 1000,10000,50000] [--backends sqlite,postgres]
"""

import argparse
import hashlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

DAY = 86400.0
SPAN_DAYS = 60.0  # the bench's deliberations ended evenly over this many days before now
CHUNK = 1000
WORDS = [
    "token",
    "bucket",
    "rate",
    "limit",
    "per",
    "key",
    "burst",
    "refill",
    "window",
    "redis",
    "shard",
    "p99",
    "retry",
]

HEALTH_QUERY = """
query PartitionHealthQuery($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) {
    ... on AssetNode {
      id
      partitionKeysByDimension { name type partitionKeys }
      assetPartitionStatuses {
        ... on DefaultPartitionStatuses { materializedPartitions materializingPartitions failedPartitions }
      }
    }
  }
}
"""
EVENTS_QUERY = """
query AssetEventsQuery($assetKey: AssetKeyInput!) {
  assetOrError(assetKey: $assetKey) {
    ... on Asset {
      id
      assetEventHistory(limit: 100, eventTypeSelectors: [MATERIALIZATION, OBSERVATION, FAILED_TO_MATERIALIZE]) {
        results {
          ... on MaterializationEvent {
            runId
            partition
            timestamp
            metadataEntries {
              label
              ... on JsonMetadataEntry { jsonString }
              ... on MarkdownMetadataEntry { mdStr }
              ... on TextMetadataEntry { text }
              ... on IntMetadataEntry { intValue }
              ... on FloatMetadataEntry { floatValue }
            }
          }
        }
        cursor
      }
    }
  }
}
"""


def proposal_text(rng: random.Random) -> str:
    """About 1,200 characters, as a 256-token answer is."""
    lines = [" ".join(rng.choice(WORDS) for _ in range(12)) + "." for _ in range(14)]
    return "## Design\n\n" + "\n".join(f"- {line}" for line in lines) + "\n\nAnswer: token bucket"


def councils_for(rng: random.Random, texts: list[str]) -> list[Any]:
    from fleet_dagster.core.records import AgentCall, CouncilResult, Proposal, Review, Selection

    councils = []
    for role in ("DEV", "QA", "ARCHITECT"):
        proposals = [
            Proposal(
                role=role,
                agent_id=f"agent-{role.lower()}-{i:03d}",
                round=1,
                content=rng.choice(texts),
                temperature=0.7,
                seed=i,
                tokens=rng.randint(200, 600),
                latency_ms=rng.uniform(800, 4000),
                peer_score=round(rng.uniform(5, 9), 2),
                coverage=round(rng.uniform(0.5, 1), 2),
                checks=1.0,
                score=round(rng.uniform(5, 9), 2),
                addressed=["rate limit per key"],
                answer="token bucket",
            )
            for i in range(1, 4)
        ]
        best = max(proposals, key=lambda p: p.score or 0)
        best.is_winner = True
        reviews = [
            Review(
                reviewer=p.agent_id, author=q.agent_id, round=1, parsed=True, scores={"correctness": 7, "clarity": 8}
            )
            for p, q in zip(proposals, proposals[1:] + proposals[:1], strict=True)
        ]
        calls = [
            AgentCall(
                agent_id=p.agent_id,
                role=role,
                phase=phase,
                round=0 if phase == "propose" else 1,
                ok=True,
                tokens=p.tokens,
                latency_ms=p.latency_ms,
                model="Qwen/Qwen2.5-7B-Instruct",
            )
            for p in proposals
            for phase in ("propose", "review", "revise")
        ]
        councils.append(
            CouncilResult(
                role=role,
                expected_agents=3,
                proposals=proposals,
                reviews=reviews,
                calls=calls,
                selection=Selection(winner=best.agent_id, method="score", rationale=f"highest score {best.score:.2f}"),
                started_at=0.0,
                finished_at=30.0,
            )
        )
    return councils


def collected_metadata(deliberation_id: str, run_id: str, councils: list[Any]) -> dict[str, Any]:
    """What collect_deliberation (deliberation/assets.py) gives the materialization, with its builder."""
    from fleet_dagster.core.outcome import deliberation_outcome
    from fleet_dagster.core.request import parse_request
    from fleet_dagster.deliberation.materialization import collected

    request = parse_request(
        {"deliberation_id": deliberation_id, "task": "Design a rate limiter", "roles": ["DEV", "QA", "ARCHITECT"]}
    )
    return collected(deliberation_outcome(request, councils, wall_ms=31200, prices={}), run_id).metadata


DELIBERATION_MARK, RUN_MARK, TIME_MARK = "delib-id-mark", "run-id-mark", 1111111111.125
TEMPLATES = 25  # distinct materializations; each deliberation is one of them under its own ids and time


def event_templates(rng: random.Random) -> list[str]:
    """Serialized materialization events, with marks where a deliberation's id, run id and time go: serializing
    20 KB of metadata per deliberation would make the setup of 50k most of the bench's time."""
    import dagster as dg
    from dagster._core.events import DagsterEvent, DagsterEventType, StepMaterializationData
    from dagster._core.events.log import EventLogEntry
    from dagster_shared.serdes import serialize_value

    from fleet_dagster.deliberation.keys_and_tags import DELIBERATION_ASSET_KEY

    texts = [proposal_text(rng) for _ in range(40)]
    templates = []
    for _ in range(TEMPLATES):
        metadata = collected_metadata(DELIBERATION_MARK, RUN_MARK, councils_for(rng, texts))
        materialization = dg.AssetMaterialization(
            asset_key=DELIBERATION_ASSET_KEY, partition=DELIBERATION_MARK, metadata=metadata
        )
        event = DagsterEvent(
            DagsterEventType.ASSET_MATERIALIZATION.value,
            "deliberation_job",
            step_key="collect_deliberation",
            event_specific_data=StepMaterializationData(materialization),
        )
        entry = EventLogEntry(
            error_info=None,
            level=20,
            user_message="",
            run_id=RUN_MARK,
            timestamp=TIME_MARK,
            step_key="collect_deliberation",
            job_name="deliberation_job",
            dagster_event=event,
        )
        templates.append(serialize_value(entry))
    return templates


class Population:
    """Adds finished deliberations in bulk, with ids as the NATS bridge makes them (delib-<seq>-<hash>), ended from
    SPAN_DAYS ago towards now."""

    def __init__(self, instance: Any, total: int, now: float):
        self.instance, self.total, self.now = instance, total, now
        self.ids: list[str] = []
        self.run_ids: dict[str, str] = {}
        self.next_index = 0
        self.rng = random.Random(7)
        self.templates = event_templates(self.rng)

    def ended_at(self, index: int) -> float:
        return self.now - SPAN_DAYS * DAY * (1 - index / self.total)

    def grow(self, count: int) -> None:
        for start in range(0, count, CHUNK):
            self._add(min(CHUNK, count - start))

    def _add(self, count: int) -> None:
        import dagster as dg
        from dagster._core.storage.runs.schema import RunsTable, RunTagsTable
        from dagster_shared.serdes import serialize_value

        from fleet_dagster.deliberation.keys_and_tags import (
            DELIBERATION_ASSET_KEY,
            DELIBERATION_ID_TAG,
            DELIBERATION_PARTITIONS,
            REQUEST_DIGEST_TAG,
            STREAM_SEQ_TAG,
        )

        run_rows, tag_rows, event_rows, ids = [], [], [], []
        run_storage = self.instance.run_storage
        for index in range(self.next_index, self.next_index + count):
            deliberation_id = f"delib-{index + 1}-{hashlib.sha256(str(index).encode()).hexdigest()[:10]}"
            run_id, ended = str(uuid.uuid4()), self.ended_at(index)
            run = dg.DagsterRun(
                job_name="deliberation_job",
                run_id=run_id,
                status=dg.DagsterRunStatus.SUCCESS,
                tags={
                    DELIBERATION_ID_TAG: deliberation_id,
                    "dagster/partition": deliberation_id,
                    STREAM_SEQ_TAG: str(index + 1),
                    REQUEST_DIGEST_TAG: uuid.uuid4().hex * 2,
                },
            )
            run_rows.append(  # the columns SqlRunStorage.add_run fills, and those the run's events would
                {
                    "run_id": run_id,
                    "pipeline_name": run.job_name,
                    "status": run.status.value,
                    "run_body": serialize_value(run),
                    "partition": deliberation_id,
                    "create_timestamp": datetime.fromtimestamp(ended - 40, UTC),
                    "start_time": ended - 35,
                    "end_time": ended,
                    "update_timestamp": datetime.fromtimestamp(ended, UTC),
                }
            )
            tag_rows += [{"run_id": run_id, "key": k, "value": v} for k, v in run.tags_for_storage().items()]
            event = (
                self.rng.choice(self.templates)
                .replace(DELIBERATION_MARK, deliberation_id)
                .replace(RUN_MARK, run_id)
                .replace(repr(TIME_MARK), repr(ended - 1))
            )
            event_rows.append(
                {
                    "run_id": run_id,
                    "event": event,
                    "dagster_event_type": "ASSET_MATERIALIZATION",
                    # as Dagster stores it: UTC without a zone
                    "timestamp": datetime.fromtimestamp(ended - 1, UTC).replace(tzinfo=None),
                    "step_key": "collect_deliberation",
                    "asset_key": DELIBERATION_ASSET_KEY.to_string(),
                    "partition": deliberation_id,
                }
            )
            ids.append(deliberation_id)
            self.run_ids[deliberation_id] = run_id
        with run_storage.connect() as conn:
            conn.execute(RunsTable.insert(), run_rows)
            conn.execute(RunTagsTable.insert(), tag_rows)
        self.instance.add_dynamic_partitions(DELIBERATION_PARTITIONS, ids)
        store_events(self.instance, event_rows)
        self.ids += ids
        self.next_index += count


def store_events(instance: Any, rows: list[dict[str, Any]]) -> None:
    """Into the table asset queries read (on SQLite, the index database); the last through the API, so that the
    asset's own row (its latest materialization) follows."""
    from dagster._core.events.log import EventLogEntry
    from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
    from dagster_shared.serdes import deserialize_value

    storage = instance.event_log_storage
    with storage.index_connection() as conn:
        conn.execute(SqlEventLogStorageTable.insert(), rows[:-1])
    instance.store_event(deserialize_value(rows[-1]["event"], EventLogEntry))


def median_ms(call: Callable[[], Any], times: int) -> float:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def sensor_tick(instance: Any, tick: int, archive_dir: Path) -> tuple[float, float]:
    """Milliseconds: the whole tick, and the part spent in the instance and the archive (prior-use lookups,
    adding partitions); the rest is reading the requests (their roles' profiles)."""
    from fleet_dagster.deliberation.archive import DeliberationArchive
    from fleet_dagster.deliberation.keys_and_tags import DELIBERATION_PARTITIONS
    from fleet_dagster.deliberation.request_intake import prior_uses
    from fleet_dagster.nats_bridge.triage import triage

    messages = [
        (
            10_000_000 + tick * 100 + i,
            json.dumps(
                {"deliberation_id": f"new-{tick}-{i}", "task": "Design a rate limiter", "roles": ["DEV", "QA"]}
            ).encode(),
        )
        for i in range(100)
    ]
    lookup, in_instance = prior_uses(instance, DeliberationArchive(str(archive_dir)), None), [0.0]

    def timed_lookup(first_seqs: dict[str, int]) -> Any:
        started = time.perf_counter()
        found = lookup(first_seqs)
        in_instance[0] += time.perf_counter() - started
        return found

    started = time.perf_counter()
    outcome = triage(messages, timed_lookup)
    assert len(outcome.accepted) == 100, outcome.rejected[:1]
    adding = time.perf_counter()
    instance.add_dynamic_partitions(DELIBERATION_PARTITIONS, [r.deliberation_id for _, r in outcome.accepted])
    ended = time.perf_counter()
    return (ended - started) * 1000, (in_instance[0] + ended - adding) * 1000


@contextmanager
def graphql_workspace(instance: Any, workdir: Path) -> Iterator[Any]:
    """A code server of fleet_dagster.definitions, as the webserver has."""
    from dagster_graphql.test.utils import define_out_of_process_workspace

    target = workdir / "defs.py"
    target.write_text("from fleet_dagster.definitions import defs  # noqa: F401\n")
    with define_out_of_process_workspace(str(target), "defs", instance) as workspace:
        yield workspace


def graphql(workspace: Any, query: str) -> dict:
    """A request context per query, as the webserver makes one per HTTP request (it caches partitions)."""
    from dagster_graphql.test.utils import execute_dagster_graphql

    context = workspace.create_request_context()
    result = execute_dagster_graphql(context, query, variables={"assetKey": {"path": ["deliberation"]}})
    assert not result.errors, result.errors
    return result.data


def retention_tick(instance: Any, population: Population, archive_dir: Path) -> float:
    """Seconds per deliberation for one run archiving the 100 oldest."""
    import dagster as dg

    from fleet_dagster.deliberation.retention import deliberation_retention_job

    if instance.event_log_storage.is_run_sharded:
        # A real run on SQLite keeps its events in a file of its own, which deleting the run opens; the bench's
        # runs have none: made here, untimed, by another instance (so the timed one opens them as it would).
        with dg.DagsterInstance.get() as other:
            for deliberation_id in population.ids[:100]:
                with other.event_log_storage.run_connection(population.run_ids[deliberation_id]):
                    pass
    os.environ["FLEET_ARCHIVE_DIR"] = str(archive_dir)
    config = {"ops": {"archive_old_deliberations": {"config": {"batch": 100, "max_age_days": 1.0}}}}
    started = time.perf_counter()
    result = deliberation_retention_job.execute_in_process(run_config=config, instance=instance)
    elapsed = time.perf_counter() - started
    archived = result.output_for_node("archive_old_deliberations")
    assert archived == population.ids[:100], archived[:3]
    return elapsed / len(archived)


def measure(instance: Any, population: Population, workspace: Any, archive_dir: Path, lookups: int, tick: int) -> dict:
    from fleet_dagster.deliberation.status_query import deliberation_status

    rng = random.Random(tick)
    live = population.ids[100:]  # retention removed the oldest
    figures: dict[str, float] = {}

    def status() -> None:
        document = deliberation_status(instance, rng.choice(live))
        assert document["status"] == "COMPLETED" and len(document["winners"]) == 3, document

    figures["status_ms"] = median_ms(status, lookups)
    ticks = [sensor_tick(instance, tick * 10 + i, archive_dir) for i in range(3)]
    figures["sensor_ms"] = statistics.median(total for total, _ in ticks)
    figures["sensor_db_ms"] = statistics.median(in_instance for _, in_instance in ticks)
    started = time.perf_counter()
    data = graphql(workspace, HEALTH_QUERY)
    figures["health_first_ms"] = (time.perf_counter() - started) * 1000
    figures["health_kb"] = len(json.dumps(data)) / 1024  # what the browser downloads and draws
    keys = data["assetNodeOrError"]["partitionKeysByDimension"][0]["partitionKeys"]
    assert len(keys) >= len(population.ids) - 100, len(keys)
    figures["health_ms"] = median_ms(lambda: graphql(workspace, HEALTH_QUERY), 3)
    figures["events_ms"] = median_ms(lambda: graphql(workspace, EVENTS_QUERY), 3)
    figures["retention_ms_per"] = retention_tick(instance, population, archive_dir) * 1000
    population.ids = population.ids[100:]
    return figures


@contextmanager
def dagster_home(backend: str, workdir: Path) -> Iterator[Path]:
    home = workdir / f"dagster_home_{backend}"
    home.mkdir()
    config = "telemetry:\n  enabled: false\n"
    if backend == "postgres":
        from tests.postgres_server import LocalPostgres, dagster_storage_yaml

        with LocalPostgres(workdir / "postgres") as server:
            (home / "dagster.yaml").write_text(config + dagster_storage_yaml(server.create_database("bench")))
            yield home
    else:
        (home / "dagster.yaml").write_text(config)
        yield home


def run_backend(backend: str, sizes: list[int], lookups: int, workdir: Path) -> list[dict]:
    import dagster as dg

    rows = []
    with dagster_home(backend, workdir) as home:
        os.environ["DAGSTER_HOME"] = str(home)
        with dg.DagsterInstance.get() as instance, graphql_workspace(instance, workdir) as workspace:
            population = Population(instance, max(sizes) + 100 * len(sizes), time.time())
            for tick, size in enumerate(sizes):
                started = time.perf_counter()
                population.grow(size + 100 - len(population.ids))  # + the 100 the retention run removes
                setup_s = time.perf_counter() - started
                figures = measure(instance, population, workspace, workdir / f"archive_{backend}", lookups, tick)
                rows.append({"backend": backend, "size": size, "setup_s": setup_s, **figures})
                print(
                    json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in rows[-1].items()}), flush=True
                )
    return rows


COLUMNS = [
    ("setup_s", "setup s"),
    ("status_ms", "status ms"),
    ("sensor_ms", "sensor tick ms"),
    ("sensor_db_ms", "of which instance ms"),
    ("health_first_ms", "health 1st ms"),
    ("health_ms", "health ms"),
    ("health_kb", "health KB"),
    ("events_ms", "events ms"),
    ("retention_ms_per", "retention ms/delib"),
]


def table(rows: list[dict]) -> str:
    lines = [
        "| backend | partitions | " + " | ".join(title for _, title in COLUMNS) + " |",
        "|---|---:|" + "---:|" * len(COLUMNS),
    ]
    for row in rows:
        lines.append(
            f"| {row['backend']} | {row['size']:,} | " + " | ".join(f"{row[k]:.1f}" for k, _ in COLUMNS) + " |"
        )
    for backend in dict.fromkeys(row["backend"] for row in rows):
        mine = [row for row in rows if row["backend"] == backend]
        if len(mine) > 1:
            first, last = mine[0], mine[-1]
            ratios = " | ".join(f"x{last[k] / first[k]:.1f}" if first[k] else "-" for k, _ in COLUMNS)
            lines.append(f"| {backend} ratio | {last['size'] // first['size']}x | {ratios} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,50000", help="comma-separated partition counts, ascending")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--lookups", type=int, default=20, help="status lookups per size (median)")
    args = parser.parse_args()
    sizes = sorted(int(size) for size in args.sizes.split(","))
    started = time.perf_counter()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="fleet-partition-scale-") as workdir:
        for backend in args.backends.split(","):
            rows += run_backend(backend, sizes, args.lookups, Path(workdir))
    print(table(rows))
    print(f"total {time.perf_counter() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
