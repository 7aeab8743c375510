"""JSON records to Avro data, compiled once per schema: what an agency sends, checked and converted at the
speed of a publisher (tens of thousands of records a second).

:func:`sharehub.avro.record_from_json` reads the schema afresh for every field of every record (which
type, which logical type, which fields are known); :func:`compile_record` reads it once and returns a
converter made of one small function per field. The result and every error message are those of
:func:`sharehub.avro.record_from_json`, which stays the reference (and converts the rare types compiled
here only by delegation to it); a property test holds the two together.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sharehub.avro import Schema, _convert, _date, _kind
from sharehub.errors import RecordValidationError

#: A compiled conversion: (JSON value, where it is in the record) → Avro datum, or RecordValidationError.
Converter = Callable[[Any, str], Any]

_INT_RANGE = (-(2**31), 2**31 - 1)
_LONG_RANGE = (-(2**63), 2**63 - 1)


def compile_record(raw: Schema) -> Callable[[Any], dict[str, Any]]:
    """The converter of a record schema (``RecordSchema.raw``): JSON object → Avro datum."""
    convert = _record(raw)
    return lambda obj: convert(obj, "")


def _compiled(t: Any) -> Converter:
    if isinstance(t, list):
        return _union(t)
    spec = {"type": t} if isinstance(t, str) else t
    kind, logical = spec["type"], spec.get("logicalType")
    if kind == "string":
        return _string
    if kind == "int" and logical == "date":
        return _not_null(_date)
    if kind in ("int", "long") and logical is None:
        return _integer(kind)
    if kind == "enum":
        return _enum(tuple(spec["symbols"]))
    if kind == "record":
        return _record(spec)
    return lambda v, path: _convert(spec, v, path)  # the rarer types, converted as the reference does


def _record(rec: Schema) -> Converter:
    fields = [(f["name"], _compiled(f["type"]), "default" in f, f.get("default")) for f in rec["fields"]]
    known = frozenset(name for name, *_ in fields)

    def record(obj: Any, path: str) -> dict[str, Any]:
        if not isinstance(obj, dict):
            raise RecordValidationError(f"{path or 'record'}: expected a JSON object, got {_kind(obj)}")
        if not known.issuperset(obj):
            unknown = sorted(set(obj) - known)
            raise RecordValidationError(
                f"{path or 'record'}: unknown field(s) {', '.join(map(repr, unknown))}"
            )
        out: dict[str, Any] = {}
        for name, convert, has_default, default in fields:
            where = f"{path}.{name}" if path else name
            if name in obj:
                out[name] = convert(obj[name], where)
            elif has_default:
                out[name] = default
            else:
                raise RecordValidationError(f"{where}: required field is missing")
        return out

    return record


def _union(branches: list[Any]) -> Converter:
    nullable = "null" in branches
    converters = [_compiled(b) for b in branches if b != "null"]

    def union(v: Any, path: str) -> Any:
        if v is None:
            if nullable:
                return None
            raise RecordValidationError(f"{path}: may not be null")
        errors = []
        for convert in converters:
            try:
                return convert(v, path)
            except RecordValidationError as exc:
                errors.append(str(exc))
        raise RecordValidationError(
            errors[0] if len(errors) == 1 else f"{path}: matches no branch of the union"
        )

    return union


def _not_null(convert: Converter) -> Converter:
    def not_null(v: Any, path: str) -> Any:
        if v is None:
            raise RecordValidationError(f"{path}: may not be null")
        return convert(v, path)

    return not_null


def _string(v: Any, path: str) -> str:
    if isinstance(v, str):
        return v
    if v is None:
        raise RecordValidationError(f"{path}: may not be null")
    raise RecordValidationError(f"{path}: expected a string, got {_kind(v)}")


def _integer(kind: str) -> Converter:
    low, high = _INT_RANGE if kind == "int" else _LONG_RANGE

    def integer(v: Any, path: str) -> int:
        if v is None:
            raise RecordValidationError(f"{path}: may not be null")
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
            raise RecordValidationError(f"{path}: expected an integer ({kind}), got {_kind(v)}")
        return v

    return integer


def _enum(symbols: tuple[str, ...]) -> Converter:
    def enum(v: Any, path: str) -> Any:
        if v is None:
            raise RecordValidationError(f"{path}: may not be null")
        if v not in symbols:
            raise RecordValidationError(f"{path}: {v!r} is not one of {', '.join(symbols)}")
        return v

    return enum
