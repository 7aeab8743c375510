"""Publishing: validate each record, seal it, and produce it to its dataset's topic.

Delivery is idempotent with acks=all, keyed by a pseudonym of the record's key so every change to one
record lands in one partition, in order. Only the dataset's owner publishes; the chain of sequence numbers
and hashes continues from what the topic already holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from connectors.chain_head import ChainHead, recover_chain_head
from connectors.jsonl_source import BadLine, Line
from sharehub.avro import record_from_json
from sharehub.envelope import Envelope, routing_key, seal
from sharehub.errors import BrokerError, InputError, RecordValidationError
from sharehub.governance import GovernanceView
from sharehub.kafka import producer_config
from sharehub.keys import KeyService


@dataclass
class PublishReport:
    published: int = 0
    rejected: list[BadLine] = field(default_factory=list)
    first_sequence: int | None = None
    last_sequence: int | None = None


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
        self._schema = governance.current_schema(dataset)
        self._signing_key = keys.signing_key(agency)
        self._data_key_id = keys.current_data_key_id(dataset)
        self._data_key = keys.data_key(self._data_key_id)
        self._routing_key = keys.routing_key(dataset)
        self._head: ChainHead = recover_chain_head(bootstrap, ds.topic, agency, governance)
        self._producer = Producer(producer_config(bootstrap))
        self._failures: list[str] = []

    @property
    def head(self) -> ChainHead:
        return self._head

    def publish(self, record: Any, *, event_type: str = "UPSERTED") -> Envelope:
        """Validate and seal one JSON record and hand it to the producer (see :meth:`flush`)."""
        datum = record_from_json(self._schema, record)
        envelope = seal(
            schema=self._schema,
            record=datum,
            producer=self._agency,
            dataset=self._dataset.id,
            event_type=event_type,
            sequence=self._head.sequence + 1,
            prev_hash=self._head.hash,
            signing_key=self._signing_key,
            data_key_id=self._data_key_id,
            data_key=self._data_key,
        )
        key = routing_key(self._routing_key, str(datum[self._dataset.key_field]))
        self._produce(key, envelope.raw)
        self._head = ChainHead(envelope.header.sequence, envelope.hash)
        return envelope

    def publish_lines(
        self, lines: Iterable[Line | BadLine], *, event_type: str = "UPSERTED"
    ) -> PublishReport:
        report = PublishReport()
        for line in lines:
            if isinstance(line, BadLine):
                report.rejected.append(line)
                continue
            try:
                envelope = self.publish(line.record, event_type=event_type)
            except RecordValidationError as exc:
                report.rejected.append(BadLine(line.number, str(exc)))
                continue
            report.published += 1
            report.last_sequence = envelope.header.sequence
            if report.first_sequence is None:
                report.first_sequence = envelope.header.sequence
        self.flush()
        return report

    def flush(self, timeout: float = 60.0) -> None:
        """Wait until every event handed over is acknowledged by the broker; BrokerError otherwise."""
        remaining = self._producer.flush(timeout)
        if remaining:
            raise BrokerError(f"{remaining} events were not acknowledged by Kafka within {timeout:.0f} s")
        if self._failures:
            failures, self._failures = self._failures, []
            raise BrokerError(f"{len(failures)} events were refused by Kafka; first: {failures[0]}")

    def close(self) -> None:
        self.flush()

    def _produce(self, key: bytes, value: bytes) -> None:
        while True:
            try:
                self._producer.produce(self._dataset.topic, value=value, key=key, on_delivery=self._delivered)
                break
            except BufferError:  # local queue full: let deliveries drain, then retry
                self._producer.poll(0.1)
        self._producer.poll(0)

    def _delivered(self, error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            self._failures.append(str(error))
