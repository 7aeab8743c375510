"""A chunk of source lines made ready for sealing: each record checked against the dataset's schema and
quality rules (an erasure needs only its subject's key), each line its lane already holds skipped, and
each valid record's lane named when it matters (a resumed source; lanes split between processes).

What is refused or skipped is kept with the chunk, for the report in the chunk's turn.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, NamedTuple

from connectors.jsonl_source import BadLine, Line
from connectors.record_rules import RecordRules
from sharehub.codec import DatasetCodec
from sharehub.envelope import lane_for
from sharehub.errors import RecordValidationError


@dataclass
class PublishReport:
    published: int = 0
    rejected: list[BadLine] = field(default_factory=list)
    #: Lines whose record its lane already holds (published before, see :mod:`connectors.exactly_once`).
    skipped: int = 0

    def add(self, other: PublishReport) -> None:
        self.published += other.published
        self.rejected += other.rejected
        self.skipped += other.skipped


@dataclass(frozen=True)
class Resume:
    """What a source already has on the topic: its id, and lane → the highest position written there."""

    source: str
    written: Mapping[int, int]


class Valid(NamedTuple):
    number: int
    datum: dict[str, Any]
    event_type: str
    #: The record's lane, when the validator was asked to name it (else -1).
    lane: int = -1


class ValidatedChunk(NamedTuple):
    """A chunk of lines, validated: how many lines it held, the valid ones, and what it refused or skipped."""

    lines: int
    valid: list[Valid]
    refused: PublishReport


class ChunkValidator:
    """Validates chunks of one dataset's lines; ``codec`` gives each record's pseudonym (its lane among
    ``lanes``); with ``name_lanes`` every valid record's lane is named, else only a resumed one's."""

    def __init__(self, rules: RecordRules, codec: DatasetCodec, lanes: int, *, name_lanes: bool) -> None:
        self._rules = rules
        self._codec = codec
        self._lanes = lanes
        self._name_lanes = name_lanes

    def lane(self, datum: Mapping[str, Any]) -> int:
        """The lane the codec seals this valid record (or erasure) into."""
        return lane_for(self._codec.pseudonym(str(datum[self._codec.key_field])), self._lanes)

    def validated(
        self, chunk: list[Line | BadLine], resume: Resume | None, event_type: str
    ) -> ValidatedChunk:
        """The chunk's records that are valid and not yet on the topic, as Avro data with their numbers (an
        erasure's datum holds only its key)."""
        refused = PublishReport()
        valid: list[Valid] = []
        for line in chunk:
            if isinstance(line, BadLine):
                refused.rejected.append(line)
                continue
            kind = line.event_type or event_type
            try:
                datum = self._erasure(line.record) if kind == "ERASED" else self._rules.validated(line.record)
            except RecordValidationError as exc:
                refused.rejected.append(BadLine(line.number, str(exc)))
                continue
            lane = self.lane(datum) if self._name_lanes or resume is not None else -1
            if resume is not None and line.number <= resume.written.get(lane, 0):
                refused.skipped += 1
                continue
            valid.append(Valid(line.number, datum, kind, lane))
        return ValidatedChunk(len(chunk), valid, refused)

    def _erasure(self, record: Any) -> dict[str, Any]:
        """The key an erasure names its subject by (the dataset's key field), all it needs of its record."""
        key_field = self._codec.key_field
        key = record.get(key_field) if isinstance(record, dict) else None
        if isinstance(key, bool) or not isinstance(key, str | int) or key == "":
            raise RecordValidationError(f"an erasure names its subject by {key_field!r}, which it lacks")
        return {key_field: key}


def chunks(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    while chunk := list(islice(items, size)):
        yield chunk
