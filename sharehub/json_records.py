"""JSON records (what agencies send) as Avro data (what is sealed), checked field by field against the
schema: :func:`record_converter` turns a record schema into one function, made once per schema, that
converts a record or raises RecordValidationError naming the field (``address.street``, ``readings[1]``)
and the reason.

The schema is read once, when the converter is made; converting a valid record walks its values alone. A
field's place in the record is spelled out only when a value is refused: the error gathers it on its way
out of the nested records, lists and maps.
"""

from __future__ import annotations

import datetime as dt
import math
import sys
from collections.abc import Callable
from typing import Any

from sharehub.errors import RecordValidationError

#: Converts one JSON value to its Avro datum, or raises :class:`_Refused`.
Converter = Callable[[Any], Any]

_INT_RANGE = (-(2**31), 2**31 - 1)
_LONG_RANGE = (-(2**63), 2**63 - 1)
#: The largest finite 32-bit float.
_FLOAT_MAX = 3.4028234663852886e38


class _Refused(Exception):
    """Why a value was refused, and where it is: the steps out of it (innermost first) gathered on the
    way up: ("field", name), ("item", index) or ("key", key)."""

    def __init__(self, reason: str, *steps: tuple[str, Any]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.steps = list(steps)

    def named(self) -> RecordValidationError:
        path = ""
        for kind, name in reversed(self.steps):
            if kind == "field":
                path = f"{path}.{name}" if path else name
            elif kind == "item":
                path = f"{path}[{name}]"
            else:
                path = f"{path}.{name}"
        return RecordValidationError(f"{path or 'record'}: {self.reason}")


def record_converter(record: dict[str, Any]) -> Callable[[Any], dict[str, Any]]:
    """A function that converts a JSON object to an Avro datum of the ``record`` schema (its JSON form),
    or raises RecordValidationError naming the field and the reason."""
    convert = _record(record)

    def converted(obj: Any) -> dict[str, Any]:
        try:
            datum: dict[str, Any] = convert(obj)
        except _Refused as refused:
            raise refused.named() from None
        return datum

    return converted


def _record(record: dict[str, Any]) -> Converter:
    fields = [(f["name"], _converter(f["type"]), "default" in f, f.get("default")) for f in record["fields"]]
    known = frozenset(name for name, *_ in fields)

    def convert(obj: Any) -> dict[str, Any]:
        if not isinstance(obj, dict):
            raise _Refused(f"expected a JSON object, got {_kind(obj)}")
        if not known.issuperset(obj):
            unknown = sorted(set(obj) - known)
            raise _Refused(f"unknown field(s) {', '.join(map(repr, unknown))}")
        out: dict[str, Any] = {}
        for name, value_of, has_default, default in fields:
            if name in obj:
                try:
                    out[name] = value_of(obj[name])
                except _Refused as refused:
                    refused.steps.append(("field", name))
                    raise
            elif has_default:
                out[name] = default
            else:
                raise _Refused("required field is missing", ("field", name))
        return out

    return convert


def _converter(avro_type: Any) -> Converter:  # noqa: C901 - one branch per Avro type reads best
    """The converter of a value of ``avro_type``: null refused unless the type is null (or a union
    holding it), then the type's own check."""
    if isinstance(avro_type, list):
        return _union(avro_type)
    t: dict[str, Any] = {"type": avro_type} if isinstance(avro_type, str) else avro_type
    kind, logical = t["type"], t.get("logicalType")
    if kind == "null":
        return _null
    check: Converter
    if kind == "boolean":
        check = _boolean
    elif kind == "int" and logical == "date":
        check = _date
    elif kind == "long" and logical in ("timestamp-millis", "timestamp-micros"):
        check = _timestamp
    elif kind in ("int", "long"):
        check = _integer(kind)
    elif kind in ("float", "double"):
        check = _number(kind)
    elif kind == "string":
        check = _string
    elif kind == "enum":
        check = _enum(t["symbols"])
    elif kind == "array":
        check = _array(_converter(t["items"]))
    elif kind == "map":
        check = _map(_converter(t["values"]))
    elif kind == "record":
        check = _record(t)
    else:
        check = _unsupported(kind)
    return _not_null(check)


def _not_null(check: Converter) -> Converter:
    def convert(v: Any) -> Any:
        if v is None:
            raise _Refused("may not be null")
        return check(v)

    return convert


def _null(v: Any) -> None:
    if v is not None:
        raise _Refused(f"expected null, got {_kind(v)}")


def _boolean(v: Any) -> bool:
    if not isinstance(v, bool):
        raise _Refused(f"expected true or false, got {_kind(v)}")
    return v


def _integer(kind: str) -> Converter:
    low, high = _INT_RANGE if kind == "int" else _LONG_RANGE

    def convert(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
            raise _Refused(f"expected an integer ({kind}), got {_kind(v)}")
        return v

    return convert


def _number(kind: str) -> Converter:
    largest = _FLOAT_MAX if kind == "float" else sys.float_info.max

    def convert(v: Any) -> float:
        """``v`` as a float or double; a NaN or an infinity is refused (JSON has neither), and so is a
        number the type cannot hold."""
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise _Refused(f"expected a number, got {_kind(v)}")
        if isinstance(v, float) and not math.isfinite(v):
            raise _Refused(f"expected a finite number, got {v!r}")
        try:
            number = float(v)
        except OverflowError:
            number = math.inf
        if abs(number) > largest:
            raise _Refused(f"the number is too large for an Avro {kind}")
        return number

    return convert


def _string(v: Any) -> str:
    if not isinstance(v, str):
        raise _Refused(f"expected a string, got {_kind(v)}")
    return v


def _enum(symbols: list[str]) -> Converter:
    def convert(v: Any) -> Any:
        if v not in symbols:  # a list: a value of any type (a list, an object) is compared, never hashed
            raise _Refused(f"{v!r} is not one of {', '.join(symbols)}")
        return v

    return convert


def _array(item_of: Converter) -> Converter:
    def convert(v: Any) -> list[Any]:
        if not isinstance(v, list):
            raise _Refused(f"expected a list, got {_kind(v)}")
        out = []
        for index, item in enumerate(v):
            try:
                out.append(item_of(item))
            except _Refused as refused:
                refused.steps.append(("item", index))
                raise
        return out

    return convert


def _map(value_of: Converter) -> Converter:
    def convert(v: Any) -> dict[Any, Any]:
        if not isinstance(v, dict):
            raise _Refused(f"expected an object, got {_kind(v)}")
        out = {}
        for key, item in v.items():
            try:
                out[key] = value_of(item)
            except _Refused as refused:
                refused.steps.append(("key", key))
                raise
        return out

    return convert


def _union(branches: list[Any]) -> Converter:
    """The first branch that takes the value; refused by every one, the reason of the only branch there is
    (besides null), or that none matches."""
    nullable = "null" in branches
    converters = [_converter(branch) for branch in branches if branch != "null"]

    def convert(v: Any) -> Any:
        if v is None:
            if nullable:
                return None
            raise _Refused("may not be null")
        for value_of in converters:
            try:
                return value_of(v)
            except _Refused:
                if len(converters) == 1:
                    raise
        raise _Refused("matches no branch of the union")

    return convert


def _unsupported(kind: str) -> Converter:
    def convert(_v: Any) -> Any:
        raise _Refused(f"Avro type {kind!r} is not supported in JSON input")

    return convert


def _date(v: Any) -> dt.date:
    if not isinstance(v, str):
        raise _Refused(f"expected a date YYYY-MM-DD, got {_kind(v)}")
    try:
        return dt.date.fromisoformat(v)
    except ValueError:
        raise _Refused(f"{v!r} is not a valid date YYYY-MM-DD") from None


def _timestamp(v: Any) -> dt.datetime:
    if not isinstance(v, str):
        raise _Refused(f"expected an ISO-8601 timestamp, got {_kind(v)}")
    try:
        ts = dt.datetime.fromisoformat(v)
    except ValueError:
        raise _Refused(f"{v!r} is not a valid ISO-8601 timestamp") from None
    if ts.tzinfo is None:
        raise _Refused(f"timestamp {v!r} needs a UTC offset")
    return ts


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int | float):
        return f"the number {v!r}"
    if isinstance(v, str):
        return f"the string {v[:40]!r}"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__
