"""(h) The PostgreSQL outbox connector from an agency's site against a bare confluent-kafka producer of the
same payloads.

Hub: an outbox table of the common shape (id bigserial, aggregate, aggregate_id, type, payload jsonb,
created_at, and the commit-order column ``txid xid8``), filled with N party members before the clock
starts; then ``OutboxConnector.run(once=True)`` as ``sharehub connect outbox --once`` runs it: open the
endless source (the topic's lane ends), read the rows in commit order behind the transaction horizon,
5,000 at a time, publish them through the exactly-once core from the owner's site (scenario f's: its own
key, keys from the key service over HTTPS, mutual TLS), wait for every acknowledgement, checkpoint the
journal (fsync), count the lag; timed until the table is drained and acknowledged. Baseline: the same
payloads (each row's JSON, keyed by its member id) produced by confluent-kafka with the same producer
settings, then flushed. Each repetition has a table of new members, so both sides pay for first-time work
alike (the hub makes their subject keys).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import psycopg

from bench import records
from bench.environment import DATASET, hub_env, new_hub, postgres
from bench.kafka_io import RawProducer
from bench.load import query_api
from bench.model import Config, Row, ScenarioResult
from bench.scenarios.publish import WARM_UP
from bench.scenarios.site_publish import PASSPHRASE, connected_site
from bench.stats import Summary, interleaved, rates
from connectors.exactly_once import ExactlyOnce
from connectors.journal import Journal
from connectors.outbox import OutboxConnector, OutboxDatabase, OutboxRejects, OutboxTable, checked_dsn
from connectors.outbox_mapping import OutboxMapping, setup_sql
from connectors.publisher import Publisher
from connectors.sdk import open_publisher
from services.hub import Hub
from sharehub.kafka import ensure_topics

#: Rows read, published and checkpointed at a time (the connector's default).
BATCH = 5000
TABLE = """CREATE TABLE {t} (id bigserial PRIMARY KEY, aggregate text NOT NULL, aggregate_id text NOT NULL,
    type text NOT NULL, payload jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"""


def run(config: Config) -> ScenarioResult:
    assert config.bootstrap is not None
    hub = new_hub(config.workdir / "outbox", config.bootstrap)
    try:
        with postgres() as url, query_api(hub_env(hub), hub.home / "api.log") as server:
            site = connected_site(hub, str(config.bootstrap), server.base)
            publisher = open_publisher(site, DATASET, PASSPHRASE)
            measured, notes = _outbox_against_raw_produce(hub, config, publisher, site, checked_dsn(url))
    finally:
        hub.close()
    return ScenarioResult(
        id="h",
        title="The outbox connector (filled table to acknowledged, from a site) vs raw produce",
        hub="OutboxConnector.run(once): read in commit order, seal, sign, produce, acks, checkpoint",
        baseline="confluent_kafka.Producer.produce of the rows' JSON payloads, then flush",
        reps=config.reps,
        rows=[Row("outbox vs produce", "throughput", "outbox_s", "produce_s", config.events)],
        measurements=measured,
        notes=notes,
    )


def _outbox_against_raw_produce(
    hub: Hub, config: Config, publisher: Publisher, site: Path, dsn: str
) -> tuple[dict[str, dict[str, list[float]]], list[str]]:
    assert config.bootstrap is not None
    n = config.events
    dataset = hub.governance.dataset(DATASET)
    raw_topic = f"{hub.governance.topic_prefix}.bench.raw-produce"
    ensure_topics(config.bootstrap, [(raw_topic, dataset.partitions)])
    batches = [records.members(n, config.seed, start_index=rep * n) for rep in range(config.reps)]
    prefix = f"bench_{hub.governance.topic_prefix}"
    mappings = [_filled_outbox(dsn, f"{prefix}_{rep}", batch) for rep, batch in enumerate(batches)]
    payloads = [[(m["member_id"].encode(), json.dumps(m).encode()) for m in batch] for batch in batches]

    publisher.publish_records(records.members(WARM_UP, config.seed, start_index=config.reps * n))
    producer = RawProducer(config.bootstrap, raw_topic)
    producer.send_all(payloads[0][:WARM_UP])
    journal = Journal(site, DATASET)
    core = ExactlyOnce(publisher, journal, checkpoint_every=BATCH)

    def hub_side(rep: int) -> dict[str, float]:
        database = OutboxDatabase(dsn, mappings[rep])
        table = database.table()
        source = table.source
        read_s = _read_all(table, n)
        table.close()
        started = time.perf_counter()
        stream = core.open(source, name=source, endless=True)
        assert stream is not None
        rejects = OutboxRejects(site / "connectors" / "bench.outbox-rejects.jsonl")
        totals = OutboxConnector(database, stream, publisher.key_field, rejects, batch=BATCH).run(once=True)
        elapsed = time.perf_counter() - started
        if totals.published != n or totals.rejected or stream.state.pending != 0:
            raise RuntimeError(f"published {totals.published} of {n}, lag {stream.state.pending}: {totals}")
        return {"outbox_s": elapsed, "read_s": read_s}

    def baseline_side(rep: int) -> dict[str, float]:
        started = time.perf_counter()
        producer.send_all(payloads[rep])
        return {"produce_s": time.perf_counter() - started}

    try:
        measured = interleaved(config.reps, hub_side, baseline_side)
    finally:
        journal.close()
        publisher.close()
        _drop(dsn, prefix, config.reps)
    reading = Summary.of(rates(n, measured["hub"]["read_s"])).median
    notes = [
        f"{n:,} rows per repetition, {sum(len(v) for _, v in payloads[0]) / n:.0f} bytes of JSON payload "
        f"on average, batches of {BATCH:,} rows, {dataset.partitions} partitions, one local broker and "
        "PostgreSQL on the same machine.",
        f"Reading the same rows alone (the connector's query, in its batches, no publishing): "
        f"{reading:,.0f} rows/s (median), the database's share of the hub's time.",
        "Both producers use sharehub.kafka.producer_config: idempotent, acks=all, linger.ms=10. "
        "The key service is a local `sharehub serve` process on the same 2 cores.",
    ]
    return measured, notes


def _filled_outbox(dsn: str, schema: str, members: list[dict[str, Any]]) -> OutboxMapping:
    """A schema with the common outbox table, set up for the connector and filled with ``members``."""
    mapping = OutboxMapping.of({"table": f"{schema}.outbox", "payload": "payload", "type": "type",
                                "types": {"MemberRegistered": "UPSERTED"}})  # fmt: skip
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(TABLE.format(t=f"{schema}.outbox"))
        for statement in setup_sql(mapping):
            conn.execute(statement.encode())
        copy = f"COPY {schema}.outbox (aggregate, aggregate_id, type, payload) FROM STDIN"
        with conn.cursor() as cur, cur.copy(copy) as rows:
            for m in members:
                rows.write_row(("member", m["member_id"], "MemberRegistered", json.dumps(m)))
        conn.execute(f"ANALYZE {schema}.outbox")
    return mapping


def _read_all(table: OutboxTable, n: int) -> float:
    started, after, read = time.perf_counter(), 0, 0
    while rows := table.read(after, BATCH):
        read += len(rows)
        after = table.position(rows[-1])
    if read != n:
        raise RuntimeError(f"read {read} rows of {n}")
    return time.perf_counter() - started


def _drop(dsn: str, prefix: str, reps: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for rep in range(reps):
            conn.execute(f"DROP SCHEMA IF EXISTS {prefix}_{rep} CASCADE")
