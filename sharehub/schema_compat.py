"""Schema evolution: may a dataset adopt a new version of its schema?

Events stay on the log for years, so a reader holding the newest schema must read every event any older
version wrote. :func:`check_compatible` applies Avro schema resolution (Avro specification, "Schema
Resolution") with the new schema as reader and each old one as writer, and adds sharehub's governance rule:
a field's classification may not be lowered and a field tagged ``personal`` may not lose the tag (the
projection and crypto-shredding rely on both). It reads schemas only, never events.

Old versions are given oldest first and are called "version 1", "version 2", ... in the problems. Named
types match by full name, or by one of the reader's aliases, as in Java Avro and fastavro. Beyond the
specification, a logical type may not change (a date stays a date; a decimal keeps its scale and may only
gain precision), because a reader would silently misinterpret the numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sharehub.avro import CLASSIFICATIONS, FieldSpec, RecordSchema
from sharehub.errors import SchemaIncompatible

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED = frozenset({"record", "enum", "fixed"})
PROMOTIONS: dict[str, frozenset[str]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}

Type = dict[str, Any] | list[Any]


def check_compatible(new: RecordSchema, old: Sequence[RecordSchema]) -> list[str]:
    """The reasons readers on ``new`` could not read every event ``old`` (oldest first) wrote; empty if
    they can."""
    problems: list[str] = []
    for version, previous in enumerate(old, start=1):
        problems += _Resolution(new.parsed, previous.parsed, version).problems()
        problems += _governance(new, previous, version)
    return problems


def require_compatible(new: RecordSchema, old: Sequence[RecordSchema]) -> None:
    """:func:`check_compatible`, raising SchemaIncompatible with every problem if there is any."""
    problems = check_compatible(new, old)
    if problems:
        listed = "; ".join(problems)
        raise SchemaIncompatible(
            f"the new version of schema {new.name!r} cannot read every old event "
            f"({len(problems)} problem{'s' if len(problems) > 1 else ''}): {listed}"
        )


# --- Avro schema resolution ----------------------------------------------------------------------------


class _Resolution:
    """One reader/writer pair, resolved recursively; collects problems instead of stopping at the first."""

    def __init__(self, reader: dict[str, Any], writer: dict[str, Any], version: int) -> None:
        self._reader = reader
        self._writer = writer
        self._reader_names: dict[str, Any] = reader.get("__named_schemas", {})
        self._writer_names: dict[str, Any] = writer.get("__named_schemas", {})
        self._version = version
        self._in_progress: set[tuple[str, str]] = set()
        self._problems: list[str] = []

    def problems(self) -> list[str]:
        self._resolve(self._reader, self._writer, "")
        return self._problems

    def _resolve(self, reader: Any, writer: Any, path: str, union: Type | None = None) -> None:
        r, w = _node(reader, self._reader_names), _node(writer, self._writer_names)
        if isinstance(w, list):
            for branch in w:
                self._resolve(r, branch, path, union=w)
        elif isinstance(r, list):
            self._resolve_into_union(r, w, path, union)
        else:
            self._resolve_single(r, w, path, union)

    def _resolve_into_union(self, r: list[Any], w: dict[str, Any], path: str, union: Type | None) -> None:
        nodes = [node for node in (_node(b, self._reader_names) for b in r) if isinstance(node, dict)]
        # Avro: the first branch that matches; like Java Avro, a branch of the very same type wins.
        candidates = [node for node in nodes if _exact(node, w)] or [
            node for node in nodes if _matches(node, w)
        ]
        if not candidates:
            self._report(
                path, f"{self._wrote(w, union)}, which no branch of the new type {_describe(r)} can read"
            )
        else:
            self._resolve(candidates[0], w, path)

    def _resolve_single(self, r: dict[str, Any], w: dict[str, Any], path: str, union: Type | None) -> None:
        if not _matches(r, w):
            renamed = r["type"] == w["type"] and r["type"] in NAMED
            why = " (the names differ and no alias of the new type names the old one)" if renamed else ""
            self._report(path, f"{self._wrote(w, union)}, which the new type {_describe(r)} cannot read{why}")
            return
        kind = r["type"]
        self._logical_type(r, w, path)
        if kind in NAMED:
            self._named(r, w, path)
        elif kind == "array":
            self._resolve(r["items"], w["items"], f"{path}[]")
        elif kind == "map":
            self._resolve(r["values"], w["values"], f"{path}{{}}")

    def _named(self, r: dict[str, Any], w: dict[str, Any], path: str) -> None:
        pair = (r["name"], w["name"])
        if pair in self._in_progress:  # a recursive type, already being resolved further up
            return
        self._in_progress.add(pair)
        if r["type"] == "record":
            self._record(r, w, path)
        elif r["type"] == "enum":
            self._enum(r, w, path)
        elif r["size"] != w["size"]:
            self._report(
                path, f"{self._wrote(w)} of {w['size']} bytes; the new {_describe(r)} has {r['size']}"
            )
        self._in_progress.discard(pair)

    def _record(self, r: dict[str, Any], w: dict[str, Any], path: str) -> None:
        written = {f["name"]: f for f in w["fields"]}
        for field in r["fields"]:
            field_path = f"{path}.{field['name']}" if path else field["name"]
            source = _writer_field(field, written)
            if source is not None:
                self._resolve(field["type"], source["type"], field_path)
            elif "default" not in field:
                self._report(
                    field_path,
                    f"the new version reads it ({_describe(field['type'])}) but version {self._version} "
                    f"did not write it ({_describe(w)} has no such field), and it has no default",
                )

    def _enum(self, r: dict[str, Any], w: dict[str, Any], path: str) -> None:
        if "default" in r:
            return
        for symbol in w["symbols"]:
            if symbol not in r["symbols"]:
                self._report(
                    path,
                    f"symbol '{symbol}' written by version {self._version} is missing from the new enum "
                    f"{_short(r['name'])} (and it has no default)",
                )

    def _logical_type(self, r: dict[str, Any], w: dict[str, Any], path: str) -> None:
        r_logical, w_logical = r.get("logicalType"), w.get("logicalType")
        if r_logical != w_logical:
            self._report(
                path,
                f"{self._wrote(w)}, the new version reads {_describe(r)}: a logical type may not change",
            )
        elif r_logical == "decimal" and (
            r.get("scale", 0) != w.get("scale", 0) or r.get("precision", 0) < w.get("precision", 0)
        ):
            self._report(
                path,
                f"{self._wrote(w)} with precision {w.get('precision')} and scale {w.get('scale', 0)}, "
                f"the new decimal has precision {r.get('precision')} and scale {r.get('scale', 0)}",
            )

    def _wrote(self, w: Any, union: Type | None = None) -> str:
        if union is None:
            return f"version {self._version} wrote {_describe(w)}"
        return f"version {self._version} may write {_describe(w)} (a branch of {_describe(union)})"

    def _report(self, path: str, problem: str) -> None:
        where = f"field '{path}'" if path else "the record"
        self._problems.append(f"{where}: {problem}")


def _node(avro_type: Any, named: dict[str, Any]) -> Type:
    """A type as a dict (or a list for a union), with named references looked up."""
    if isinstance(avro_type, list):
        return avro_type
    if isinstance(avro_type, str):
        return {"type": avro_type} if avro_type in PRIMITIVES else dict(named[avro_type])
    inner = avro_type["type"]
    if isinstance(inner, dict | list) or (inner not in PRIMITIVES and inner in named):
        return _node(inner, named)  # {"type": {...}} or {"type": "SomeNamedType"}
    return dict(avro_type)


def _matches(r: dict[str, Any], w: dict[str, Any]) -> bool:
    """Avro's "the schemas match": same or promotable primitive, same kind of container, or named types
    of the same kind whose names match."""
    rk, wk = r["type"], w["type"]
    if wk in PRIMITIVES and rk in PRIMITIVES:
        return rk == wk or rk in PROMOTIONS.get(wk, frozenset())
    if rk != wk:
        return False
    return rk not in NAMED or _names_match(r, w)


def _exact(r: dict[str, Any], w: dict[str, Any]) -> bool:
    """The same type, not merely a promotable one: preferred when choosing a reader union's branch."""
    return r["type"] == w["type"] and _matches(r, w) and r.get("logicalType") == w.get("logicalType")


def _names_match(r: dict[str, Any], w: dict[str, Any]) -> bool:
    namespace = r["name"].rpartition(".")[0]
    aliases = {
        alias if "." in alias or not namespace else f"{namespace}.{alias}" for alias in r.get("aliases", [])
    }
    return bool(r["name"] == w["name"] or w["name"] in aliases)


def _writer_field(field: dict[str, Any], written: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The writer's field a reader field reads: same name, else one of the reader field's aliases."""
    for name in (field["name"], *field.get("aliases", [])):
        if name in written:
            return written[name]
    return None


def _describe(avro_type: Any) -> str:
    """A short human description: ``long``, ``int (date)``, ``enum MemberStatus``, ``[null, string]``."""
    if isinstance(avro_type, list):
        return "[" + ", ".join(_describe(branch) for branch in avro_type) + "]"
    if isinstance(avro_type, str):
        return avro_type if avro_type in PRIMITIVES else _short(avro_type)
    kind = avro_type["type"]
    if not isinstance(kind, str):
        return _describe(kind)
    if kind in NAMED:
        return f"{kind} {_short(avro_type['name'])}"
    if kind == "array":
        return f"array<{_describe(avro_type['items'])}>"
    if kind == "map":
        return f"map<{_describe(avro_type['values'])}>"
    logical = avro_type.get("logicalType")
    return f"{_describe(kind)} ({logical})" if logical else _describe(kind)


def _short(name: str) -> str:
    return name.rpartition(".")[2]


# --- governance ----------------------------------------------------------------------------------------


def _governance(new: RecordSchema, old: RecordSchema, version: int) -> list[str]:
    """Classification never lowered, ``personal`` never dropped, for every field both versions have."""
    problems = []
    for field in new.raw["fields"]:
        names = (field["name"], *field.get("aliases", []))
        before = next((old.fields[name] for name in names if name in old.fields), None)
        if before is not None:
            problems += _field_governance(new.fields[field["name"]], before, version)
    return problems


def _field_governance(now: FieldSpec, before: FieldSpec, version: int) -> list[str]:
    problems = []
    if CLASSIFICATIONS.index(now.classification) < CLASSIFICATIONS.index(before.classification):
        problems.append(
            f"field '{now.name}': classification lowered from {before.classification} (version {version}) "
            f"to {now.classification}; it may only be raised"
        )
    if before.personal and not now.personal:
        problems.append(
            f"field '{now.name}': version {version} tagged it personal and the new version drops the tag; "
            "a personal field stays personal"
        )
    return problems
