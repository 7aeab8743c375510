"""The statements a read model runs over its tables (:mod:`projections.read_model_tables`): where each
dataset's generations are kept and which are visible, the batched writes of a projected batch, an erased
subject's purge and a record's exclusion, the point read, the deletion of a retired generation in chunks,
and the reads and pruning of past versions. Those that are costly to build are built once per dialect.
:class:`projections.read_model.ReadModelStore` runs them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy import (
    JSON,
    BigInteger,
    String,
    Table,
    and_,
    any_,
    bindparam,
    column,
    delete,
    func,
    literal,
    or_,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Dialect, Engine

from projections.read_model_tables import (
    GENERATION_COLUMNS,
    OTHER,
    ChainHeads,
    Generations,
    Row,
    TopicPartition,
    chain_heads,
    grants,
    insert_for,
    positions,
    record_history,
    records,
    subject_records,
)

RECORDED = ("terms", "agreement_id", "recorded_at", *GENERATION_COLUMNS)


def kept_generations(conn: Connection, *, lock: str | None = None) -> dict[str, Generations]:
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


def served_name(dataset: Any) -> Any:
    """SQL: the storage name ``dataset``'s served rows are kept under (its own, unless a generation built
    under another was swapped in)."""
    stored = select(grants.c.stored_as).where(grants.c.dataset == dataset).scalar_subquery()
    return func.coalesce(stored, dataset)


def visible_names(conn: Connection) -> dict[str, str]:
    """Storage name → dataset, of every generation served (rows of no recorded terms are kept under their
    dataset's own name); generations built or retired are not."""
    kept = kept_generations(conn)
    hidden = {name for gen in kept.values() for name in (gen.building, gen.retired) if name}
    served = {gen.served: dataset for dataset, gen in kept.items()}
    held = conn.execute(select(records.c.dataset).distinct()).scalars()
    return {name: served.get(name, name) for name in held if name in served or name not in hidden}


def deletion_chunk(name: str, chunk: int) -> list[Any]:
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


class Placed(NamedTuple):
    """What one transaction of :meth:`ReadModelStore.apply` writes, by dataset and topic."""

    rows: Sequence[Row]
    positions: Mapping[TopicPartition, int]
    purges: Sequence[tuple[str, str]]
    exclusions: Sequence[tuple[str, str]]
    heads: ChainHeads

    def served(self, kept: Mapping[str, Generations]) -> Placed:
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

    def building(self, dataset: str, topic: str, name: str) -> Placed:
        """Into ``dataset``'s generation being built (storage ``name``), whose positions and chain heads are
        kept under ``topic`` + :data:`OTHER`; nothing of another dataset."""
        return Placed(
            rows=[r._replace(dataset=name) for r in self.rows if r.dataset == dataset],
            positions={(t + OTHER, p): at for (t, p), at in self.positions.items() if t == topic},
            purges=[(name, ref) for d, ref in self.purges if d == dataset],
            exclusions=[(name, key) for d, key in self.exclusions if d == dataset],
            heads={(t + OTHER, p, who): h for (t, p, who), h in self.heads.items() if t == topic},
        )


class Upserts:
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


def keep_past_versions_alone(conn: Connection, prefix: str) -> None:
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


class PointRead:
    """The current fields of one record by key, compiled once and run as the driver's SQL (on SQLite, on the
    driver's own cursor): the query API's most frequent read, where building, compiling and wrapping the
    statement cost more than the database's lookup. ``schema``: the PostgreSQL schema the read model's
    tables are in (named in the SQL)."""

    def __init__(self, dialect: Dialect, schema: str | None = None) -> None:
        query = select(records.c.fields).where(
            records.c.dataset == served_name(bindparam("dataset")),
            records.c.record_key == bindparam("record_key"),
        )
        in_schema: dict[str, Any] = {"schema_translate_map": {None: schema}, "render_schema_translate": True}
        compiled = query.compile(dialect=dialect, **(in_schema if schema else {}))
        self.sql = compiled.string
        #: The parameters in order, for a driver that takes them by place (SQLite); none for one that takes
        #: them by name (psycopg).
        self.names: list[str] = list(compiled.positiontup or [])
        #: SQLite answers from a local file: the driver's own cursor, no Connection around it.
        self.on_driver_cursor = dialect.name == "sqlite"
        self.load = records.c.fields.type.dialect_impl(dialect).result_processor(dialect, None)

    def fields(self, engine: Engine, dataset: str, record_key: str) -> Any:
        given = {"dataset": dataset, "record_key": record_key}
        if self.on_driver_cursor:  # on a pooled connection, rolled back on close
            conn = engine.raw_connection()
            try:
                cursor = conn.cursor()
                cursor.execute(self.sql, tuple(given[n] for n in self.names))
                row = cursor.fetchone()
                cursor.close()
            finally:
                conn.close()
        else:  # a database server: through a Connection, whose errors say when it does not answer
            with engine.connect() as connection:
                row = connection.exec_driver_sql(self.sql, given).first()
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


def superseded_versions(dataset: str, before: dt.datetime) -> Any:
    """DELETE of ``dataset``'s past versions that occurred before ``before`` and have a later version of
    their record at or before it (a later past version, or the current record, which is later than every
    past one of the same time): no read "as of" ``before`` or later returns them."""
    older, newer = record_history.alias("older"), record_history.alias("newer")
    horizon = in_utc(before)
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


def versions_until(dataset: str, as_of: dt.datetime, record_key: str | None = None) -> Any:
    """(record_key, fields, occurred_at, seq) of every version of ``dataset``'s served records (past and
    current; of ``record_key`` alone, if given) that occurred at or before ``as_of``. The latest of a
    record is the one of the latest time, then of the highest ``seq``."""
    name, until = served_name(dataset), in_utc(as_of)
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


def versions_as_of(dataset: str, as_of: dt.datetime) -> Any:
    """(record_key, fields) of each record's latest version that occurred at or before ``as_of``."""
    versions = versions_until(dataset, as_of)
    latest_first = func.row_number().over(
        partition_by=versions.c.record_key, order_by=(versions.c.occurred_at.desc(), versions.c.seq.desc())
    )
    ranked = select(versions.c.record_key, versions.c.fields, latest_first.label("rank")).subquery()
    return select(ranked.c.record_key, ranked.c.fields).where(ranked.c.rank == 1).subquery()


def in_utc(moment: dt.datetime) -> dt.datetime:
    """SQLite keeps times without a zone, and the hub writes them in UTC: compare in UTC."""
    if moment.tzinfo is None:
        raise ValueError("a time without a time zone is ambiguous")
    return moment.astimezone(dt.UTC)
