"""The outbox mapping: which table and columns the outbox connector reads, how a row's type becomes an
event, and the SQL an agency runs once to make its table ready (:func:`setup_sql`).

A YAML (``.yaml``, ``.yml``) or TOML (``.toml``) file::

    table: public.outbox          # the outbox table (schema-qualified, or found on the search path)
    id: id                        # unique, increasing: bigint/bigserial, integer or uuid
    txid: txid                    # xid8 DEFAULT pg_current_xact_id(): the writing transaction (commit order)
    payload: payload              # jsonb, json or text: the record as the dataset's schema has it
    type: type                    # optional; without it every row is UPSERTED
    key: aggregate_id             # optional: the subject of an erasure whose payload does not name it
    types:                        # the type column's values → the event types of the publisher
      MemberRegistered: UPSERTED
      MemberCorrected: CORRECTED
      MemberErased: ERASED
    unmapped: reject              # a row of a type not listed: reject (default) or skip (a filter)
    notify: sharehub_outbox       # optional: LISTEN on this channel; setup_sql's trigger NOTIFYs it

Only ``table`` and ``payload`` are required; the others default to the names above (``type`` to none).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sharehub.envelope import EVENT_TYPES
from sharehub.errors import ConfigurationError

UNMAPPED = ("reject", "skip")
_KEYS = {"table", "id", "txid", "payload", "type", "key", "types", "unmapped", "notify"}


@dataclass(frozen=True)
class OutboxMapping:
    #: The table's name as its parts: (schema, table), or (table,) to be found on the search path.
    table: tuple[str, ...]
    payload: str
    id: str = "id"
    txid: str = "txid"
    type: str | None = None
    key: str | None = None
    types: dict[str, str] = field(default_factory=dict)
    unmapped: str = "reject"
    notify: str | None = None

    @property
    def table_name(self) -> str:
        return ".".join(self.table)

    @property
    def filtered(self) -> list[str] | None:
        """The types the connector reads, when the others are skipped (filtered out in the query)."""
        return sorted(self.types) if self.type is not None and self.unmapped == "skip" else None

    def event_type(self, value: str | None) -> str | None:
        """The event type of a row whose type column holds ``value``; None when it has none."""
        if self.type is None:
            return "UPSERTED"
        return self.types.get(value) if value is not None else None

    @classmethod
    def of(cls, raw: Any, where: str = "the outbox mapping") -> OutboxMapping:
        if not isinstance(raw, dict):
            raise ConfigurationError(f"{where} must be a mapping of settings, not {type(raw).__name__}")
        unknown = sorted(set(raw) - _KEYS)
        if unknown:
            raise ConfigurationError(f"{where} has unknown settings: {', '.join(unknown)}")
        names = {k: _name(raw, k, where) for k in ("table", "payload", "id", "txid", "type", "key", "notify")}
        if names["table"] is None or names["payload"] is None:
            raise ConfigurationError(f"{where} must name the 'table' and its 'payload' column")
        table = tuple(names["table"].split("."))
        if len(table) > 2 or not all(table):
            raise ConfigurationError(f"{where}: 'table' is a table or schema.table, not {names['table']!r}")
        types = raw.get("types", {})
        if not isinstance(types, dict) or not all(isinstance(k, str) for k in types):
            raise ConfigurationError(f"{where}: 'types' maps the type column's values to event types")
        wrong = sorted(f"{k}: {v}" for k, v in types.items() if v not in EVENT_TYPES)
        if wrong:
            raise ConfigurationError(f"{where}: event types are {', '.join(EVENT_TYPES)}; not {wrong}")
        if names["type"] is None and types:
            raise ConfigurationError(f"{where}: 'types' needs the 'type' column they are values of")
        if names["type"] is not None and not types:
            raise ConfigurationError(f"{where}: a 'type' column needs 'types' saying what its values mean")
        unmapped = raw.get("unmapped", "reject")
        if unmapped not in UNMAPPED:
            raise ConfigurationError(f"{where}: 'unmapped' is reject or skip, not {unmapped!r}")
        return cls(
            table=table,
            payload=names["payload"],
            id=names["id"] or "id",
            txid=names["txid"] or "txid",
            type=names["type"],
            key=names["key"],
            types=dict(types),
            unmapped=unmapped,
            notify=names["notify"],
        )

    @classmethod
    def load(cls, path: Path) -> OutboxMapping:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(f"the outbox mapping is unreadable: {exc}") from None
        try:
            if path.suffix == ".toml":
                raw: Any = tomllib.loads(text)
            elif path.suffix in (".yaml", ".yml"):
                raw = yaml.safe_load(text)
            else:
                raise ConfigurationError(f"{path}: an outbox mapping is a .yaml, .yml or .toml file")
        except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
            raise ConfigurationError(f"{path} does not parse: {exc}") from None
        return cls.of(raw, str(path))


def _name(raw: dict[str, Any], key: str, where: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value or "\x00" in value or "$" in value:
        raise ConfigurationError(f"{where}: {key!r} must be a name, not {value!r}")
    return value


def setup_sql(mapping: OutboxMapping, *, role: str | None = None, delete: bool = False) -> list[str]:
    """The statements that make the mapping's table ready, each idempotent: the commit-order column and its
    index, the NOTIFY trigger (when the mapping names a channel), and a login ``role`` that may only read
    the table (and delete from it, with ``delete``). The role gets its password apart (``\\password``)."""
    from psycopg import sql

    def q(text: str, **parts: sql.Composable) -> str:
        return sql.SQL(text).format(**parts).as_string(None)

    table = sql.Identifier(*mapping.table)
    txid, ident, base = sql.Identifier(mapping.txid), sql.Identifier(mapping.id), mapping.table[-1]
    statements = [
        q("ALTER TABLE {t} ADD COLUMN IF NOT EXISTS {x} xid8 NOT NULL DEFAULT pg_current_xact_id()",
          t=table, x=txid),
        q("CREATE INDEX IF NOT EXISTS {i} ON {t} ({x}, {id})",
          i=sql.Identifier(f"{base}_{mapping.txid}_{mapping.id}"), t=table, x=txid, id=ident),
    ]  # fmt: skip
    if mapping.notify is not None:
        function = sql.Identifier(*mapping.table[:-1], f"{base}_sharehub_notify")
        trigger = sql.Identifier(f"{base}_sharehub_notify")
        statements += [
            q("CREATE OR REPLACE FUNCTION {f}() RETURNS trigger LANGUAGE plpgsql AS "
              "$sharehub$BEGIN PERFORM pg_notify({c}, ''); RETURN NULL; END$sharehub$",
              f=function, c=sql.Literal(mapping.notify)),
            q("DROP TRIGGER IF EXISTS {n} ON {t}", n=trigger, t=table),
            q("CREATE TRIGGER {n} AFTER INSERT ON {t} FOR EACH STATEMENT EXECUTE FUNCTION {f}()",
              n=trigger, t=table, f=function),
        ]  # fmt: skip
    if role is not None:
        if not role or "$" in role or "\x00" in role:
            raise ConfigurationError(f"{role!r} is not a role name the set-up can use")
        who = sql.Identifier(role)
        schema = sql.Identifier(mapping.table[0]) if len(mapping.table) == 2 else sql.Identifier("public")
        statements += [
            q("DO $sharehub$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {r}) THEN "
              "CREATE ROLE {w} LOGIN; END IF; END$sharehub$", r=sql.Literal(role), w=who),
            q("GRANT USAGE ON SCHEMA {s} TO {w}", s=schema, w=who),
            q("GRANT {r} ON {t} TO {w}", r=sql.SQL("SELECT, DELETE" if delete else "SELECT"), t=table, w=who),
        ]  # fmt: skip
    return statements
