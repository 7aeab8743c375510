"""Publishing: validate each record, seal it, and produce it to its dataset's topic.

Delivery is idempotent with acks=all. Every event of one record goes to one lane (partition), keyed by the
record's pseudonym, so its changes stay in order; each lane carries its own hash chain, continued from what
the topic already holds, and a signed checkpoint of each chain goes to the checkpoint topic every
``CHECKPOINT_EVERY`` events and at every flush. Events are sealed as they come and signed in batches of up
to ``BATCH_SIZE``, one signature over the batch's Merkle root (see :mod:`sharehub.envelope`). Subjects'
keys are created, durably, before any event that needs them is sent. Only the dataset's owner publishes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from connectors.chain_head import recover_chain_heads
from connectors.jsonl_source import BadLine, Line
from connectors.record_rules import RecordRules
from sharehub.chain import GENESIS, ChainHead, head_after
from sharehub.checkpoints import seal_checkpoint
from sharehub.envelope import ChainPosition, Sealed, lane_for, pseudonym, seal_unsigned, sign_batch
from sharehub.errors import BrokerError, InputError, RecordValidationError, SubjectErased
from sharehub.governance import GovernanceView
from sharehub.kafka import producer_config
from sharehub.keys import KeyService, subject_key_id

CHECKPOINT_EVERY = 1000
CHUNK = 500
BATCH_SIZE = 256


@dataclass
class PublishReport:
    published: int = 0
    rejected: list[BadLine] = field(default_factory=list)


class Publisher:
    """Publishes records of one dataset as its owner agency."""

    def __init__(
        self, *, bootstrap: str, governance: GovernanceView, keys: KeyService, agency: str, dataset: str
    ) -> None:
        ds = governance.dataset(dataset)
        governance.agency(agency)
        if ds.owner != agency:
            raise InputError(f"{agency!r} may not publish {dataset!r}: its owner is {ds.owner!r}")
        self._dataset = ds
        self._agency = agency
        self._keys = keys
        self._rules = RecordRules(governance, dataset)
        self._schema = self._rules.schema
        self._signing_key = keys.signing_key(agency)
        self._data_key_id = keys.current_data_key_id(dataset)
        self._data_key = keys.data_key(self._data_key_id)
        self._routing_key = keys.routing_key(dataset)
        self._lanes, self._heads = recover_chain_heads(bootstrap, ds.topic, agency, governance)
        self._checkpoint_topic = governance.checkpoint_topic(agency)
        self._unchecked: dict[int, int] = {}
        self._unsigned: list[tuple[Sealed, bytes]] = []
        self._producer = Producer(producer_config(bootstrap))
        self._failures: list[str] = []

    def head(self, lane: int) -> ChainHead:
        return self._heads.get(lane, GENESIS)

    # --- publishing ----------------------------------------------------------------------------------

    def publish(self, record: Any, *, event_type: str = "UPSERTED") -> Sealed:
        """Validate, seal and hand over one JSON record (see :meth:`flush`)."""
        datum = self._rules.validated(record)
        self._ensure_subject_keys([datum])
        return self._seal_and_send(datum, event_type)

    def publish_records(self, records: Iterable[Any], *, event_type: str = "UPSERTED") -> PublishReport:
        """Publish many JSON records; invalid ones are reported by their position (1-based)."""
        return self.publish_lines((Line(i, r) for i, r in enumerate(records, start=1)), event_type=event_type)

    def publish_lines(
        self, lines: Iterable[Line | BadLine], *, event_type: str = "UPSERTED"
    ) -> PublishReport:
        report = PublishReport()
        for chunk in _chunks(iter(lines), CHUNK):
            valid: list[tuple[int, dict[str, Any]]] = []
            for line in chunk:
                if isinstance(line, BadLine):
                    report.rejected.append(line)
                    continue
                try:
                    valid.append((line.number, self._rules.validated(line.record)))
                except RecordValidationError as exc:
                    report.rejected.append(BadLine(line.number, str(exc)))
            self._ensure_subject_keys([datum for _, datum in valid])
            for number, datum in valid:
                try:
                    self._seal_and_send(datum, event_type)
                except SubjectErased:
                    report.rejected.append(
                        BadLine(number, "this data subject was erased; it cannot be published")
                    )
                    continue
                report.published += 1
        self.flush()
        return report

    def erase(self, record_key: str) -> Sealed:
        """Publish the ERASED event of one data subject (the key destruction is governance's step)."""
        ref = pseudonym(self._routing_key, record_key)
        event = self._send(None, ref, "ERASED", subject_key_id(self._dataset.id, ref))
        self.flush()
        return event

    def flush(self, timeout: float = 60.0) -> None:
        """Sign what waits, checkpoint every chain that moved, and wait until the broker acknowledged
        everything handed over."""
        self._sign_and_send()
        for lane in [lane for lane, n in self._unchecked.items() if n]:
            self._checkpoint(lane)
        remaining = self._producer.flush(timeout)
        if remaining:
            raise BrokerError(f"{remaining} events were not acknowledged by Kafka within {timeout:.0f} s")
        if self._failures:
            failures, self._failures = self._failures, []
            raise BrokerError(f"{len(failures)} events were refused by Kafka; first: {failures[0]}")

    def close(self) -> None:
        self.flush()

    # --- one event ---------------------------------------------------------------------------------

    def _ensure_subject_keys(self, datums: list[dict[str, Any]]) -> None:
        if self._schema.personal_fields and datums:
            refs = [pseudonym(self._routing_key, str(d[self._dataset.key_field])) for d in datums]
            self._keys.ensure_subject_keys(self._dataset.id, refs)

    def _seal_and_send(self, datum: dict[str, Any], event_type: str) -> Sealed:
        ref = pseudonym(self._routing_key, str(datum[self._dataset.key_field]))
        key_id = subject_key_id(self._dataset.id, ref) if self._schema.personal_fields else ""
        return self._send(datum, ref, event_type, key_id)

    def _send(self, datum: dict[str, Any] | None, ref: bytes, event_type: str, key_id: str) -> Sealed:
        lane = lane_for(ref, self._lanes)
        head = self.head(lane)
        event = seal_unsigned(
            schema=self._schema,
            record=datum,
            producer=self._agency,
            dataset=self._dataset.id,
            event_type=event_type,
            position=ChainPosition(lane, head.sequence + 1, head.hash),
            signing_key_id=self._signing_key.key_id,
            data_key_id=self._data_key_id,
            data_key=self._data_key,
            subject_key_id=key_id,
            subject_key=self._keys.subject_key(key_id) if key_id and datum is not None else None,
        )
        self._unsigned.append((event, ref))
        self._heads[lane] = head_after(event)
        self._unchecked[lane] = self._unchecked.get(lane, 0) + 1
        if len(self._unsigned) >= BATCH_SIZE:
            self._sign_and_send()
        if self._unchecked[lane] >= CHECKPOINT_EVERY:
            self._checkpoint(lane)
        return event

    def _sign_and_send(self) -> None:
        waiting, self._unsigned = self._unsigned, []
        signed = sign_batch([event for event, _ in waiting], self._signing_key)
        for envelope, (_, ref) in zip(signed, waiting, strict=True):
            self._produce(self._dataset.topic, envelope.raw, ref, envelope.header.lane)

    def _checkpoint(self, lane: int) -> None:
        self._sign_and_send()  # a checkpoint never goes out before the events it vouches for
        value = seal_checkpoint(self._signing_key, self._agency, self._dataset.id, lane, self.head(lane))
        self._produce(self._checkpoint_topic, value, f"{self._dataset.id}:{lane}".encode(), None)
        self._unchecked[lane] = 0

    def _produce(self, topic: str, value: bytes, key: bytes, partition: int | None) -> None:
        extra = {} if partition is None else {"partition": partition}
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=self._delivered, **extra)
                break
            except BufferError:  # local queue full: let deliveries drain, then retry
                self._producer.poll(0.1)
        self._producer.poll(0)

    def _delivered(self, error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            self._failures.append(str(error))


def _chunks(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    while chunk := list(islice(items, size)):
        yield chunk
