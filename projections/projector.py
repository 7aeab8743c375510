"""The projection's decisions, free of any transport: which events are valid, and what each consumer gets.

:meth:`Projector.decide` opens a batch of log messages and applies the agreements; :meth:`Projector.commit`
writes each consumer's rows with its new positions in one transaction. The worker sends quarantined events
to the quarantine topic *between* the two, so a crash can duplicate a quarantine entry but never lose one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from projections.read_model import ReadModelStore, Row, TopicPartition
from sharehub.avro import datum_to_json
from sharehub.envelope import DataKeys, OpenedEvent, open_envelope
from sharehub.errors import EnvelopeError, UnknownReferenceError
from sharehub.governance import GovernanceView


@dataclass(frozen=True)
class LogMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes

    @property
    def tp(self) -> TopicPartition:
        return (self.topic, self.partition)


@dataclass(frozen=True)
class Quarantined:
    message: LogMessage
    reason: str
    detail: str


@dataclass
class Decision:
    """What one batch does: rows and positions per consumer, and what goes to quarantine."""

    rows: dict[str, list[Row]] = field(default_factory=dict)
    positions: dict[str, dict[TopicPartition, int]] = field(default_factory=dict)
    quarantined: list[Quarantined] = field(default_factory=list)

    def applied(self) -> int:
        return sum(len(r) for r in self.rows.values())


class Projector:
    """Turns dataset-topic messages into consumer read-model rows under governance's agreements."""

    def __init__(
        self,
        governance: GovernanceView,
        keys: DataKeys,
        stores: Mapping[str, ReadModelStore],
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._governance = governance
        self._keys = keys
        self._stores = stores
        self._clock = clock
        self._dataset_by_topic = {d.topic: d.id for d in governance.datasets()}

    @property
    def topics(self) -> list[str]:
        return sorted(self._dataset_by_topic)

    def resume_offset(self, tp: TopicPartition) -> int:
        """Where to start reading ``tp`` so that no read model misses anything: the least stored position."""
        return min((store.positions().get(tp, 0) for store in self._stores.values()), default=0)

    def decide(self, batch: Sequence[LogMessage]) -> Decision:
        decision = Decision()
        opened: list[tuple[LogMessage, OpenedEvent]] = []
        for message in batch:
            try:
                dataset = self._dataset_by_topic.get(message.topic)
                if dataset is None:
                    raise UnknownReferenceError(f"topic {message.topic!r} carries no registered dataset")
                opened.append(
                    (
                        message,
                        open_envelope(
                            message.value, topic_dataset=dataset, signers=self._governance, keys=self._keys
                        ),
                    )
                )
            except (EnvelopeError, UnknownReferenceError) as exc:
                reason = getattr(exc, "reason", "unknown_dataset")
                decision.quarantined.append(Quarantined(message, reason, str(exc)))
        now = self._clock()
        for consumer, store in self._stores.items():
            done = store.positions()
            rows: list[Row] = []
            moved: dict[TopicPartition, int] = {}
            for message in batch:
                if message.offset < done.get(message.tp, 0):
                    continue  # applied by an earlier run: exactly-once effects
                moved[message.tp] = max(moved.get(message.tp, 0), message.offset + 1)
            for message, event in opened:
                if message.offset < done.get(message.tp, 0):
                    continue
                row = self._grant(consumer, event, now)
                if row is not None:
                    rows.append(row)
            decision.rows[consumer] = rows
            decision.positions[consumer] = moved
        return decision

    def commit(self, decision: Decision) -> None:
        for consumer, store in self._stores.items():
            rows = decision.rows.get(consumer, [])
            moved = decision.positions.get(consumer, {})
            if rows or moved:
                store.apply(rows, moved)

    def _grant(self, consumer: str, event: OpenedEvent, now: dt.datetime) -> Row | None:
        header = event.header
        agreement = self._governance.active_agreement(consumer, header.dataset, now)
        if agreement is None:
            return None  # default deny
        key_field = self._governance.dataset(header.dataset).key_field
        granted = {name: event.record[name] for name in agreement.fields if name in event.record}
        return Row(
            dataset=header.dataset,
            record_key=str(event.record[key_field]),
            fields=datum_to_json(granted),
            event_id=header.event_id,
            occurred_at=header.occurred_at,
            agreement_id=agreement.id,
        )
