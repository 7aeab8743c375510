"""Reading CSV input: a header row naming the dataset's fields, then one record a row, each cell converted
to the field's Avro type; a row that cannot be is a bad line with its number and reason, never a crash.

Conversion, by the field's type: ``int``/``long`` and ``float``/``double`` parse as numbers; ``boolean`` is
``true``/``false`` (also ``1``/``0``, ``yes``/``no``); strings, enums, dates (``YYYY-MM-DD``) and timestamps
(ISO 8601 with an offset) stay text for the schema's own checks; arrays, maps and records are JSON in the
cell. An empty cell is null when the field may be null (else an empty string for a string field). A column
the schema does not have is refused by the schema's check, with its name.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from connectors.jsonl_source import BadLine, Line
from sharehub.avro import RecordSchema

_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no"}


class CellError(ValueError):
    """A cell that its field's type cannot hold."""


def read_csv(path: Path, schema: RecordSchema) -> Iterator[Line | BadLine]:
    """Yield every non-blank row of ``path`` (its physical line number) as a JSON record, or why not."""
    with path.open(encoding="utf-8", newline="", errors="strict") as text:
        rows = csv.reader(text)
        try:
            header = next(rows)
        except StopIteration:
            return
        except (UnicodeDecodeError, csv.Error) as exc:
            yield BadLine(1, f"unreadable header: {exc}")
            return
        while True:
            try:
                row = next(rows)
            except StopIteration:
                return
            except (UnicodeDecodeError, csv.Error) as exc:
                yield BadLine(rows.line_num + 1, f"unreadable row: {exc}")
                return  # the reader cannot go on past a broken encoding or quoting
            if not any(cell.strip() for cell in row):
                continue
            yield _record(rows.line_num, header, row, schema)


def _record(number: int, header: list[str], row: list[str], schema: RecordSchema) -> Line | BadLine:
    if len(row) != len(header):
        return BadLine(number, f"{len(row)} cells where the header names {len(header)} columns")
    record: dict[str, Any] = {}
    for column, cell in zip(header, row, strict=True):
        spec = schema.fields.get(column)
        try:
            record[column] = cell if spec is None else cell_value(spec.type, cell)
        except CellError as exc:
            return BadLine(number, f"{column}: {exc}")
    return Line(number, record)


def cell_value(avro_type: Any, cell: str) -> Any:  # noqa: C901 - one branch per Avro type reads best
    """The JSON value of one CSV cell for a field of ``avro_type`` (the schema checks it afterwards)."""
    if isinstance(avro_type, list):
        if cell == "" and "null" in avro_type:
            return None
        branches = [b for b in avro_type if b != "null"]
        if len(branches) == 1:
            return cell_value(branches[0], cell)
        return cell  # a union of several kinds: the schema's check picks the branch
    kind = avro_type if isinstance(avro_type, str) else avro_type.get("type")
    logical = None if isinstance(avro_type, str) else avro_type.get("logicalType")
    if logical is not None or kind in ("string", "enum"):
        return cell
    if kind in ("int", "long"):
        try:
            return int(cell.strip())
        except ValueError:
            raise CellError(f"{cell!r} is not an integer") from None
    if kind in ("float", "double"):
        try:
            return float(cell.strip())
        except ValueError:
            raise CellError(f"{cell!r} is not a number") from None
    if kind == "boolean":
        word = cell.strip().lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        raise CellError(f"{cell!r} is not true or false")
    if kind in ("array", "map", "record"):
        try:
            return json.loads(cell)
        except json.JSONDecodeError as exc:
            raise CellError(f"not valid JSON: {exc.msg}") from None
    return cell
