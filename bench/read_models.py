"""A bench hub's read models on either backend: what they hold, what they take, and a bare way to read them.

The hub's read models are SQLite files under its home, or, when its ``read_model_url`` names a PostgreSQL
database, a schema per consumer in that database (:class:`projections.read_model.ReadModelStore`). A bench
that measures them asks the same questions of both: how far the projection has come (the positions the
stores hold), how many bytes they take, and how fast a plain SQLAlchemy read of a record is beside the API.
A fresh SQLite home starts empty; a PostgreSQL database keeps what an earlier run left in its schemas, so
a run drops them before it starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from projections.read_model import ReadModelStore
from projections.read_model_tables import schema_name
from services.hub import Hub

#: Every table of a schema with its indexes and TOAST: what the consumer's read model takes in the database.
_SCHEMA_BYTES = text(
    "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :schema AND c.relkind = 'r'"
)
#: The server settings that decide what a PostgreSQL commit costs and keeps, recorded with the run.
DURABILITY = ("fsync", "synchronous_commit", "full_page_writes")
_SHOWN = ("server_version", *DURABILITY)


def backend(hub: Hub) -> str:
    """The dialect of the hub's read models: ``sqlite`` or ``postgresql``."""
    return _dialect(hub.settings.read_model_url_template)


def _dialect(url_template: str) -> str:
    return make_url(url_template.replace("{consumer}", "x")).get_backend_name()


def events_projected(hub: Hub, consumers: list[str], topic: str) -> int:
    """Events every read model of ``consumers`` has applied: the least, over them, of their positions on
    ``topic`` summed over its partitions, read through the hub's own stores (a store the worker has not
    made yet is made here, empty, as the worker makes it)."""
    return min(
        (sum(o for (t, _), o in hub.store(c).positions().items() if t == topic) for c in consumers),
        default=0,
    )


def drop_schemas(url_template: str, consumers: list[str]) -> None:
    """Remove the consumers' schemas, with whatever an earlier run left in them, from a PostgreSQL
    database. Nothing to do for SQLite read models: their files live in the hub's home, which a run
    starts afresh and removes."""
    if _dialect(url_template) != "postgresql":
        return
    for consumer in consumers:
        store = ReadModelStore(url_template, consumer)
        try:
            store.drop()
        finally:
            store.close()


def stored_bytes(hub: Hub, consumer: str, *, with_logs: bool = False) -> int:
    """Bytes of ``consumer``'s read model: its SQLite file (``with_logs``: and its write-ahead log and
    shared-memory index), or its PostgreSQL schema's tables with their indexes (the server's own
    write-ahead log is the whole database's, not counted)."""
    store = hub.store(consumer)
    if store.embedded:
        db = Path(str(store.engine.url.database))
        files = [db, *(db.with_name(db.name + s) for s in ("-wal", "-shm"))] if with_logs else [db]
        return sum(f.stat().st_size for f in files if f.exists())
    with store.engine.connect() as conn:
        return int(conn.execute(_SCHEMA_BYTES, {"schema": schema_name(consumer)}).scalar_one())


def disk_bytes(hub: Hub) -> int:
    """What every consumer's read model takes on disk (:func:`stored_bytes` with the logs)."""
    return sum(stored_bytes(hub, c, with_logs=True) for c in hub.consumers())


def bare_engine(hub: Hub, consumer: str) -> tuple[Engine, str]:
    """A plain SQLAlchemy engine on ``consumer``'s read model, none of the store's options or checks
    (no pre-ping, no pragmas set again), and the name its ``records`` table goes by there."""
    engine = create_engine(hub.settings.read_model_url_template.replace("{consumer}", consumer))
    table = "records" if engine.dialect.name == "sqlite" else f'"{schema_name(consumer)}".records'
    return engine, table


def server_settings(hub: Hub) -> dict[str, Any]:
    """The backend of the hub's read models, and for PostgreSQL where it runs and how durably it commits
    (:data:`DURABILITY`)."""
    return engine_settings(hub.store(hub.consumers()[0]).engine)


def engine_settings(engine: Engine) -> dict[str, Any]:
    """:func:`server_settings` of the database ``engine`` writes to."""
    name = engine.dialect.name
    if name != "postgresql":
        return {"backend": name}
    with engine.connect() as conn:
        shown = {s: str(conn.exec_driver_sql(f"SHOW {s}").scalar_one()) for s in _SHOWN}
    return {"backend": name, "host": engine.url.host, **shown}


def described(settings: dict[str, Any]) -> str:
    """What :func:`engine_settings` found, in a few words for a report: "" for SQLite (its settings are
    the store's own)."""
    if settings["backend"] != "postgresql":
        return ""
    durability = ", ".join(f"{k}={settings[k]}" for k in DURABILITY)
    return f"PostgreSQL {settings['server_version']} on {settings['host']} ({durability})"
