"""Avro for sharehub: dataset schemas, their CRC-64-AVRO fingerprints, single-object encoding, and the
conversion between JSON records (what agencies send) and Avro data (what goes on the wire).

Single-object encoding (Avro spec): ``C3 01`` + 8-byte little-endian CRC-64-AVRO fingerprint of the
schema's Parsing Canonical Form + the Avro binary body. The fingerprint tells any reader, years later,
which schema wrote the bytes.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from typing import Any, cast

import fastavro
from fastavro.schema import fingerprint as _fingerprint
from fastavro.schema import to_parsing_canonical_form

from sharehub.errors import UnknownReferenceError
from sharehub.json_records import record_converter

SINGLE_OBJECT_MARKER = b"\xc3\x01"
FINGERPRINT_SIZE = 8
HEADER_SIZE = len(SINGLE_OBJECT_MARKER) + FINGERPRINT_SIZE

CLASSIFICATIONS = ("public", "internal", "confidential", "secret", "top-secret")

Schema = dict[str, Any]


def fingerprint(schema: Schema | str) -> bytes:
    """CRC-64-AVRO fingerprint of a schema, as the 8 little-endian bytes single-object encoding uses."""
    return bytes.fromhex(_fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))


@dataclass(frozen=True)
class FieldSpec:
    """What sharehub knows about one top-level field beyond its Avro type."""

    name: str
    classification: str
    personal: bool
    type: Any


@dataclass(frozen=True)
class RecordSchema:
    """A named Avro record schema, parsed once, with its fingerprint and field metadata."""

    name: str
    raw: Schema
    parsed: Any = field(repr=False)
    fingerprint: bytes
    fields: dict[str, FieldSpec]

    @classmethod
    def from_json(cls, name: str, raw: Schema) -> RecordSchema:
        if raw.get("type") != "record":
            raise UnknownReferenceError(f"schema {name!r} is not an Avro record")
        fields = {
            f["name"]: FieldSpec(
                name=f["name"],
                classification=_classification(name, f),
                personal=bool(f.get("personal", False)),
                type=f["type"],
            )
            for f in raw["fields"]
        }
        return cls(
            name=name, raw=raw, parsed=fastavro.parse_schema(raw), fingerprint=fingerprint(raw), fields=fields
        )

    def encode(self, datum: dict[str, Any]) -> bytes:
        """Avro binary body of ``datum`` (no header)."""
        out = io.BytesIO()
        fastavro.schemaless_writer(out, self.parsed, datum)
        return out.getvalue()

    def decode(self, body: bytes) -> dict[str, Any]:
        """Inverse of :meth:`encode`; refuses trailing bytes."""
        buf = io.BytesIO(body)
        datum = cast(dict[str, Any], fastavro.schemaless_reader(buf, self.parsed, None))
        if buf.tell() != len(body):
            raise ValueError(f"{len(body) - buf.tell()} trailing bytes after the {self.name} record")
        return datum

    def encode_single_object(self, datum: dict[str, Any]) -> bytes:
        return SINGLE_OBJECT_MARKER + self.fingerprint + self.encode(datum)

    def to_json(self, record: dict[str, Any]) -> dict[str, Any]:
        """A record of this schema as JSON values (:func:`datum_to_json`): only the fields whose Avro values
        are not their own JSON form (dates, times, bytes, nested types) are converted."""
        converted = dict(record)
        for name in self._not_json_as_is:
            if name in converted:
                converted[name] = datum_to_json(converted[name])
        return converted

    @cached_property
    def json_converter(self) -> Callable[[Any], dict[str, Any]]:
        """Converts a JSON record to an Avro datum of this schema (:func:`record_from_json`)."""
        return record_converter(self.raw)

    @cached_property
    def _not_json_as_is(self) -> tuple[str, ...]:
        return tuple(name for name, spec in self.fields.items() if not _json_as_is(spec.type))

    def non_finite_field(self, record: dict[str, Any]) -> str | None:
        """The first field of ``record`` holding a NaN or an infinity (anywhere inside it), or None. JSON has
        neither, so no read model or answer could carry one: the hub refuses them."""
        for name in self._may_hold_floats:
            if name in record and not _all_finite(record[name]):
                return name
        return None

    @cached_property
    def _may_hold_floats(self) -> tuple[str, ...]:
        return tuple(name for name, spec in self.fields.items() if _may_hold_floats(spec.type))

    @cached_property
    def personal_fields(self) -> tuple[str, ...]:
        return tuple(name for name, spec in self.fields.items() if spec.personal)

    @cached_property
    def shared_part(self) -> RecordSchema:
        """The record without its personal fields: what the dataset key encrypts."""
        return self._part("Shared", lambda f: not f.get("personal", False))

    @cached_property
    def personal_part(self) -> RecordSchema:
        """Only the personal fields: what a data subject's own key encrypts."""
        return self._part("Personal", lambda f: bool(f.get("personal", False)))

    def _part(self, suffix: str, keep: Any) -> RecordSchema:
        raw = {
            **self.raw,
            "name": self.raw["name"] + suffix,
            "fields": [f for f in self.raw["fields"] if keep(f)],
        }
        return RecordSchema.from_json(f"{self.name}#{suffix.lower()}", raw)


_PRIMITIVES_AS_IS = frozenset({"null", "boolean", "int", "long", "float", "double", "string"})


def _json_as_is(avro_type: Any) -> bool:
    """Whether every value of ``avro_type`` is its own JSON form (no logical type, bytes or nesting)."""
    if isinstance(avro_type, str):
        return avro_type in _PRIMITIVES_AS_IS
    if isinstance(avro_type, list):
        return all(_json_as_is(branch) for branch in avro_type)
    if isinstance(avro_type, dict):
        if avro_type.get("type") == "enum":
            return True
        return "logicalType" not in avro_type and avro_type.get("type") in _PRIMITIVES_AS_IS
    return False


def _may_hold_floats(avro_type: Any) -> bool:
    """Whether a value of ``avro_type`` can be or contain a float or a double."""
    if isinstance(avro_type, str):
        return avro_type in ("float", "double")
    if isinstance(avro_type, list):
        return any(_may_hold_floats(branch) for branch in avro_type)
    if isinstance(avro_type, dict):
        kind = avro_type.get("type")
        if kind == "array":
            return _may_hold_floats(avro_type["items"])
        if kind == "map":
            return _may_hold_floats(avro_type["values"])
        if kind == "record":
            return any(_may_hold_floats(f["type"]) for f in avro_type["fields"])
        return _may_hold_floats(kind)
    return False


def _all_finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_all_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_all_finite(v) for v in value.values())
    return True


def _classification(schema_name: str, f: Schema) -> str:
    level = f.get("classification", "internal")
    if level not in CLASSIFICATIONS:
        raise UnknownReferenceError(
            f"schema {schema_name!r}, field {f['name']!r}: "
            f"classification {level!r} is not one of {CLASSIFICATIONS}"
        )
    return str(level)


def load_schema(name: str) -> RecordSchema:
    """Load ``schemas/<name>.avsc`` shipped with sharehub."""
    try:
        text = resources.files("schemas").joinpath(f"{name}.avsc").read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UnknownReferenceError(f"no schema named {name!r} in sharehub's schemas") from None
    return RecordSchema.from_json(name, json.loads(text))


def released_schemas(name: str) -> dict[bytes, RecordSchema]:
    """Every released version of one of sharehub's own schemas, by fingerprint: the snapshots kept in
    ``schemas/history/<name>/`` (one file per release, never changed once released) and the current one.

    A reader of a log written over years meets the bytes of every release: it decodes each with the schema
    that wrote it (its fingerprint says which) into the current one (Avro schema resolution)."""
    current = load_schema(name)
    found = {current.fingerprint: current}
    folder = resources.files("schemas").joinpath("history", name)
    if folder.is_dir():
        for entry in folder.iterdir():
            if entry.name.endswith(".avsc"):
                schema = RecordSchema.from_json(name, json.loads(entry.read_text(encoding="utf-8")))
                found.setdefault(schema.fingerprint, schema)
    return found


def split_single_object(data: bytes) -> tuple[bytes, bytes]:
    """(fingerprint, body) of a single-object encoded value; ValueError if it is not one."""
    if len(data) < HEADER_SIZE or not data.startswith(SINGLE_OBJECT_MARKER):
        raise ValueError("not Avro single-object encoded (missing C3 01 marker)")
    return data[2:HEADER_SIZE], data[HEADER_SIZE:]


# --- JSON records <-> Avro data ------------------------------------------------------------------


def record_from_json(schema: RecordSchema, obj: Any) -> dict[str, Any]:
    """A JSON object as an Avro datum of ``schema``, or RecordValidationError naming the field
    (:mod:`sharehub.json_records`: the schema's converter is made once)."""
    return schema.json_converter(obj)


#: Values that are their own JSON form (most fields of most records: no call per field for them).
_JSON_AS_IS = frozenset({str, int, float, bool, type(None)})
_DATES = frozenset({dt.date, dt.datetime})


def datum_to_json(value: Any) -> Any:
    """Avro datum → JSON-ready value (dates and timestamps as ISO strings)."""
    if type(value) in _DATES:  # the most frequent by far: asked first
        return value.isoformat()
    if isinstance(value, dict):
        return {k: v if type(v) in _JSON_AS_IS else datum_to_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [datum_to_json(v) for v in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value
