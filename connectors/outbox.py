"""The PostgreSQL transactional outbox connector: publishes each row of an agency's outbox table exactly
once, in commit order, resuming from its stored position after a crash.

**Commit order.** A ``bigserial`` id is taken when a row is inserted, not when its transaction commits: a
transaction that took id 7 can commit after the one that took id 8, and a poller that read up to 8 would
skip 7 forever. So each row also carries the id of the transaction that wrote it, in an ``xid8`` column the
table fills by itself (``DEFAULT pg_current_xact_id()``, see :func:`connectors.outbox_mapping.setup_sql`),
and the connector reads only rows whose transaction is older than every transaction still in progress::

    WHERE txid < pg_snapshot_xmin(pg_current_snapshot()) AND (txid, id) > (acked txid, acked id)
    ORDER BY txid, id

Every transaction below that horizon has ended, so each row it committed is visible to the same
statement's snapshot; a row that shows up later belongs to a transaction at or above the horizon, so it
sorts after every row read before. The pair (txid, id) is thus an order in which nothing ever appears
behind the read position, and it is the row's position for the exactly-once core
(:mod:`connectors.exactly_once`), packed into one integer: ``txid · 2^128 + rank(id)``, where an integer
id's rank is ``id + 2^63`` and a uuid's its 128 bits. The id alone would not do even behind the horizon:
a transaction that took its xid first may insert its row after a younger one inserted its own, and
commit first. The horizon is the whole cluster's: a transaction left open anywhere holds back the rows
committed after it began (the lag shows them waiting) until it ends; none is lost or reordered.

**Exactly once.** The table is one endless source, ``outbox:<database>/<schema>.<table>``, opened once
and fed a batch at a time (``--checkpoint-every`` rows): each batch is published, acknowledged and
checkpointed before the next is read, so a kill -9 loses at most a batch's checkpoint, and the restart
finds on the topic what of it was already written (the core's reading of each lane down to its mark).

**Waking up.** With ``notify`` in the mapping the connector LISTENs on that channel (the setup's trigger
NOTIFYs it after every insert statement, or the agency's code does) and reads as soon as a notification
comes; it reads every ``poll_interval`` seconds anyway, which bounds the delay when a notification is
lost, a connection drops, or a row waited behind an open transaction.

**Bad rows** (a payload that is not a JSON object, does not match the dataset's schema or quality rules,
a type the mapping does not know, an erasure that names no subject) go to the rejects file with the row's
id, txid and the reason, never its content, and the connector goes on. The table is only read (a role
with SELECT on it is enough) unless ``delete_published``: then, after each checkpoint, the rows at or
below the acknowledged position are deleted, except the rejected ones (the agency may want them).

**Lag** is the number of rows in the table beyond the acknowledged position (waiting behind the horizon
included), counted after each batch (at most every two seconds) and whenever the connector is idle, and
kept in the journal for ``sharehub connect status`` and the metrics.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from connectors.exactly_once import OpenSource
from connectors.jsonl_source import BadLine, Line
from connectors.outbox_mapping import OutboxMapping
from sharehub.errors import ConfigurationError, InputError, SourceUnavailable

#: Bits of a position below the txid: room for any id's rank.
ID_BITS = 128
_RANKS = (1 << ID_BITS) - 1
_INT_OFFSET = 1 << 63
_INTEGER_TYPES = ("bigint", "integer", "smallint")
#: Seconds between two counts of the lag while batches follow each other.
LAG_EVERY = 2.0


def position(txid: int, rank: int) -> int:
    """A row's position: its transaction first, then its id's rank."""
    return (txid << ID_BITS) | rank


def split(pos: int) -> tuple[int, int]:
    """(txid, rank) of a position."""
    return pos >> ID_BITS, pos & _RANKS


@dataclass(frozen=True)
class IdKind:
    """How an id column's values rank: integers shifted to be non-negative, uuids by their 128 bits."""

    uuid: bool

    def rank(self, value: Any) -> int:
        if self.uuid:
            return uuid.UUID(str(value)).int
        return int(value) + _INT_OFFSET

    def value(self, rank: int) -> Any:
        return uuid.UUID(int=rank) if self.uuid else rank - _INT_OFFSET


# --- the connection -------------------------------------------------------------------------------------


def checked_dsn(dsn: str) -> str:
    """The DSN (a ``postgresql://`` URL, SQLAlchemy's ``postgresql+psycopg://`` too, or ``key=value``
    pairs), refused when it carries a password: that belongs in a file, never on a command line."""
    if dsn.startswith("postgresql+psycopg://"):
        dsn = "postgresql://" + dsn.removeprefix("postgresql+psycopg://")
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        raise InputError("the DSN does not parse (a postgresql:// URL or key=value pairs)") from None
    if "password" in params:
        raise InputError(
            "the DSN carries a password: leave it out, and give it in an owner-only file "
            "(--password-file) or the way libpq finds it (PGPASSFILE, ~/.pgpass)"
        )
    return dsn


def read_password(path: Path) -> str:
    """A database password from an owner-only file (its last line break dropped)."""
    try:
        mode = path.stat().st_mode & 0o077
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"the password file is unreadable: {exc}") from None
    if mode:
        raise ConfigurationError(f"{path} is readable or writable by others; refusing it: chmod 600 {path}")
    return text.rstrip("\r\n")


def describe(dsn: str) -> str:
    """Where a DSN points, for messages: user@host:port/database (it holds no password)."""
    p = conninfo_to_dict(dsn)
    return f"{p.get('user', '')}@{p.get('host', '')}:{p.get('port', '5432')}/{p.get('dbname', '')}"


def connect(dsn: str, password: str | None = None) -> psycopg.Connection[tuple[Any, ...]]:
    """An autocommit connection (each statement its own snapshot), the password given apart from the DSN."""
    conninfo = make_conninfo(dsn, password=password, application_name="sharehub-outbox", connect_timeout=10)
    with answering(f"a connection to {describe(dsn)}"):
        return psycopg.connect(conninfo, autocommit=True)


@contextmanager
def answering(what: str) -> Iterator[None]:
    """Database errors as sharehub's: the database away is SourceUnavailable, anything else a
    ConfigurationError (a missing column or right is the agency's set-up, not a row's fault)."""
    try:
        yield
    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
        raise SourceUnavailable(f"the outbox database did not answer ({what}): {_first_line(exc)}") from None
    except psycopg.Error as exc:
        raise ConfigurationError(f"the outbox database refused {what}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


# --- the table ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """What the connector takes of one outbox row."""

    id: Any
    txid: int
    payload: Any
    type: str | None
    key: str | None


class OutboxTable:
    """The agency's outbox table, as one autocommit connection reads it (each statement its own snapshot)."""

    def __init__(
        self, dsn: str, mapping: OutboxMapping, *, password: str | None = None, delete: bool = False
    ) -> None:
        self.mapping = mapping
        self.conn = connect(dsn, password)
        try:
            self.source, self.kind = self._inspect(delete)
        except BaseException:
            self.conn.close()
            raise
        self._prepare()

    def _inspect(self, delete: bool) -> tuple[str, IdKind]:
        """The source id, and the id column's kind; a clear error for anything the set-up lacks."""
        m = self.mapping
        name = sql.Identifier(*m.table).as_string(None)
        with answering(f"a look at {m.table_name}"):
            found = self.conn.execute(
                "SELECT current_database(), n.nspname, c.relname, has_table_privilege(c.oid, 'SELECT'), "
                "has_table_privilege(c.oid, 'DELETE') FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)",
                (name,),
            ).fetchone()
            if found is None:
                raise ConfigurationError(f"no table {m.table_name} that this role can see")
            database, schema, table, can_select, can_delete = found
            columns: dict[str, str] = dict(
                self.conn.execute(
                    "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                    "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
                    (name,),
                ).fetchall()
            )
        if not can_select or (delete and not can_delete):
            right = "SELECT and DELETE" if delete else "SELECT"
            raise ConfigurationError(f"this role may not {right} on {m.table_name}: GRANT it {right}")
        wanted = {"id": m.id, "txid": m.txid, "payload": m.payload, "type": m.type, "key": m.key}
        missing = [
            f"{what} {col!r}" for what, col in wanted.items() if col is not None and col not in columns
        ]
        if missing:
            raise ConfigurationError(
                f"{m.table_name} has no column {', '.join(missing)} (the mapping names it)"
            )
        if columns[m.txid] != "xid8":
            raise ConfigurationError(
                f"{m.table_name}.{m.txid} is {columns[m.txid]}, not xid8 DEFAULT pg_current_xact_id(): "
                "commit order needs it ('sharehub connect outbox-setup' prints the statement)"
            )
        if columns[m.id] not in (*_INTEGER_TYPES, "uuid"):
            raise ConfigurationError(
                f"{m.table_name}.{m.id} is {columns[m.id]}: an id is an integer or a uuid"
            )
        return f"outbox:{database}/{schema}.{table}", IdKind(uuid=columns[m.id] == "uuid")

    def _prepare(self) -> None:
        m = self.mapping
        table, txid, ident = sql.Identifier(*m.table), sql.Identifier(m.txid), sql.Identifier(m.id)
        optional = [
            sql.SQL("{}::text").format(sql.Identifier(c)) if c is not None else sql.NULL
            for c in (m.type, m.key)
        ]
        only: sql.Composable = sql.SQL("")
        if m.filtered is not None:
            only = sql.SQL(" AND {}::text = ANY(%(types)s)").format(sql.Identifier(m.type or ""))
        beyond = sql.SQL("({x}, {id}) > (%(txid)s::xid8, %(id)s)").format(x=txid, id=ident)
        self._read = sql.SQL(
            "SELECT {id}, {x}::text, {payload}, {type}, {key} FROM {t} "
            "WHERE {x} < pg_snapshot_xmin(pg_current_snapshot()) AND {beyond}{only} "
            "ORDER BY {x}, {id} LIMIT %(limit)s"
        ).format(
            id=ident, x=txid, payload=sql.Identifier(m.payload), type=optional[0], key=optional[1], t=table,
            beyond=beyond, only=only,
        )  # fmt: skip
        self._count = sql.SQL("SELECT count(*) FROM {t} WHERE {beyond}{only}").format(
            t=table, beyond=beyond, only=only
        )
        self._delete = sql.SQL(
            "DELETE FROM {t} WHERE ({x}, {id}) <= (%(txid)s::xid8, %(id)s) "
            "AND NOT ({id}::text = ANY(%(keep)s::text[])){only}"
        ).format(t=table, x=txid, id=ident, only=only)

    def _params(self, after: int, **more: Any) -> dict[str, Any]:
        txid, rank = split(after)
        params = {"txid": str(txid), "id": self.kind.value(rank), **more}
        if self.mapping.filtered is not None:
            params["types"] = self.mapping.filtered
        return params

    def check_horizon(self, acked: int) -> None:
        """Refuse a database whose transactions have not yet reached the last acknowledged row's: a restored
        or another cluster, whose new rows would sort behind the position and never be read."""
        txid, _ = split(acked)
        with answering("its transaction horizon"):
            row = self.conn.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())::text").fetchone()
        assert row is not None
        if txid >= int(row[0]):
            raise ConfigurationError(
                f"{self.source} has not reached transaction {txid}, the last acknowledged row's (it is at "
                f"{row[0]}): is it restored from a backup, or another cluster? Its new rows would never be "
                "read"
            )

    def read(self, after: int, limit: int) -> list[Row]:
        """Up to ``limit`` rows beyond ``after``, in commit order, whose transactions are all behind the
        horizon."""
        with answering("the outbox's rows"):
            rows = self.conn.execute(self._read, self._params(after, limit=limit)).fetchall()
        return [Row(r[0], int(r[1]), r[2], r[3], r[4]) for r in rows]

    def position(self, row: Row) -> int:
        return position(row.txid, self.kind.rank(row.id))

    def pending(self, after: int) -> int:
        """Rows beyond ``after`` (the lag), those still behind an open transaction's horizon included."""
        with answering("a count of the outbox"):
            found = self.conn.execute(self._count, self._params(after)).fetchone()
        return int(found[0]) if found is not None else 0

    def delete_through(self, acked: int, keep: list[str]) -> int:
        """Delete the rows at or below ``acked`` but those whose id is in ``keep`` (the rejected)."""
        with answering("the deletion of published rows"):
            return self.conn.execute(self._delete, self._params(acked, keep=keep)).rowcount

    def close(self) -> None:
        self.conn.close()


class Listener:
    """A connection that LISTENs on the mapping's channel, to wake the connector when rows come."""

    def __init__(self, dsn: str, channel: str, *, password: str | None = None) -> None:
        self.conn = connect(dsn, password)
        with answering(f"LISTEN {channel}"):
            self.conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))

    def wait(self, timeout: float, stop: threading.Event) -> bool:
        """Until a notification comes (True), ``timeout`` seconds pass or ``stop`` is set (False)."""
        deadline = time.monotonic() + timeout
        with answering("a wait for notifications"):
            while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
                if any(True for _ in self.conn.notifies(timeout=min(left, 0.25), stop_after=1)):
                    for _ in self.conn.notifies(timeout=0.0):  # the ones that came with it
                        pass
                    return True
        return False

    def close(self) -> None:
        self.conn.close()


@dataclass(frozen=True)
class OutboxDatabase:
    """Where the outbox is and how to reach it: each connection it opens is new (after a failure too)."""

    dsn: str
    mapping: OutboxMapping
    password: str | None = None
    #: The role must be allowed to delete rows (``--delete-published``).
    delete: bool = False

    def table(self) -> OutboxTable:
        return OutboxTable(self.dsn, self.mapping, password=self.password, delete=self.delete)

    def listener(self) -> Listener | None:
        if self.mapping.notify is None:
            return None
        return Listener(self.dsn, self.mapping.notify, password=self.password)


# --- rejects --------------------------------------------------------------------------------------------


class OutboxRejects:
    """The rejects file: one JSON line per bad row (``{"id", "txid", "reason"}``, no row content), each row
    once even across restarts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: set[tuple[str, str]] = set()
        if path.is_file():
            for raw in path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(raw)
                    self._seen.add((str(entry["txid"]), str(entry["id"])))
                except (ValueError, KeyError, TypeError):
                    continue

    @property
    def ids(self) -> list[str]:
        return sorted({ident for _, ident in self._seen})

    def write(self, bad: list[tuple[Row, str]]) -> None:
        new = [(row, reason) for row, reason in bad if (str(row.txid), str(row.id)) not in self._seen]
        if not new:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            for row, reason in new:
                ident = row.id if isinstance(row.id, int) else str(row.id)
                entry = {"id": ident, "txid": str(row.txid), "reason": reason}
                out.write(json.dumps(entry, ensure_ascii=False) + "\n")
            out.flush()
            os.fsync(out.fileno())  # on disk before the journal moves past these rows
        self._seen.update((str(row.txid), str(row.id)) for row, _ in new)


# --- the connector --------------------------------------------------------------------------------------


@dataclass
class OutboxTotals:
    """What one run did."""

    published: int = 0
    #: Rows a run before this one had put on the topic (killed before its checkpoint).
    skipped: int = 0
    rejected: int = 0
    deleted: int = 0


class OutboxConnector:
    """Reads ``table`` in commit order and publishes each row through ``stream`` (the core's endless
    source), a batch of ``batch`` rows at a time."""

    def __init__(
        self,
        database: OutboxDatabase,
        stream: OpenSource,
        key_field: str,
        rejects: OutboxRejects,
        *,
        batch: int = 5000,
        poll_interval: float = 2.0,
        progress: Callable[[OutboxTotals, int | None], None] | None = None,
    ) -> None:
        self.database = database
        self.stream = stream
        self.key_field = key_field
        self.rejects = rejects
        self.batch = batch
        self.poll_interval = poll_interval
        self.delete_published = database.delete
        self.progress = progress
        self.stop = threading.Event()
        self.totals = OutboxTotals()
        self._table: OutboxTable | None = None
        self._listener: Listener | None = None
        self._counted = 0.0

    def run(self, *, once: bool = False) -> OutboxTotals:
        """Publish until stopped; ``once``: until no row is left that can go now. A database that does not
        answer is tried again every ``poll_interval`` (its error in the journal) unless ``once``."""
        while not self.stop.is_set():
            try:
                table = self._connected(listen=not once)
                if self._step(table) == self.batch:
                    continue  # more are waiting
                self._measure(table, force=True)
            except SourceUnavailable as exc:
                self._disconnect()
                if once:
                    raise
                self.stream.failed(str(exc))
                self.stop.wait(self.poll_interval)
                continue
            if once:
                break
            self._wait()
        self._disconnect()
        return self.totals

    def _connected(self, *, listen: bool) -> OutboxTable:
        if self._table is None:
            table = self.database.table()
            try:
                table.check_horizon(self.stream.acked)
            except BaseException:
                table.close()
                raise
            self._table = table
            self.stream.failed(None)  # answering again (or never stopped): no error to show
            if self.delete_published:  # rows a crash left between a checkpoint and their deletion
                self.totals.deleted += table.delete_through(self.stream.acked, self.rejects.ids)
        if listen and self._listener is None and self.database.mapping.notify is not None:
            self._listener = self.database.listener()
        return self._table

    def _step(self, table: OutboxTable) -> int:
        rows = table.read(self.stream.acked, self.batch)
        if not rows:
            return 0
        by_position = {table.position(r): r for r in rows}
        if len(by_position) < len(rows):
            raise ConfigurationError(f"{table.source}: its id column {table.mapping.id!r} is not unique")
        lines = [self._line(table.mapping, pos, row) for pos, row in by_position.items()]
        report = self.stream.publish(lines, on_rejected=lambda bad: self._reject(bad, by_position))
        self.totals.published += report.published
        self.totals.skipped += report.skipped
        self.totals.rejected += len(report.rejected)
        if self.delete_published:
            self.totals.deleted += table.delete_through(self.stream.acked, self.rejects.ids)
        self._measure(table, force=False)
        if self.progress is not None:
            self.progress(self.totals, self.stream.state.pending)
        return len(rows)

    def _line(self, mapping: OutboxMapping, pos: int, row: Row) -> Line | BadLine:
        event_type = mapping.event_type(row.type)
        if event_type is None:
            return BadLine(pos, f"type {str(row.type)[:100]!r} is not one the mapping's types name")
        payload = row.payload
        if isinstance(payload, str | bytes):
            try:
                payload = json.loads(payload)
            except ValueError as exc:
                return BadLine(pos, f"the payload is not valid JSON: {exc}")
        if not isinstance(payload, dict):
            return BadLine(pos, f"the payload is not a JSON object but {type(payload).__name__}")
        if event_type == "ERASED" and self.key_field not in payload and row.key is not None:
            payload = {self.key_field: row.key}
        return Line(pos, payload, event_type)

    def _reject(self, bad: list[BadLine], rows: dict[int, Row]) -> None:
        self.rejects.write([(rows[b.number], b.reason) for b in bad])

    def _measure(self, table: OutboxTable, *, force: bool) -> None:
        now = time.monotonic()
        if force or now - self._counted >= LAG_EVERY:
            self.stream.measured(table.pending(self.stream.acked))
            self._counted = now

    def _wait(self) -> None:
        if self._listener is None:
            self.stop.wait(self.poll_interval)
            return
        try:
            self._listener.wait(self.poll_interval, self.stop)
        except SourceUnavailable:  # the next read finds out whether the database is away
            self._listener.close()
            self._listener = None

    def _disconnect(self) -> None:
        for conn in (self._table, self._listener):
            if conn is not None:
                with suppress(psycopg.Error):
                    conn.close()
        self._table = self._listener = None
