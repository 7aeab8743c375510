"""Reading JSON Lines input: each line one JSON object, each bad line reported with its number and reason."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Line:
    number: int
    record: Any
    #: UPSERTED, CORRECTED or ERASED (its record then only names the subject by the dataset's key field);
    #: None: the event type the whole publish call was given.
    event_type: str | None = None


@dataclass(frozen=True)
class BadLine:
    number: int
    reason: str


def read_jsonl(path: Path) -> Iterator[Line | BadLine]:
    """Yield every non-blank line of ``path`` parsed, or why it could not be."""
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield BadLine(number, f"not UTF-8 (byte {exc.start})")
                continue
            try:
                yield Line(number, json.loads(text))
            except json.JSONDecodeError as exc:
                yield BadLine(number, f"not valid JSON: {exc.msg} at column {exc.colno}")
