"""A consumer's read model: its granted records and the log positions that produced them.

One store per consumer agency: a SQLite file of its own by default, or a schema of its own in one
PostgreSQL database. Rows and positions are written in the same transaction, so a projection that dies at
any point restarts exactly where its last committed batch ended (nothing lost, nothing applied twice).

Rows that leave (an erased subject, an agreement that ended, a dataset reset) leave the disk too, on
SQLite: deleted bytes are zeroed (``secure_delete``) and the write-ahead log, whose frames keep earlier
page images, is truncated right after (:mod:`sharehub.sqlite_files`). PostgreSQL keeps deleted tuples in
its files until VACUUM reuses their space (VACUUM FULL rewrites the table without them) and in its WAL
segments until they are recycled: see docs/security.md for what an operator runs after an erasure.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import re
import sqlite3
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    and_,
    any_,
    bindparam,
    column,
    create_engine,
    delete,
    event,
    func,
    inspect,
    literal,
    or_,
    select,
    text,
    tuple_,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect, Engine, ExceptionContext, make_url
from sqlalchemy.exc import DBAPIError

from projections import filter_sql
from sharehub.errors import ReadModelUnavailable
from sharehub.row_filter import RowFilter, Value
from sharehub.sqlite_files import truncate_write_ahead_log

metadata = MetaData()

records = Table(
    "records",
    metadata,
    Column("dataset", String(64), primary_key=True),
    Column("record_key", String(256), primary_key=True),
    #: The record's pseudonym (hex): what an erasure names, so the subject can be purged.
    Column("subject_ref", String(64), nullable=False),
    Column("fields", JSON, nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("agreement_id", String(128), nullable=False),
    Column("applied_at", DateTime(timezone=True), nullable=False),
    #: How many events have been applied to this record: exactly-once means one per event published.
    Column("version", BigInteger, nullable=False),
)

#: Every past version of every record, for reads "as of" a past time: each one as granted, stamped with the
#: time its event occurred. The current version is the record's row in ``records``, kept once: a version
#: comes here when a later event for its record supersedes it. A record that leaves the read model (erasure,
#: a row filter it no longer passes, an agreement that ends) takes its versions along: the past is no more
#: visible than the present.
record_history = Table(
    "record_history",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("dataset", String(64), nullable=False),
    Column("record_key", String(256), nullable=False),
    Column("subject_ref", String(64), nullable=False),
    Column("fields", JSON, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Index("ix_record_history_key_time", "dataset", "record_key", "occurred_at"),
)

#: Which records each subject has had: what an erasure finds its rows and versions by. A pair is written when
#: a record is applied under a subject it did not have in the read model (a later version under the same
#: subject adds nothing). Pseudonyms are random, so a table ordered by them takes each new pair at a random
#: page, and a batch of n rows wrote n pages, more as the read model grew. Here a pair is filed under one of
#: :data:`SUBJECT_BUCKETS` buckets (from its pseudonym) and the time of its batch: each batch appends at the
#: end of at most that many buckets, whatever the size of the read model, and an erasure reads its
#: subject's bucket, one contiguous range of 1/:data:`SUBJECT_BUCKETS` of the pairs. Pairs are a superset:
#: one whose record left (a row filter, pruned versions) finds nothing.
subject_records = Table(
    "subject_records",
    metadata,
    Column("dataset", String(64), primary_key=True),
    Column("bucket", Integer, primary_key=True),
    #: When the pair's batch was written, in microseconds since the epoch: later pairs go after earlier ones.
    Column("written_us", BigInteger, primary_key=True),
    Column("subject_ref", String(64), primary_key=True),
    Column("record_key", String(256), primary_key=True),
    sqlite_with_rowid=False,
)

#: How many buckets a read model's pairs are filed in (:func:`subject_bucket`).
SUBJECT_BUCKETS = 64

#: What a read model made before ``subject_records`` found a subject's rows by: its pairs move into
#: ``subject_records`` and these go (:meth:`ReadModelStore.create`). The indexes on ``subject_ref`` took a
#: random write per row in ``records`` and in ``record_versions``; ``record_subjects`` was ordered by
#: pseudonym.
_SUPERSEDED_TABLES = ("record_subjects",)
_SUPERSEDED_INDEXES = ("ix_records_subject_ref", "ix_record_versions_subject")
_PAIR_COLUMNS = ("dataset", "subject_ref", "record_key")


def subject_bucket(subject_ref: str) -> int:
    """The bucket a subject's pairs are filed in: spread evenly whatever the pseudonym's form."""
    return zlib.crc32(subject_ref.encode()) % SUBJECT_BUCKETS


positions = Table(
    "positions",
    metadata,
    Column("topic", String(249), primary_key=True),
    Column("partition", Integer, primary_key=True),
    #: The offset of the next message to apply.
    Column("next_offset", BigInteger, nullable=False),
)

chain_heads = Table(
    "chain_heads",
    metadata,
    Column("topic", String(249), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("producer", String(64), primary_key=True),
    Column("sequence", BigInteger, nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
)

#: Per dataset, the terms (sharehub.gov.views.terms_digest) the dataset's rows were projected under. Rows
#: of terms that are no longer the active ones are projected again from the dataset's start: beside the
#: rows served, when the new terms only widen what is granted (blue/green, :mod:`projections.generations`);
#: in their place otherwise.
grants = Table(
    "grants",
    metadata,
    Column("dataset", String(64), primary_key=True),
    Column("terms", String(64), nullable=False),
    Column("agreement_id", String(128), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    #: What the terms grant (JSON: the fields a consumer sees and the row filter): what tells new terms that
    #: only widen it from those that narrow it. NULL: not recorded (a read model made before).
    Column("granted", Text, nullable=True),
    #: The storage name the served rows are kept under (:func:`other_storage`); NULL: the dataset's own.
    Column("stored_as", String(64), nullable=True),
    #: The storage name of the generation being built under the terms, while one is.
    Column("building_as", String(64), nullable=True),
    #: The storage name of a generation swapped out, while its rows are being deleted.
    Column("retired_as", String(64), nullable=True),
)

#: The columns of ``grants`` a read model made before generations lacks (:meth:`ReadModelStore.create`).
_GENERATION_COLUMNS = ("granted", "stored_as", "building_as", "retired_as")

#: What ends a storage name that is not the dataset's own, and a building generation's positions' topic.
#: Dataset ids and topic names never hold it.
OTHER = "~"


def other_storage(name: str) -> str:
    """The storage name a new generation of the rows kept under ``name`` is built under: the two alternate."""
    return name[: -len(OTHER)] if name.endswith(OTHER) else name + OTHER


class Generations(NamedTuple):
    """Where a dataset's rows are kept in a read model: the generation served, and while new terms are
    projected beside it, the one being built; and one swapped out whose rows are still being deleted."""

    served: str
    building: str | None = None
    retired: str | None = None


#: Recorded terms that no agreement has: the dataset is projected again from its start.
REPLAY = "replay requested"

#: How long a connection to a SQLite read model waits for another's write lock before it gives up.
SQLITE_LOCK_TIMEOUT_S = 30.0

TopicPartition = tuple[str, int]
#: (topic, partition, producer) → (sequence, hash) of the last event that continued that chain.
ChainHeads = dict[tuple[str, int, str], tuple[int, bytes]]


class Row(NamedTuple):
    """One granted record, as the consumer may see it."""

    dataset: str
    record_key: str
    subject_ref: str
    fields: dict[str, Any]
    event_id: str
    occurred_at: dt.datetime
    agreement_id: str


def insert_for(dialect: str) -> Any:
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def schema_name(consumer: str) -> str:
    """PostgreSQL schema that holds a consumer's read model."""
    return "rm_" + re.sub(r"[^a-z0-9_]", "_", consumer.lower())


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


#: The granted fields as JSON, written and read with orjson: each event's fields are written once per
#: consumer, and json's encoder cost more than SQLite's insert. (No NaN or infinity reaches a read model:
#: the projection quarantines them, see sharehub.avro.RecordSchema.non_finite_field.)
_JSON_CODEC: dict[str, Any] = {"json_serializer": _json_text, "json_deserializer": orjson.loads}


class ReadModelStore:
    """The read model of one consumer agency."""

    def __init__(self, url_template: str, consumer: str, *, password_file: Path | None = None) -> None:
        self.consumer = consumer
        url = make_url(url_template.replace("{consumer}", consumer))
        if password_file is not None:
            url = url.set(password=password_file.read_text(encoding="utf-8").strip())
        self._schema: str | None = None
        if url.get_backend_name() == "sqlite":
            if url.database:
                Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(url, connect_args={"timeout": SQLITE_LOCK_TIMEOUT_S}, **_JSON_CODEC)
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self._schema = schema_name(consumer)
            engine = create_engine(url, pool_pre_ping=True, **_JSON_CODEC)
            event.listen(engine, "handle_error", _unanswered_is_unavailable)
            self.engine = engine.execution_options(schema_translate_map={None: self._schema})
        self._dialect = self.engine.dialect.name
        self._upserts = _Upserts(self.engine.dialect)
        self._point_read = _PointRead(self.engine.dialect) if self.embedded else None

    @property
    def embedded(self) -> bool:
        """True for a SQLite file in this process: a read by key takes microseconds and never waits on a
        network."""
        return self._dialect == "sqlite"

    def create(self) -> None:
        """Create the tables (and the consumer's schema on PostgreSQL) if they do not exist. Workers
        starting at once may race to create them. On SQLite the file's write lock is taken first, so
        they create the tables one after the other and every later one finds them made. On PostgreSQL
        the loser of a race retries and then finds them made."""
        if self.embedded:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                self._create_tables(conn)
                conn.commit()
            return
        for attempt in range(3):
            try:
                with self.engine.begin() as conn:
                    conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{self._schema}"')
                    self._create_tables(conn)
                return
            except DBAPIError:
                if attempt == 2:
                    raise

    def _create_tables(self, conn: Connection) -> None:
        """The tables and columns that are missing, in the same transaction as what a read model made before
        them needs: pairs for ``subject_records``, columns of ``grants`` for generations, and past versions
        alone in ``record_history`` (``record_versions`` held every version, the current one too)."""
        found = inspect(conn)
        made_before = found.has_table("records", schema=self._schema) and not found.has_table(
            "subject_records", schema=self._schema
        )
        prefix = "" if self._schema is None else f'"{self._schema}".'
        if found.has_table("grants", schema=self._schema):
            has = {c["name"] for c in found.get_columns("grants", schema=self._schema)}
            for name in (n for n in _GENERATION_COLUMNS if n not in has):
                kind = grants.c[name].type.compile(dialect=conn.dialect)
                conn.exec_driver_sql(f"ALTER TABLE {prefix}grants ADD COLUMN {name} {kind}")
        metadata.create_all(conn)
        versioned = ["records"]
        if found.has_table("record_versions", schema=self._schema):
            versioned.append("record_versions")
        if made_before:
            self._pair_subjects(conn, found, prefix, versioned)
        if len(versioned) > 1:
            _keep_past_versions_alone(conn, prefix)

    def _pair_subjects(self, conn: Connection, found: Any, prefix: str, versioned: list[str]) -> None:
        """A read model made before ``subject_records``: its pairs, from the pairs it kept or the rows and
        versions it holds (``versioned``: their tables); what they replace goes."""
        if found.has_table("record_subjects", schema=self._schema):
            held: Any = text(f"SELECT dataset, subject_ref, record_key FROM {prefix}record_subjects")
        else:
            held = text(
                " UNION ".join(f"SELECT {', '.join(_PAIR_COLUMNS)} FROM {prefix}{t}" for t in versioned)
            )
        now_us = time.time_ns() // 1_000
        for part in conn.execute(held).partitions(10_000):
            conn.execute(
                subject_records.insert(),
                [
                    {"dataset": d, "bucket": subject_bucket(s), "written_us": now_us, "subject_ref": s,
                     "record_key": k}
                    for d, s, k in part
                ],
            )  # fmt: skip
        for name in _SUPERSEDED_TABLES:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {prefix}{name}")
        for name in _SUPERSEDED_INDEXES:
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {prefix}{name}")

    def ping(self) -> None:
        """Ask the database one trivial question: ReadModelUnavailable when it does not answer."""
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    def drop(self) -> None:
        """Remove the read model entirely."""
        with self.engine.begin() as conn:
            metadata.drop_all(conn)
            if self._schema is not None:
                conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{self._schema}" CASCADE')

    def close(self) -> None:
        self.engine.dispose()

    # --- writing ---------------------------------------------------------------------------------

    def positions(self, *, building: str | None = None) -> dict[TopicPartition, int]:
        """Partition → the offset of the next message to apply, of the served rows; ``building`` (a topic):
        of the generation built of its dataset (none while none is)."""
        query = select(positions.c.topic, positions.c.partition, positions.c.next_offset)
        if building is None:
            query = query.where(positions.c.topic.not_like(f"%{OTHER}"))
        else:
            query = query.where(positions.c.topic == building + OTHER)
        with self.engine.connect() as conn:
            return {(t.removesuffix(OTHER), p): o for t, p, o in conn.execute(query)}

    def chain_heads(self, tp: TopicPartition, *, building: bool = False) -> ChainHeads:
        """The chain heads in ``tp`` of the served rows, or (``building``) of the generation being built."""
        topic = tp[0] + OTHER if building else tp[0]
        query = select(chain_heads).where(chain_heads.c.topic == topic, chain_heads.c.partition == tp[1])
        with self.engine.connect() as conn:
            return {
                (tp[0], r.partition, r.producer): (int(r.sequence), bytes(r.hash))
                for r in conn.execute(query)
            }

    def generations(self) -> dict[str, Generations]:
        """Dataset → where its rows are kept, for every dataset granted here."""
        with self.engine.connect() as conn:
            return _generations(conn)

    def _row_lock(self, mode: str) -> str | None:
        """The lock :func:`_generations` takes on ``grants`` in a transaction of :meth:`_writing`."""
        return None if self.embedded else mode

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A transaction that reads where rows are kept, then writes: no swap of generations can come
        between. SQLite's write lock is taken at its start; PostgreSQL's ``grants`` rows are locked by
        :func:`_generations` (``lock``)."""
        if not self.embedded:
            with self.engine.begin() as conn:
                yield conn
            return
        with self.engine.connect() as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield conn
            conn.commit()

    def apply(
        self,
        rows: Sequence[Row],
        new_positions: Mapping[TopicPartition, int],
        *,
        purges: Sequence[tuple[str, str]] = (),
        exclusions: Sequence[tuple[str, str]] = (),
        heads: ChainHeads | None = None,
        building: tuple[str, str] | None = None,
    ) -> bool:
        """Purge erased subjects ((dataset, subject_ref)) and excluded records ((dataset, record_key)), then
        upsert ``rows``, and move the positions and chain heads forward, all in one transaction. ``building``
        (dataset, topic): into the generation of that dataset being built, and of it alone; nothing is
        written, and False returned, once none is (it was swapped in, or given up)."""
        upsert = self._upserts
        with self._writing() as conn:
            placed = _Placed(rows, new_positions, purges, exclusions, heads or {})
            kept = _generations(conn, lock=self._row_lock("share"))
            if building is None:
                placed = placed.served(kept)
            else:
                gen = kept.get(building[0])
                if gen is None or gen.building is None:
                    return False
                placed = placed.building(building[0], building[1], gen.building)
            rows, new_positions, purges, exclusions, heads = placed
            if purges:
                self._purge_subjects(conn, purges)
            if exclusions:
                named = [{"excluded_dataset": d, "excluded_key": key} for d, key in exclusions]
                for stmt in upsert.exclusions:
                    conn.execute(stmt, named)
            if rows:
                self._write_rows(conn, rows)
            if heads:
                conn.execute(
                    upsert.chain_heads,
                    [
                        {"topic": t, "partition": p, "producer": who, "sequence": seq, "hash": h}
                        for (t, p, who), (seq, h) in heads.items()
                    ],
                )
            if new_positions:
                conn.execute(
                    upsert.positions,
                    [{"topic": t, "partition": p, "next_offset": o} for (t, p), o in new_positions.items()],
                )
        if purges or exclusions:
            self.forget_deleted()
        return True

    def _purge_subjects(self, conn: Connection, purges: Sequence[tuple[str, str]]) -> None:
        """Each erased subject's rows and versions, found by its pairs (one read of its bucket), then the
        pairs."""
        upsert = self._upserts
        found: list[dict[str, Any]] = []
        for dataset, ref in dict.fromkeys(purges):
            named = {"dataset": dataset, "bucket": subject_bucket(ref), "subject_ref": ref}
            found += [
                {**named, "written_us": w, "record_key": k} for w, k in conn.execute(upsert.pairs_of, named)
            ]
        if found:
            for stmt in upsert.purges:
                conn.execute(stmt, found)

    def _write_rows(self, conn: Connection, rows: Sequence[Row]) -> None:
        """The last row per key as the current record, counting every event applied to its key (later
        events for the same key win); the record it replaces, and every earlier row of the batch for its
        key, as past versions, in that order; a pair for each record applied under a subject it does not
        have yet."""
        upsert = self._upserts
        pairs, held = self._new_pairs(conn, rows)
        for dataset, keys in held.items():  # current versions about to be superseded: into the history
            conn.execute(upsert.supersede, {"dataset": dataset, "keys": keys})
        last: dict[tuple[str, str], int] = {}
        applied: dict[tuple[str, str], int] = {}
        for i, r in enumerate(rows):
            key = (r.dataset, r.record_key)
            last[key] = i
            applied[key] = applied.get(key, 0) + 1
        versions: dict[str, list[Any]] = {
            "dataset": [r.dataset for r in rows],
            "record_key": [r.record_key for r in rows],
            "subject_ref": [r.subject_ref for r in rows],
            "fields": [r.fields for r in rows],
            "occurred_at": [_utc(r.occurred_at) for r in rows],
        }
        kept = list(last.values())
        current = {name: [column[i] for i in kept] for name, column in versions.items()}
        if len(kept) < len(rows):
            past = sorted(set(range(len(rows))) - set(kept))
            versions = {name: [column[i] for i in past] for name, column in versions.items()}
        else:
            versions = {}
        current["event_id"] = [rows[i].event_id for i in kept]
        current["agreement_id"] = [rows[i].agreement_id for i in kept]
        current["applied_at"] = [dt.datetime.now(dt.UTC)] * len(kept)
        current["version"] = [applied[key] for key in last]
        # A current row shares its fields and time with its version: processed once for both.
        processed: dict[int, Any] = {}
        upsert.write(conn, upsert.records, current, processed)
        if versions:
            upsert.write(conn, upsert.versions, versions, processed)
        if not pairs:
            return
        subjects: dict[str, list[Any]] = {
            "dataset": [d for d, _, _ in pairs],
            "bucket": [subject_bucket(ref) for _, ref, _ in pairs],
            "written_us": [time.time_ns() // 1_000] * len(pairs),
            "subject_ref": [ref for _, ref, _ in pairs],
            "record_key": [key for _, _, key in pairs],
        }
        upsert.write(conn, upsert.subjects, subjects, processed)

    def _new_pairs(
        self, conn: Connection, rows: Sequence[Row]
    ) -> tuple[list[tuple[str, str, str]], dict[str, list[str]]]:
        """(dataset, subject, key) of each record ``rows`` apply under a subject it does not have in the
        read model now (new, or given to another subject), in order, each once; and per dataset, the keys of
        ``rows`` the read model holds a record of now."""
        keys: dict[str, list[str]] = {}
        for r in rows:
            keys.setdefault(r.dataset, []).append(r.record_key)
        held: dict[tuple[str, str], str] = {}
        for dataset, named in keys.items():
            found = conn.execute(self._upserts.held_subjects, {"dataset": dataset, "keys": named})
            held.update(((dataset, key), ref) for key, ref in found)
        present: dict[str, list[str]] = {}
        for dataset, key in held:
            present.setdefault(dataset, []).append(key)
        pairs: dict[tuple[str, str, str], None] = {}
        for r in rows:
            if held.get((r.dataset, r.record_key)) != r.subject_ref:
                held[(r.dataset, r.record_key)] = r.subject_ref
                pairs[(r.dataset, r.subject_ref, r.record_key)] = None
        return list(pairs), present

    def purge_dataset(self, dataset: str, topic: str | None = None) -> int:
        """Delete every row of ``dataset``, of every generation, and its recorded terms (its agreement ended:
        R5); returns how many rows. The served rows' positions stay: the events were judged, and a later
        grant starts the dataset over. A generation being built (of ``topic``) loses its positions too."""
        names = [dataset, other_storage(dataset)]
        with self._writing() as conn:
            conn.execute(delete(grants).where(grants.c.dataset == dataset))
            conn.execute(delete(record_history).where(record_history.c.dataset.in_(names)))
            conn.execute(delete(subject_records).where(subject_records.c.dataset.in_(names)))
            purged = int(conn.execute(delete(records).where(records.c.dataset.in_(names))).rowcount or 0)
            if topic is not None:
                conn.execute(delete(positions).where(positions.c.topic == topic + OTHER))
                conn.execute(delete(chain_heads).where(chain_heads.c.topic == topic + OTHER))
        self.forget_deleted()
        return purged

    def forget_deleted(self) -> bool:
        """On SQLite, leave no copy of deleted rows on disk: their bytes are already zeroed in the file
        (``secure_delete``), and the write-ahead log is emptied and truncated now. Returns whether it is
        (False on PostgreSQL, whose files keep deleted tuples until VACUUM)."""
        if not self.embedded:
            return False
        with self.engine.connect() as conn:
            driver = conn.connection.dbapi_connection
            assert isinstance(driver, sqlite3.Connection)
            return truncate_write_ahead_log(driver)

    def reset_dataset(
        self, dataset: str, topic: str, *, terms: str, agreement_id: str, granted: str | None = None
    ) -> int:
        """Start ``dataset`` over under new terms (an agreement activated, or replaced by narrower ones): its
        rows of every generation go, its topic's positions and chain heads go back to the start, and the
        terms (and ``granted``, what they grant) are recorded, in one transaction. Returns how many rows
        went. The projection then brings the dataset back from its first event (the backfill)."""
        insert = insert_for(self._dialect)
        names = [dataset, other_storage(dataset)]
        with self._writing() as conn:
            stmt = insert(grants).values(
                dataset=dataset, terms=terms, agreement_id=agreement_id, recorded_at=dt.datetime.now(dt.UTC),
                granted=granted, stored_as=None, building_as=None, retired_as=None,
            )  # fmt: skip
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[grants.c.dataset],
                    set_={name: stmt.excluded[name] for name in _RECORDED},
                )
            )
            deleted = int(conn.execute(delete(records).where(records.c.dataset.in_(names))).rowcount or 0)
            conn.execute(delete(record_history).where(record_history.c.dataset.in_(names)))
            conn.execute(delete(subject_records).where(subject_records.c.dataset.in_(names)))
            for table in (positions, chain_heads):
                conn.execute(delete(table).where(table.c.topic.in_([topic, topic + OTHER])))
        self.forget_deleted()
        return deleted

    def start_building(self, dataset: str, topic: str, *, terms: str, agreement_id: str, granted: str) -> str:
        """Record new terms that only widen what ``dataset``'s served rows grant, and open a generation to
        project them into from the dataset's start, beside the served one (which goes on being served and
        kept up to date); returns its storage name. :meth:`swap_built` serves it once it has caught up."""
        with self._writing() as conn:
            gen = _generations(conn, lock=self._row_lock("update")).get(dataset)
            recorded = conn.execute(select(grants.c.terms).where(grants.c.dataset == dataset)).scalar()
            if gen is not None and gen.building is not None and recorded == terms:
                return gen.building  # another worker opened it for the same terms first
            if gen is None or gen.building is not None or gen.retired is not None:
                raise ValueError(f"{dataset!r} has no served generation alone to build beside: {gen}")
            building = other_storage(gen.served)
            for table in (positions, chain_heads):
                conn.execute(delete(table).where(table.c.topic == topic + OTHER))
            conn.execute(
                grants.update()
                .where(grants.c.dataset == dataset)
                .values(terms=terms, agreement_id=agreement_id, granted=granted, building_as=building,
                        recorded_at=dt.datetime.now(dt.UTC))
            )  # fmt: skip
        return building

    def swap_built(self, dataset: str, topic: str) -> bool:
        """Serve ``dataset``'s generation being built, once it stands at least where the served one does in
        every partition of ``topic`` (read here, whichever worker projects them): its positions and chain
        heads become the served ones, and the generation served until now is retired (see
        :meth:`delete_retired`), in one transaction. False: nothing changed (none is built, or not yet)."""
        with self._writing() as conn:
            gen = _generations(conn, lock=self._row_lock("update")).get(dataset)
            if gen is None or gen.building is None:
                return False
            stands = select(positions.c.partition, positions.c.next_offset)
            served = {p: at for p, at in conn.execute(stands.where(positions.c.topic == topic))}
            built = {p: at for p, at in conn.execute(stands.where(positions.c.topic == topic + OTHER))}
            if any(built.get(p, 0) < at for p, at in served.items()):
                return False
            for table in (positions, chain_heads):
                built_rows = [
                    {**r._mapping, "topic": topic}
                    for r in conn.execute(select(table).where(table.c.topic == topic + OTHER))
                ]
                conn.execute(delete(table).where(table.c.topic.in_([topic, topic + OTHER])))
                if built_rows:
                    conn.execute(insert_for(self._dialect)(table), built_rows)
            conn.execute(
                grants.update()
                .where(grants.c.dataset == dataset)
                .values(stored_as=None if gen.building == dataset else gen.building, building_as=None,
                        retired_as=gen.served)
            )  # fmt: skip
        return True

    def delete_retired(self, *, budget_s: float | None = None, chunk: int = 5_000) -> int:
        """Delete the rows of generations swapped out, ``chunk`` rows of a table per transaction (so live
        batches pass between), until none is left or ``budget_s`` has passed; returns how many rows went.
        A retired generation is forgotten in the transaction that finds fewer than ``chunk`` rows left in
        every table (so, with ``budget_s``, however slow the disk: at least one transaction runs)."""
        deadline = None if budget_s is None else time.monotonic() + budget_s
        deleted = 0
        for dataset, gen in sorted(self.generations().items()):
            if gen.retired is None:
                continue
            while True:
                with self._writing() as conn:
                    went = [int(conn.execute(stmt).rowcount or 0) for stmt in _chunk_of(gen.retired, chunk)]
                    finished = all(n < chunk for n in went)
                    if finished:
                        conn.execute(
                            grants.update()
                            .where(grants.c.dataset == dataset, grants.c.retired_as == gen.retired)
                            .values(retired_as=None)
                        )
                deleted += sum(went)
                if finished or (deadline is not None and time.monotonic() >= deadline):
                    break
        if deleted:
            self.forget_deleted()
        return deleted

    def request_replay(self, dataset: str) -> bool:
        """Ask the projection to project ``dataset`` again from its start (events it refused pass now): the
        recorded terms are marked stale, and the worker's next reconcile resets the dataset under its own
        lock. False when this read model holds no grant of ``dataset``."""
        with self._writing() as conn:
            marked = conn.execute(grants.update().where(grants.c.dataset == dataset).values(terms=REPLAY))
            return bool(marked.rowcount)

    def recorded_terms(self) -> dict[str, str]:
        """Dataset → the terms its rows were projected under."""
        with self.engine.connect() as conn:
            return {d: t for d, t in conn.execute(select(grants.c.dataset, grants.c.terms))}

    def granted(self, dataset: str) -> str | None:
        """What the recorded terms of ``dataset`` grant (as recorded); None: not recorded."""
        query = select(grants.c.granted).where(grants.c.dataset == dataset)
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one_or_none()

    def replace_with(self, source: ReadModelStore, *, chunk: int = 5_000) -> None:
        """Make this read model's rows, positions and chain heads exactly ``source``'s, in one transaction:
        a reader sees the old contents until the commit and the new ones after (the rebuild's swap)."""
        with self.engine.begin() as conn, source.engine.connect() as src:
            for table in (records, record_history, subject_records, positions, chain_heads, grants):
                conn.execute(delete(table))
                result = src.execution_options(yield_per=chunk).execute(select(table))
                for part in result.partitions(chunk):
                    conn.execute(insert_for(self._dialect)(table), [dict(r._mapping) for r in part])

    def state_hash(self) -> str:
        """SHA-256 over what the consumer can see, in key order: dataset, key, granted fields (canonical
        JSON) and how many events made each record. Equal read models hash equal, wherever they live."""
        digest = hashlib.sha256()
        query = select(records.c.record_key, records.c.fields, records.c.version).order_by(
            records.c.record_key
        )
        with self.engine.connect() as conn:
            for name, dataset in sorted(_visible(conn).items(), key=lambda kept: kept[1]):
                held = query.where(records.c.dataset == name)
                for key, fields, version in conn.execution_options(yield_per=5_000).execute(held):
                    canonical = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
                    digest.update(f"{dataset}\t{key}\t{canonical}\t{version}\n".encode())
        return digest.hexdigest()

    # --- reading ---------------------------------------------------------------------------------

    def versions(self, dataset: str) -> dict[str, int]:
        """Record key → number of events applied to it."""
        query = select(records.c.record_key, records.c.version).where(
            records.c.dataset == _served_name(dataset)
        )
        with self.engine.connect() as conn:
            return {k: int(v) for k, v in conn.execute(query)}

    def page(
        self,
        dataset: str,
        *,
        limit: int,
        after_key: str | None = None,
        where: RowFilter | None = None,
        sort: tuple[str, Value, bool] | None = None,
        offset: int = 0,
        as_of: dt.datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Records in key order after ``after_key``; or, with ``sort`` = (field, a value of its type,
        descending), in that field's order (then key order) from ``offset``. ``where``: a row filter.
        ``as_of``: each record as its latest version up to that time had it (records without one are left
        out)."""
        if as_of is None:
            served = records.c.dataset == _served_name(dataset)
            source = select(records.c.record_key, records.c.fields).where(served).subquery()
        else:
            source = _versions_as_of(dataset, as_of)
        query = select(source.c.record_key, source.c.fields)
        if where is not None:
            query = query.where(filter_sql.where(where, source.c.fields))
        if sort is None:
            if after_key is not None:
                query = query.where(source.c.record_key > after_key)
            query = query.order_by(source.c.record_key)
        else:
            name, sample, descending = sort
            column = filter_sql.typed(source.c.fields, name, sample)
            ordered = column.desc() if descending else column.asc()
            query = query.order_by(ordered.nulls_last(), source.c.record_key)
            query = query.offset(offset)
        query = query.limit(limit)
        with self.engine.connect() as conn:
            return [{"key": k, "fields": f} for k, f in conn.execute(query)]

    def get(
        self, dataset: str, record_key: str, *, as_of: dt.datetime | None = None
    ) -> dict[str, Any] | None:
        """The record; ``as_of``: as its latest version up to that time had it (None: none yet)."""
        if as_of is None and self._point_read is not None:
            found = self._point_read.fields(self.engine, dataset, record_key)
            return None if found is None else {"key": record_key, "fields": found}
        if as_of is None:
            query = select(records.c.fields).where(
                records.c.dataset == _served_name(dataset), records.c.record_key == record_key
            )
        else:
            versions = _versions_until(dataset, as_of, record_key)
            query = (
                select(versions.c.fields)
                .order_by(versions.c.occurred_at.desc(), versions.c.seq.desc())
                .limit(1)
            )
        with self.engine.connect() as conn:
            found = conn.execute(query).scalar_one_or_none()
        return None if found is None else {"key": record_key, "fields": found}

    def prune_history(self, horizons: Mapping[str, dt.datetime]) -> int:
        """Forget, in each dataset of ``horizons``, the past versions no read "as of" its horizon or later
        can return: of each record's versions that occurred at or before the horizon, only the latest stays
        (it is what such a read answers until the next version). Datasets not named keep every version;
        current rows are never touched. One transaction; returns how many versions went."""
        forgotten = 0
        with self._writing() as conn:
            kept = _generations(conn, lock=self._row_lock("share"))
            for dataset, before in sorted(horizons.items()):
                gen = kept.get(dataset, Generations(dataset))
                for name in (n for n in (gen.served, gen.building) if n is not None):
                    forgotten += int(conn.execute(_superseded_versions(name, before)).rowcount or 0)
        return forgotten

    def version_count(self, dataset: str) -> int:
        """How many record versions ``dataset`` keeps for reads "as of" a past time (current ones too)."""
        name = _served_name(dataset)
        past = select(func.count()).select_from(record_history).where(record_history.c.dataset == name)
        current = select(func.count()).select_from(records).where(records.c.dataset == name)
        with self.engine.connect() as conn:
            return int(conn.execute(past).scalar_one()) + int(conn.execute(current).scalar_one())

    def count(self, dataset: str | None = None) -> int:
        """How many records the consumer sees, of ``dataset`` or of every dataset."""
        if dataset is None:
            return sum(n for _, n in self.datasets())
        query = select(func.count()).select_from(records).where(records.c.dataset == _served_name(dataset))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def last_applied(self, dataset: str) -> dt.datetime | None:
        """When a row of ``dataset`` was last written (None: never)."""
        query = select(func.max(records.c.applied_at)).where(records.c.dataset == _served_name(dataset))
        with self.engine.connect() as conn:
            found = conn.execute(query).scalar_one_or_none()
        if found is not None and found.tzinfo is None:  # SQLite keeps no zone; the hub writes UTC
            found = found.replace(tzinfo=dt.UTC)
        return found

    def holds(self, dataset: str) -> bool:
        """Whether any row of ``dataset`` is here (one index probe, whatever the size)."""
        query = select(records.c.record_key).where(records.c.dataset == _served_name(dataset)).limit(1)
        with self.engine.connect() as conn:
            return conn.execute(query).first() is not None

    def datasets(self) -> list[tuple[str, int]]:
        """(dataset, how many records the consumer sees) of each dataset it holds rows of, in order."""
        query = select(records.c.dataset, func.count()).group_by(records.c.dataset)
        with self.engine.connect() as conn:
            visible = _visible(conn)
            counted = [(visible[name], int(n)) for name, n in conn.execute(query) if name in visible]
        return sorted(counted)


#: The columns of ``grants`` that recording new terms sets.
_RECORDED = ("terms", "agreement_id", "recorded_at", *_GENERATION_COLUMNS)


def _generations(conn: Connection, *, lock: str | None = None) -> dict[str, Generations]:
    """Dataset → where its rows are kept, read in ``conn``. ``lock`` (PostgreSQL; on SQLite the transaction
    holds the file's write lock already): "share", the rows read stay as they are until the transaction
    ends (a write of rows); "update", and no one else may lock them meanwhile (a change of generations, so
    two workers' swaps wait for each other instead of deadlocking)."""
    g = grants.c
    query = select(g.dataset, g.stored_as, g.building_as, g.retired_as)
    if lock is not None:
        query = query.with_for_update(read=lock == "share")
    return {
        d: Generations(served or d, building, retired) for d, served, building, retired in conn.execute(query)
    }


def _served_name(dataset: Any) -> Any:
    """SQL: the storage name ``dataset``'s served rows are kept under (its own, unless a generation built
    under another was swapped in)."""
    stored = select(grants.c.stored_as).where(grants.c.dataset == dataset).scalar_subquery()
    return func.coalesce(stored, dataset)


def _visible(conn: Connection) -> dict[str, str]:
    """Storage name → dataset, of every generation served (rows of no recorded terms are kept under their
    dataset's own name); generations built or retired are not."""
    kept = _generations(conn)
    hidden = {name for gen in kept.values() for name in (gen.building, gen.retired) if name}
    served = {gen.served: dataset for dataset, gen in kept.items()}
    held = conn.execute(select(records.c.dataset).distinct()).scalars()
    return {name: served.get(name, name) for name in held if name in served or name not in hidden}


def _chunk_of(name: str, chunk: int) -> list[Any]:
    """DELETEs of up to ``chunk`` rows kept under storage ``name`` from each table (pairs, versions, rows)."""
    pairs, versions, rows = subject_records.c, record_history.c, records.c
    pair_key = tuple_(pairs.dataset, pairs.bucket, pairs.written_us, pairs.subject_ref, pairs.record_key)
    return [
        delete(subject_records).where(
            pair_key.in_(select(*subject_records.c).where(pairs.dataset == name).limit(chunk))
        ),
        delete(record_history).where(
            versions.id.in_(select(versions.id).where(versions.dataset == name).limit(chunk))
        ),
        delete(records).where(
            rows.dataset == name,
            rows.record_key.in_(select(rows.record_key).where(rows.dataset == name).limit(chunk)),
        ),
    ]


class _Placed(NamedTuple):
    """What one transaction of :meth:`ReadModelStore.apply` writes, by dataset and topic."""

    rows: Sequence[Row]
    positions: Mapping[TopicPartition, int]
    purges: Sequence[tuple[str, str]]
    exclusions: Sequence[tuple[str, str]]
    heads: ChainHeads

    def served(self, kept: Mapping[str, Generations]) -> _Placed:
        """Into the served generations (``kept``): rows under their storage names; an erased subject out of a
        retired generation too, whose rows are not all deleted yet."""
        moved = {d: gen for d, gen in kept.items() if gen.served != d or gen.retired is not None}
        if not moved:
            return self

        def name(dataset: str) -> str:
            gen = moved.get(dataset)
            return dataset if gen is None else gen.served

        rows = [r if name(r.dataset) == r.dataset else r._replace(dataset=name(r.dataset)) for r in self.rows]
        purges = [(name(d), ref) for d, ref in self.purges]
        purges += [(g.retired, ref) for d, ref in self.purges if (g := moved.get(d)) and g.retired]
        exclusions = [(name(d), key) for d, key in self.exclusions]
        return self._replace(rows=rows, purges=purges, exclusions=exclusions)

    def building(self, dataset: str, topic: str, name: str) -> _Placed:
        """Into ``dataset``'s generation being built (storage ``name``), whose positions and chain heads are
        kept under ``topic`` + :data:`OTHER`; nothing of another dataset."""
        return _Placed(
            rows=[r._replace(dataset=name) for r in self.rows if r.dataset == dataset],
            positions={(t + OTHER, p): at for (t, p), at in self.positions.items() if t == topic},
            purges=[(name, ref) for d, ref in self.purges if d == dataset],
            exclusions=[(name, key) for d, key in self.exclusions if d == dataset],
            heads={(t + OTHER, p, who): h for (t, p, who), h in self.heads.items() if t == topic},
        )


class _Upserts:
    """The write statements of :meth:`ReadModelStore.apply`, built once per dialect. Rows never go through
    SQLAlchemy's per-row parameter handling, which cost more than the database's work: on SQLite they go
    straight to the driver's executemany (SQL compiled once, each value through its column type's own bind
    processor); on PostgreSQL a batch is one statement per table, its rows given as one JSON array."""

    def __init__(self, dialect: Dialect) -> None:
        insert = insert_for(dialect.name)
        heads = insert(chain_heads)
        pos = insert(positions)
        self.records = _records_upsert(insert(records))
        self.versions = insert(record_history)
        self.subjects = _pair_kept(insert(subject_records))
        self.held_subjects = _held_subjects(dialect.name)
        self.supersede = _superseding(dialect.name)
        self.pairs_of = _pairs_of_subject()
        self.purges = _subject_purges()
        self.exclusions = _record_exclusions()
        self.chain_heads = heads.on_conflict_do_update(
            index_elements=[chain_heads.c.topic, chain_heads.c.partition, chain_heads.c.producer],
            set_={"sequence": heads.excluded.sequence, "hash": heads.excluded.hash},
        )
        self.positions = pos.on_conflict_do_update(
            index_elements=[positions.c.topic, positions.c.partition],
            set_={"next_offset": pos.excluded.next_offset},
        )
        self._direct: dict[int, _DirectStatement] = {}
        self._from_json: dict[int, tuple[Any, tuple[str, ...]]] = {}
        written = (
            (self.records, records, _records_upsert),
            (self.versions, record_history, None),
            (self.subjects, subject_records, _pair_kept),
        )
        for stmt, table, on_conflict in written:
            if dialect.name == "sqlite":
                self._direct[id(stmt)] = _DirectStatement(stmt, table, dialect)
            else:
                self._from_json[id(stmt)] = _from_json(table, on_conflict)

    def write(
        self, conn: Connection, stmt: Any, columns: dict[str, list[Any]], processed: dict[int, Any]
    ) -> None:
        """Execute ``stmt`` once per row, given column by column (every list as long). ``processed``:
        values already through their bind processor, by identity, for as long as the columns live."""
        direct = self._direct.get(id(stmt))
        if direct is not None:
            conn.exec_driver_sql(direct.sql, direct.parameters(columns, processed))
            return
        from_json, names = self._from_json[id(stmt)]
        given = [columns[n] for n in names]
        rows = [dict(zip(names, values, strict=True)) for values in zip(*given, strict=True)]
        conn.execute(from_json, {"rows": rows})


def _pair_kept(pairs: Any) -> Any:
    """``pairs`` (an INSERT into ``subject_records``) that leaves a pair already there as it is."""
    return pairs.on_conflict_do_nothing()


def _records_upsert(rec: Any) -> Any:
    """``rec`` (an INSERT into ``records``) that updates a record already there: the later event wins, and
    the record counts every event applied to it."""
    return rec.on_conflict_do_update(
        index_elements=[records.c.dataset, records.c.record_key],
        set_={
            # A key that a later event gives another subject is that subject's now: its erasure takes it.
            "subject_ref": rec.excluded.subject_ref,
            "fields": rec.excluded.fields,
            "event_id": rec.excluded.event_id,
            "occurred_at": rec.excluded.occurred_at,
            "agreement_id": rec.excluded.agreement_id,
            "applied_at": rec.excluded.applied_at,
            "version": records.c.version + rec.excluded.version,
        },
    )


def _from_json(table: Table, on_conflict: Callable[[Any], Any] | None) -> tuple[Any, tuple[str, ...]]:
    """An INSERT into ``table`` (PostgreSQL) whose rows come as one JSON array of objects (``rows``), read
    on the server by ``json_to_recordset``, meeting a row already there as ``on_conflict`` says (the rule
    of the row-by-row statement); and the columns it takes, in order."""
    names = tuple(str(c.name) for c in table.c if not (c.primary_key and c.autoincrement is True))
    given = (
        func.json_to_recordset(bindparam("rows", type_=JSON))
        .table_valued(*(column(n, table.c[n].type) for n in names))
        .render_derived(with_types=True)
    )
    from_json = postgresql.insert(table).from_select(list(names), select(*(given.c[n] for n in names)))
    return (from_json if on_conflict is None else on_conflict(from_json)), names


def _held_subjects(dialect: str) -> Any:
    """(record_key, subject_ref) of the records of ``dataset`` among ``keys`` (a list), one statement
    whatever their number."""
    return select(records.c.record_key, records.c.subject_ref).where(_among_keys(dialect))


def _among_keys(dialect: str) -> Any:
    """SQL: a record of ``dataset`` among ``keys`` (a list: an array on PostgreSQL, JSON on SQLite)."""
    if dialect == "postgresql":
        keys: Any = bindparam("keys", type_=postgresql.ARRAY(String))
        return and_(records.c.dataset == bindparam("dataset"), records.c.record_key == any_(keys))
    listed: Any = select(column("value")).select_from(func.json_each(bindparam("keys", type_=JSON)))
    return and_(records.c.dataset == bindparam("dataset"), records.c.record_key.in_(listed))


#: The columns a current record and its past versions share.
_VERSION_COLUMNS = ("dataset", "record_key", "subject_ref", "fields", "occurred_at")


def _superseding(dialect: str) -> Any:
    """INSERT into ``record_history`` of the current records of ``dataset`` among ``keys``, as they are
    (copied in the database, the fields' text unchanged): done just before later events replace them."""
    current = select(*(records.c[n] for n in _VERSION_COLUMNS)).where(_among_keys(dialect))
    return record_history.insert().from_select(list(_VERSION_COLUMNS), current)


def _keep_past_versions_alone(conn: Connection, prefix: str) -> None:
    """A read model made before ``record_history``: its ``record_versions`` held every version, the current
    one too. Each version but the one its current record is (the last applied with the record's time) goes
    into ``record_history``, in the order applied; then ``record_versions`` goes."""
    # (NOT EXISTS with index lookups: a NOT IN over millions of ids is not hashed in PostgreSQL's work_mem.)
    conn.exec_driver_sql(
        f"INSERT INTO {prefix}record_history (dataset, record_key, subject_ref, fields, occurred_at) "
        "SELECT v.dataset, v.record_key, v.subject_ref, v.fields, v.occurred_at "
        f"FROM {prefix}record_versions v WHERE NOT EXISTS (SELECT 1 FROM {prefix}records r "
        "WHERE r.dataset = v.dataset AND r.record_key = v.record_key AND r.occurred_at = v.occurred_at "
        f"AND v.id = (SELECT max(c.id) FROM {prefix}record_versions c WHERE c.dataset = v.dataset "
        "AND c.record_key = v.record_key AND c.occurred_at = v.occurred_at)) ORDER BY v.id"
    )
    conn.exec_driver_sql(f"DROP TABLE {prefix}record_versions")


def _pairs_of_subject() -> Any:
    """(written_us, record_key) of the pairs of one subject (``dataset``, ``bucket``, ``subject_ref``): a
    read of its bucket."""
    pairs = subject_records.c
    return select(pairs.written_us, pairs.record_key).where(
        pairs.dataset == bindparam("dataset"),
        pairs.bucket == bindparam("bucket"),
        pairs.subject_ref == bindparam("subject_ref"),
    )


def _subject_purges() -> list[Any]:
    """The statements that purge one pair of an erased subject (every column of ``subject_records`` as a
    parameter): its record and versions while they are the subject's, then the pair; each by its key."""
    named = {c.name: bindparam(c.name, type_=c.type) for c in subject_records.c}
    return [
        *(
            delete(table).where(
                table.c.dataset == named["dataset"],
                table.c.record_key == named["record_key"],
                table.c.subject_ref == named["subject_ref"],
            )
            for table in (records, record_history)
        ),
        delete(subject_records).where(*(c == named[c.name] for c in subject_records.c)),
    ]


def _record_exclusions() -> list[Any]:
    """The statements that remove one record (``excluded_dataset``, ``excluded_key``) and its versions: a
    row filter it no longer passes. Its pair stays (pairs are a superset)."""
    dataset = bindparam("excluded_dataset", type_=String)
    key = bindparam("excluded_key", type_=String)
    return [
        delete(table).where(table.c.dataset == dataset, table.c.record_key == key)
        for table in (records, record_history)
    ]


class _PointRead:
    """The current fields of one record by key, compiled once and run on the driver's own cursor: the query
    API's most frequent read, where building, compiling and wrapping the statement cost more than SQLite's
    lookup."""

    def __init__(self, dialect: Dialect) -> None:
        query = select(records.c.fields).where(
            records.c.dataset == _served_name(bindparam("dataset")),
            records.c.record_key == bindparam("record_key"),
        )
        compiled = query.compile(dialect=dialect)
        self.sql = compiled.string
        self.names: list[str] = list(compiled.positiontup or [])
        self.load = records.c.fields.type.dialect_impl(dialect).result_processor(dialect, None)

    def fields(self, engine: Engine, dataset: str, record_key: str) -> Any:
        given = {"dataset": dataset, "record_key": record_key}
        conn = engine.raw_connection()  # from the pool, and back to it (rolled back) on close
        try:
            cursor = conn.cursor()
            cursor.execute(self.sql, tuple(given[n] for n in self.names))
            row = cursor.fetchone()
            cursor.close()
        finally:
            conn.close()
        if row is None:
            return None
        return row[0] if self.load is None else self.load(row[0])


class _DirectStatement:
    """A statement compiled once for the driver, with each parameter's bind processor."""

    def __init__(self, stmt: Any, table: Table, dialect: Dialect) -> None:
        keys = [c.name for c in table.c if not (c.primary_key and c.autoincrement is True)]
        compiled = stmt.compile(dialect=dialect, column_keys=keys)
        self.sql = compiled.string
        self.names: list[str] = list(compiled.positiontup or [])
        # The dialect's own implementation of each type: a generic DateTime has no bind processor, and the
        # driver's default would write another text form than the one every query compares with.
        self.processors = [
            table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in self.names
        ]

    def parameters(self, columns: dict[str, list[Any]], processed: dict[int, Any]) -> list[tuple[Any, ...]]:
        """Each row's values in the statement's order, through their bind processors. A value met before
        (the batch's time, a record's fields and time shared by its row and its version) is processed once:
        ``processed`` holds them by identity, for as long as the columns that hold them live."""
        ordered = []
        for name, process in zip(self.names, self.processors, strict=True):
            column = columns[name]
            if process is not None:
                done = []
                for value in column:
                    result = processed.get(id(value))
                    if result is None:
                        result = processed[id(value)] = process(value)
                    done.append(result)
                column = done
            ordered.append(column)
        return list(zip(*ordered, strict=True))


def _superseded_versions(dataset: str, before: dt.datetime) -> Any:
    """DELETE of ``dataset``'s past versions that occurred before ``before`` and have a later version of
    their record at or before it (a later past version, or the current record, which is later than every
    past one of the same time): no read "as of" ``before`` or later returns them."""
    older, newer = record_history.alias("older"), record_history.alias("newer")
    horizon = _utc(before)
    superseded = (
        select(newer.c.id)
        .where(
            newer.c.dataset == older.c.dataset,
            newer.c.record_key == older.c.record_key,
            newer.c.occurred_at <= horizon,
            or_(
                newer.c.occurred_at > older.c.occurred_at,
                and_(newer.c.occurred_at == older.c.occurred_at, newer.c.id > older.c.id),
            ),
        )
        .exists()
    )
    current = (
        select(records.c.record_key)
        .where(
            records.c.dataset == older.c.dataset,
            records.c.record_key == older.c.record_key,
            records.c.occurred_at <= horizon,
            records.c.occurred_at >= older.c.occurred_at,
        )
        .exists()
    )
    doomed = select(older.c.id).where(
        older.c.dataset == dataset, older.c.occurred_at < horizon, or_(superseded, current)
    )
    return delete(record_history).where(record_history.c.id.in_(doomed))


#: Where a current record ranks among versions of the same time: after every past one.
_CURRENT = 2**62


def _versions_until(dataset: str, as_of: dt.datetime, record_key: str | None = None) -> Any:
    """(record_key, fields, occurred_at, seq) of every version of ``dataset``'s served records (past and
    current; of ``record_key`` alone, if given) that occurred at or before ``as_of``. The latest of a
    record is the one of the latest time, then of the highest ``seq``."""
    name, until = _served_name(dataset), _utc(as_of)
    h, r = record_history.c, records.c
    past = select(h.record_key, h.fields, h.occurred_at, h.id.label("seq")).where(
        h.dataset == name, h.occurred_at <= until
    )
    current = select(r.record_key, r.fields, r.occurred_at, literal(_CURRENT, BigInteger).label("seq")).where(
        r.dataset == name, r.occurred_at <= until
    )
    if record_key is not None:
        past, current = past.where(h.record_key == record_key), current.where(r.record_key == record_key)
    return union_all(past, current).subquery()


def _versions_as_of(dataset: str, as_of: dt.datetime) -> Any:
    """(record_key, fields) of each record's latest version that occurred at or before ``as_of``."""
    versions = _versions_until(dataset, as_of)
    latest_first = func.row_number().over(
        partition_by=versions.c.record_key, order_by=(versions.c.occurred_at.desc(), versions.c.seq.desc())
    )
    ranked = select(versions.c.record_key, versions.c.fields, latest_first.label("rank")).subquery()
    return select(ranked.c.record_key, ranked.c.fields).where(ranked.c.rank == 1).subquery()


def _utc(moment: dt.datetime) -> dt.datetime:
    """SQLite keeps times without a zone, and the hub writes them in UTC: compare in UTC."""
    if moment.tzinfo is None:
        raise ValueError("a time without a time zone is ambiguous")
    return moment.astimezone(dt.UTC)


def _unanswered_is_unavailable(context: ExceptionContext) -> None:
    """A database server that cannot be reached (no connection could be made) or went away under a
    connection is :class:`ReadModelUnavailable`, which callers wait out (the query API answers 503 with
    Retry-After, the worker waits), rather than an error of the statement."""
    if context.is_pre_ping:
        return  # the pool's check of a pooled connection: a dead one is replaced, not an error
    if context.connection is None or context.is_disconnect:
        raise ReadModelUnavailable(
            f"the read-model database does not answer ({type(context.original_exception).__name__})"
        ) from None


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the query API read while the projection writes; FULL sync keeps committed batches on a crash.
    _switch_to_wal(cur)
    cur.execute("PRAGMA synchronous=FULL")
    # A deleted row's bytes are overwritten, not left in free space (an erased subject's name, say).
    cur.execute("PRAGMA secure_delete=ON")
    cur.close()


def _switch_to_wal(cur: Any) -> None:
    """SQLite answers "database is locked" at once, without waiting, to a connection that asks for WAL
    while another is switching the same new file to it: ask again until the switch is made."""
    deadline = time.monotonic() + SQLITE_LOCK_TIMEOUT_S
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
