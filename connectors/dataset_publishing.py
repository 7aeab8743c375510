"""What every publisher of one dataset's lines shares, in one process (``Publisher``) or split over several
(``LaneSplitPublisher``): only the dataset's owner publishes; records are checked against its current
schema and rules; the topic's lanes and what a source already wrote there are read with one reader kept
open while the publisher is; what it was given to close (a key service client, a token's session) is
closed with it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Self

from connectors.jsonl_source import BadLine, Line
from connectors.record_rules import RecordRules
from connectors.source_positions import written_positions
from connectors.validated_chunks import PublishReport, Resume
from sharehub.avro import RecordSchema
from sharehub.codec import DatasetCodec, DatasetKeys
from sharehub.errors import InputError
from sharehub.gov.views import GovernanceView
from sharehub.kafka import TopicReader


class DatasetPublishing:
    """Publishes lines of ``dataset`` as ``agency``, which must own it; a subclass says how."""

    def __init__(
        self, *, bootstrap: str, governance: GovernanceView, keys: DatasetKeys, agency: str, dataset: str
    ) -> None:
        ds = governance.dataset(dataset)
        governance.agency(agency)
        if ds.owner != agency:
            raise InputError(f"{agency!r} may not publish {dataset!r}: its owner is {ds.owner!r}")
        self._dataset = ds
        self._agency = agency
        self._bootstrap = bootstrap
        self._rules = RecordRules(governance, dataset)
        self._codec = DatasetCodec(ds.id, ds.key_field, governance, keys)
        self._lane_reader: TopicReader | None = None
        self._on_close: list[Callable[[], None]] = []
        #: Lane → the offset after the last event of this publisher the broker acknowledged there.
        self.acked_ends: dict[int, int] = {}

    @property
    def topic(self) -> str:
        return self._dataset.topic

    @property
    def key_field(self) -> str:
        """The field that names a record's subject (its pseudonym, its lane)."""
        return self._dataset.key_field

    @property
    def schema(self) -> RecordSchema:
        """The dataset's current schema, which records are validated against."""
        return self._rules.schema

    def publish_records(self, records: Iterable[Any], *, event_type: str = "UPSERTED") -> PublishReport:
        """Publish many JSON records; invalid ones are reported by their position (1-based)."""
        return self.publish_lines((Line(i, r) for i, r in enumerate(records, start=1)), event_type=event_type)

    def publish_lines(
        self,
        lines: Iterable[Line | BadLine],
        *,
        event_type: str = "UPSERTED",
        resume: Resume | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> PublishReport:
        raise NotImplementedError

    def written_positions(self, source: str, since: Mapping[int, int]) -> dict[int, int]:
        """Lane → the highest position of ``source`` this agency wrote there at or after ``since[lane]``."""
        return written_positions(self._bootstrap, self.topic, self._agency, self._codec, source, since)

    def lane_ends(self) -> dict[int, int]:
        """Lane → the offset after its last event now (where anything sent from now on will lie)."""
        return {lane: high for lane, (_, high) in self._lanes().items()}

    def _lanes(self) -> dict[int, tuple[int, int]]:
        """Lane → its (low, high) offsets now, asked with one reader kept open while the publisher is (a new
        client per call cost a TLS and SCRAM login each time: most of a gateway request's fixed cost)."""
        if self._lane_reader is None:
            self._lane_reader = TopicReader(self._bootstrap)
        return self._lane_reader.partitions(self.topic)

    def on_close(self, close: Callable[[], None]) -> None:
        """Have ``close`` called when this publisher closes (a key service client it alone uses)."""
        self._on_close.append(close)

    def close(self) -> None:
        """Let go of the lane reader and of what the publisher was given to close."""
        if self._lane_reader is not None:
            self._lane_reader.close()
            self._lane_reader = None
        for close in self._on_close:
            close()
        self._on_close.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
