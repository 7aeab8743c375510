"""A consumer's read model: its granted records and the log positions that produced them.

One store per consumer agency: a SQLite file of its own by default, or a schema of its own in one
PostgreSQL database. Rows and positions are written in the same transaction, so a projection that dies at
any point restarts exactly where its last committed batch ended (nothing lost, nothing applied twice).

Rows that leave (an erased subject, an agreement that ended, a dataset reset) leave the disk too, on
SQLite: deleted bytes are zeroed (``secure_delete``) and the write-ahead log, whose frames keep earlier
page images, is truncated right after (:mod:`sharehub.sqlite_files`). PostgreSQL keeps deleted tuples in
its files until VACUUM reuses their space (VACUUM FULL rewrites the table without them) and in its WAL
segments until they are recycled: see docs/security.md for what an operator runs after an erasure.

The tables are defined in :mod:`projections.read_model_tables`, the statements run over them in
:mod:`projections.read_model_sql`; this module connects to the database and keeps the store's transactions.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    create_engine,
    delete,
    event,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Connection, ExceptionContext, make_url
from sqlalchemy.exc import DBAPIError

from projections import filter_sql
from projections.read_model_sql import (
    RECORDED,
    Placed,
    PointRead,
    Upserts,
    deletion_chunk,
    in_utc,
    keep_past_versions_alone,
    kept_generations,
    served_name,
    superseded_versions,
    versions_as_of,
    versions_until,
    visible_names,
)
from projections.read_model_tables import (
    GENERATION_COLUMNS,
    OTHER,
    PAIR_COLUMNS,
    SUPERSEDED_INDEXES,
    SUPERSEDED_TABLES,
    ChainHeads,
    Generations,
    Row,
    TopicPartition,
    chain_heads,
    grants,
    insert_for,
    metadata,
    other_storage,
    positions,
    record_history,
    records,
    schema_name,
    subject_bucket,
    subject_records,
)
from sharehub.errors import ReadModelUnavailable
from sharehub.row_filter import RowFilter, Value
from sharehub.sqlite_files import truncate_write_ahead_log

#: Recorded terms that no agreement has: the dataset is projected again from its start.
REPLAY = "replay requested"

#: How long a connection to a SQLite read model waits for another's write lock before it gives up.
SQLITE_LOCK_TIMEOUT_S = 30.0


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
        self._upserts = Upserts(self.engine.dialect)
        self._point_read = PointRead(self.engine.dialect, self._schema)

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
            for name in (n for n in GENERATION_COLUMNS if n not in has):
                kind = grants.c[name].type.compile(dialect=conn.dialect)
                conn.exec_driver_sql(f"ALTER TABLE {prefix}grants ADD COLUMN {name} {kind}")
        metadata.create_all(conn)
        versioned = ["records"]
        if found.has_table("record_versions", schema=self._schema):
            versioned.append("record_versions")
        if made_before:
            self._pair_subjects(conn, found, prefix, versioned)
        if len(versioned) > 1:
            keep_past_versions_alone(conn, prefix)

    def _pair_subjects(self, conn: Connection, found: Any, prefix: str, versioned: list[str]) -> None:
        """A read model made before ``subject_records``: its pairs, from the pairs it kept or the rows and
        versions it holds (``versioned``: their tables); what they replace goes."""
        if found.has_table("record_subjects", schema=self._schema):
            held: Any = text(f"SELECT dataset, subject_ref, record_key FROM {prefix}record_subjects")
        else:
            held = text(
                " UNION ".join(f"SELECT {', '.join(PAIR_COLUMNS)} FROM {prefix}{t}" for t in versioned)
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
        for name in SUPERSEDED_TABLES:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {prefix}{name}")
        for name in SUPERSEDED_INDEXES:
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
            return kept_generations(conn)

    def _row_lock(self, mode: str) -> str | None:
        """The lock :func:`kept_generations` takes on ``grants`` in a transaction of :meth:`_writing`."""
        return None if self.embedded else mode

    @contextlib.contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A transaction that reads where rows are kept, then writes: no swap of generations can come
        between. SQLite's write lock is taken at its start; PostgreSQL's ``grants`` rows are locked by
        :func:`kept_generations` (``lock``)."""
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
            placed = Placed(rows, new_positions, purges, exclusions, heads or {})
            kept = kept_generations(conn, lock=self._row_lock("share"))
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
            "occurred_at": [in_utc(r.occurred_at) for r in rows],
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
                    set_={name: stmt.excluded[name] for name in RECORDED},
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
            gen = kept_generations(conn, lock=self._row_lock("update")).get(dataset)
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
            gen = kept_generations(conn, lock=self._row_lock("update")).get(dataset)
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
                    went = [
                        int(conn.execute(stmt).rowcount or 0) for stmt in deletion_chunk(gen.retired, chunk)
                    ]
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
            for name, dataset in sorted(visible_names(conn).items(), key=lambda kept: kept[1]):
                held = query.where(records.c.dataset == name)
                for key, fields, version in conn.execution_options(yield_per=5_000).execute(held):
                    canonical = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
                    digest.update(f"{dataset}\t{key}\t{canonical}\t{version}\n".encode())
        return digest.hexdigest()

    # --- reading ---------------------------------------------------------------------------------

    def versions(self, dataset: str) -> dict[str, int]:
        """Record key → number of events applied to it."""
        query = select(records.c.record_key, records.c.version).where(
            records.c.dataset == served_name(dataset)
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
            served = records.c.dataset == served_name(dataset)
            source = select(records.c.record_key, records.c.fields).where(served).subquery()
        else:
            source = versions_as_of(dataset, as_of)
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
        if as_of is None:
            found = self._point_read.fields(self.engine, dataset, record_key)
            return None if found is None else {"key": record_key, "fields": found}
        versions = versions_until(dataset, as_of, record_key)
        query = (
            select(versions.c.fields).order_by(versions.c.occurred_at.desc(), versions.c.seq.desc()).limit(1)
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
            kept = kept_generations(conn, lock=self._row_lock("share"))
            for dataset, before in sorted(horizons.items()):
                gen = kept.get(dataset, Generations(dataset))
                for name in (n for n in (gen.served, gen.building) if n is not None):
                    forgotten += int(conn.execute(superseded_versions(name, before)).rowcount or 0)
        return forgotten

    def version_count(self, dataset: str) -> int:
        """How many record versions ``dataset`` keeps for reads "as of" a past time (current ones too)."""
        name = served_name(dataset)
        past = select(func.count()).select_from(record_history).where(record_history.c.dataset == name)
        current = select(func.count()).select_from(records).where(records.c.dataset == name)
        with self.engine.connect() as conn:
            return int(conn.execute(past).scalar_one()) + int(conn.execute(current).scalar_one())

    def count(self, dataset: str | None = None) -> int:
        """How many records the consumer sees, of ``dataset`` or of every dataset."""
        if dataset is None:
            return sum(n for _, n in self.datasets())
        query = select(func.count()).select_from(records).where(records.c.dataset == served_name(dataset))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def last_applied(self, dataset: str) -> dt.datetime | None:
        """When a row of ``dataset`` was last written (None: never)."""
        query = select(func.max(records.c.applied_at)).where(records.c.dataset == served_name(dataset))
        with self.engine.connect() as conn:
            found = conn.execute(query).scalar_one_or_none()
        if found is not None and found.tzinfo is None:  # SQLite keeps no zone; the hub writes UTC
            found = found.replace(tzinfo=dt.UTC)
        return found

    def holds(self, dataset: str) -> bool:
        """Whether any row of ``dataset`` is here (one index probe, whatever the size)."""
        query = select(records.c.record_key).where(records.c.dataset == served_name(dataset)).limit(1)
        with self.engine.connect() as conn:
            return conn.execute(query).first() is not None

    def datasets(self) -> list[tuple[str, int]]:
        """(dataset, how many records the consumer sees) of each dataset it holds rows of, in order."""
        query = select(records.c.dataset, func.count()).group_by(records.c.dataset)
        with self.engine.connect() as conn:
            visible = visible_names(conn)
            counted = [(visible[name], int(n)) for name, n in conn.execute(query) if name in visible]
        return sorted(counted)


#: The columns of ``grants`` that recording new terms sets.


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
