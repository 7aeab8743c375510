"""(c) Projection into SQLite read models against a plain consumer loop writing the same rows.

Hub: a confluent-kafka consumer loop (not the faust worker: this isolates the projection from faust's
own overhead; the scale run measures the real worker end to end) reads the dataset topic from offset 0
in batches of the worker's size (``projections.worker.BATCH_SIZE``) and hands each batch to
:class:`projections.projector.Projector`: ``decide`` (open every envelope, check every lane's chain,
apply each consumer's agreement) then ``commit`` (rows,
positions and chain heads in one transaction per read model). Baseline: the same loop over a topic
holding the same records as plain fastavro bytes, writing one row per record and read model (the whole
record as JSON, no crypto, no policy) with its positions, in one sqlite3 transaction per batch and read
model, with the same pragmas (WAL, synchronous=FULL).
"""

from __future__ import annotations

import io
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import fastavro

from bench import records
from bench.environment import DATASET, OWNER, hub_env, hub_with_read_models, new_hub
from bench.kafka_io import RawProducer, read_batches
from bench.load import projection_worker, stop_group
from bench.model import Config, Row, ScenarioResult
from bench.stats import interleaved
from projections.projector import LogMessage, Projector
from projections.worker import BATCH_SIZE
from services.hub import Hub
from sharehub.avro import datum_to_json, record_from_json
from sharehub.kafka import ensure_topics

_SCHEMA = """
CREATE TABLE records (dataset TEXT, record_key TEXT, fields TEXT NOT NULL, applied_at TEXT NOT NULL,
                      version INTEGER NOT NULL, PRIMARY KEY (dataset, record_key));
CREATE TABLE positions (topic TEXT, partition INTEGER, next_offset INTEGER NOT NULL,
                        PRIMARY KEY (topic, partition));
"""
_UPSERT = (
    "INSERT INTO records VALUES (?, ?, ?, ?, 1) ON CONFLICT (dataset, record_key) DO UPDATE SET "
    "fields = excluded.fields, applied_at = excluded.applied_at, version = version + 1"
)
_POSITION = (
    "INSERT INTO positions VALUES (?, ?, ?) ON CONFLICT (topic, partition) DO UPDATE SET "
    "next_offset = excluded.next_offset"
)


def run(config: Config) -> ScenarioResult:
    assert config.bootstrap is not None
    bootstrap = config.bootstrap
    hub = new_hub(config.workdir / "projection", bootstrap)
    try:
        governance = hub.governance
        dataset = governance.dataset(DATASET)
        plain_topic = f"{governance.topic_prefix}.bench.plain-records"
        ensure_topics(bootstrap, [(plain_topic, dataset.partitions)])
        n = config.events
        members = records.members(n, config.seed)
        publisher = hub.publisher(OWNER, DATASET)
        publisher.publish_records(members)
        publisher.close()
        schema = governance.current_schema(DATASET)
        plain = []
        for record in members:
            out = io.BytesIO()
            fastavro.schemaless_writer(out, schema.parsed, record_from_json(schema, record))
            plain.append((str(record[dataset.key_field]).encode(), out.getvalue()))
        RawProducer(bootstrap, plain_topic).send_all(plain)
        consumers = hub.consumers()
        runs = config.workdir / "projection-runs"

        def hub_side(rep: int) -> dict[str, float]:
            local = hub_with_read_models(hub, runs / f"hub-{rep}")
            try:
                stores = {c: local.store(c) for c in consumers}
                projector = Projector(local.governance, local.keys, stores)
                started = time.perf_counter()
                applied = _project(projector, hub.kafka, dataset.topic)
                elapsed = time.perf_counter() - started
                if applied != n * _granted(local, consumers):
                    raise RuntimeError(f"applied {applied} rows for {n} events")
                return {"project_s": elapsed}
            finally:
                local.close()

        def baseline_side(rep: int) -> dict[str, float]:
            started = time.perf_counter()
            written = _plain_loop(bootstrap, plain_topic, schema.parsed, runs / f"plain-{rep}", consumers)
            elapsed = time.perf_counter() - started
            if written != n * len(consumers):
                raise RuntimeError(f"wrote {written} rows for {n} records")
            return {"plain_s": elapsed}

        def worker_side(rep: int) -> dict[str, float]:
            local = hub_with_read_models(hub, runs / f"worker-{rep}")
            try:
                events, seconds = _run_worker(local, consumers, dataset.topic, n)
                return {"worker_s": seconds * n / events}  # seconds for n events at the measured rate
            finally:
                local.close()

        def both_hub_sides(rep: int) -> dict[str, float]:
            return {**hub_side(rep), **worker_side(rep)}

        measured = interleaved(config.reps, both_hub_sides, baseline_side)
    finally:
        hub.close()
    return ScenarioResult(
        id="c",
        title="Projection (Projector.decide + commit, SQLite) vs a plain consumer writing the same rows",
        hub="confluent-kafka loop → Projector.decide + commit into 2 SQLite read models",
        baseline="confluent-kafka loop → fastavro decode → sqlite3 upsert into 2 files",
        reps=config.reps,
        rows=[
            Row("project vs plain loop", "throughput", "project_s", "plain_s", n),
            Row("worker (faust) end to end vs plain loop", "throughput", "worker_s", "plain_s", n),
        ],
        measurements=measured,
        notes=[
            f"{n:,} events per repetition, each to {len(consumers)} read models ({', '.join(consumers)}), "
            f"fresh and empty for every repetition. Batches of up to {BATCH_SIZE:,} messages, as the worker "
            "takes them.",
            "Worker row: the real `sharehub project` process (faust-streaming, aiokafka) over the same topic "
            "into fresh read models; timed from the first batch it commits (faust's start-up and group join "
            "excluded) until every read model's positions reach the topic's end, counting the events after "
            "that first batch (at --quick sizes, where one batch holds them all, from the process's start). "
            "The scale run below measures it over millions of events.",
        ],
    )


def _run_worker(hub: Hub, consumers: list[str], topic: str, total: int) -> tuple[int, float]:
    """Run ``sharehub project`` on ``hub`` until every read model holds the topic's ``total`` events.
    Returns (events applied after the first committed batch, seconds they took)."""
    stores = [hub.store(c) for c in consumers]

    def least() -> int:
        return min(sum(o for (t, _), o in s.positions().items() if t == topic) for s in stores)

    log_file = hub.home / f"worker-{time.time_ns()}.log"
    proc = projection_worker(hub_env(hub), log_file)
    started = time.perf_counter()
    try:
        deadline = time.monotonic() + 600
        first: tuple[int, float] | None = None
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the projection worker exited with {proc.returncode}; see {log_file}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not finish in 600 s; see {log_file}")
            done, now = least(), time.perf_counter()
            if done and first is None:
                first = (done, now)
            if done >= total and first is not None:
                if done == first[0]:  # all in one batch (--quick sizes): time it from the start instead
                    return done, now - started
                return done - first[0], now - first[1]
            time.sleep(0.05)
    finally:
        stop_group(proc)


def _granted(hub: Hub, consumers: list[str]) -> int:
    return sum(
        hub.governance.active_agreement(c, DATASET, records.OCCURRED_AT) is not None for c in consumers
    )


def _project(projector: Projector, bootstrap: str, topic: str) -> int:
    applied = 0
    for batch in read_batches(bootstrap, topic, BATCH_SIZE):
        messages = [LogMessage.of(m) for m in batch]
        decision = projector.decide(messages)
        if decision.quarantined:
            raise RuntimeError(f"quarantined: {decision.quarantined[0].reason}")
        projector.commit(decision)
        applied += decision.applied()
    return applied


def _plain_loop(bootstrap: str, topic: str, parsed: Any, directory: Path, consumers: list[str]) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    dbs = []
    for consumer in consumers:
        db = sqlite3.connect(directory / f"{consumer}.db", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(_SCHEMA)
        dbs.append(db)
    written = 0
    try:
        for batch in read_batches(bootstrap, topic, BATCH_SIZE):
            now = time.strftime("%Y-%m-%dT%H:%M:%S")
            rows = []
            ends: dict[int, int] = {}
            for m in batch:
                datum = fastavro.schemaless_reader(io.BytesIO(m.value), parsed, None)
                rows.append((DATASET, (m.key or b"").decode(), json.dumps(datum_to_json(datum)), now))
                ends[m.partition] = max(ends.get(m.partition, 0), m.offset + 1)
            for db in dbs:
                db.execute("BEGIN")
                db.executemany(_UPSERT, rows)
                db.executemany(_POSITION, [(topic, p, o) for p, o in ends.items()])
                db.execute("COMMIT")
                written += len(rows)
    finally:
        for db in dbs:
            db.close()
    return written
