"""Audit: replay dataset topics from offset 0, with public keys only, and check every event.

For each event: does it parse, does the producer's signature verify over the exact bytes, does the
producer own the dataset. For each (producer, dataset) chain: sequences run 1, 2, 3… with no gap or
duplicate, in order within a partition, and each ``prev_hash`` is the SHA-256 of the event before.
No decryption key is needed or used.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

from confluent_kafka import Consumer, KafkaException, TopicPartition

from sharehub.envelope import ZERO_HASH, Envelope, parse, verify
from sharehub.errors import BrokerError, EnvelopeError
from sharehub.governance import GovernanceView
from sharehub.kafka import client_config


@dataclass
class EventStatus:
    topic: str
    partition: int
    offset: int
    producer: str | None = None
    sequence: int | None = None
    event_id: str | None = None
    #: ok, or the reason code of the failure (bad_signature, malformed, not_owner, ...).
    signature: str = "ok"
    #: ok, or what is wrong with the chain at this event; "-" when the event is not part of a valid chain.
    chain: str = "ok"
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.signature == "ok" and self.chain == "ok"


@dataclass
class AuditReport:
    events: list[EventStatus] = field(default_factory=list)

    @property
    def findings(self) -> list[EventStatus]:
        return [e for e in self.events if not e.ok]

    def to_json(self) -> dict[str, object]:
        return {
            "events": len(self.events),
            "findings": len(self.findings),
            "results": [asdict(e) for e in self.events],
        }


def audit_verify(bootstrap: str, governance: GovernanceView, *, timeout: float = 60.0) -> AuditReport:
    report = AuditReport()
    for dataset in governance.datasets():
        chains: dict[str, list[tuple[EventStatus, Envelope]]] = defaultdict(list)
        for partition, offset, value in read_topic(bootstrap, dataset.topic, timeout=timeout):
            status = EventStatus(dataset.topic, partition, offset)
            report.events.append(status)
            try:
                envelope = parse(value)
                header = envelope.header
                status.producer, status.sequence, status.event_id = (
                    header.producer,
                    header.sequence,
                    header.event_id,
                )
                if header.dataset != dataset.id:
                    raise _finding("dataset_mismatch", f"names dataset {header.dataset!r}")
                verify(envelope, governance)
                if header.producer != dataset.owner:
                    raise _finding("not_owner", f"{header.producer!r} does not own {dataset.id!r}")
            except EnvelopeError as exc:
                status.signature, status.chain, status.detail = exc.reason, "-", str(exc)
                continue
            chains[header.producer].append((status, envelope))
        for events in chains.values():
            _check_chain(events)
    return report


def _finding(reason: str, detail: str) -> EnvelopeError:
    exc = EnvelopeError(detail)
    exc.reason = reason
    return exc


def _check_chain(events: list[tuple[EventStatus, Envelope]]) -> None:
    """Mark gaps, duplicates, forks, broken links and reordering in one producer's chain."""
    by_sequence: dict[int, list[tuple[EventStatus, Envelope]]] = defaultdict(list)
    for status, envelope in events:
        by_sequence[envelope.header.sequence].append((status, envelope))
    previous_hash: bytes | None = None
    expected = 1
    for sequence in sorted(by_sequence):
        copies = by_sequence[sequence]
        first_status, first = copies[0]
        for status, envelope in copies[1:]:
            status.chain = "duplicate" if envelope.hash == first.hash else "fork"
            where = f"{first_status.topic}[{first_status.partition}]@{first_status.offset}"
            status.detail = f"sequence {sequence} appears again at {where}"
        if sequence != expected:
            first_status.chain = "gap"
            first_status.detail = f"sequences {expected}..{sequence - 1} are missing"
        else:
            want = ZERO_HASH if sequence == 1 else previous_hash
            if first.header.prev_hash != want:
                first_status.chain = "broken_link"
                first_status.detail = "prev_hash is not the hash of the previous event"
        previous_hash = first.hash
        expected = sequence + 1
    # Within one partition a producer's sequences must rise with the offsets.
    highest: dict[tuple[str, int], int] = {}
    for status, envelope in sorted(events, key=lambda se: (se[0].partition, se[0].offset)):
        where = (status.topic, status.partition)
        if envelope.header.sequence < highest.get(where, 0) and status.chain == "ok":
            status.chain = "out_of_order"
            status.detail = (
                f"sequence {envelope.header.sequence} after {highest[where]} in the same partition"
            )
        highest[where] = max(highest.get(where, 0), envelope.header.sequence)


def read_topic(bootstrap: str, topic: str, *, timeout: float = 60.0) -> Iterator[tuple[int, int, bytes]]:
    """Every message of ``topic`` up to the end it had when reading began: (partition, offset, value)."""
    consumer = Consumer(
        client_config(
            bootstrap, **{"group.id": f"sharehub-audit-{uuid.uuid4()}", "enable.auto.commit": False}
        )
    )
    try:
        try:
            described = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        except KafkaException as exc:
            raise BrokerError(f"Kafka at {bootstrap} does not answer: {exc}") from None
        if described is None or described.error is not None:
            return
        ends: dict[int, int] = {}
        starts: list[TopicPartition] = []
        for partition in sorted(described.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
            if high > low:
                ends[partition] = high
                starts.append(TopicPartition(topic, partition, low))
        if not starts:
            return
        consumer.assign(starts)
        deadline = time.monotonic() + timeout
        while ends:
            msg = consumer.poll(0.5)
            if msg is None:
                if time.monotonic() > deadline:
                    raise BrokerError(f"reading {topic} stalled; {sorted(ends)} partitions unfinished")
                continue
            if msg.error():
                raise BrokerError(f"reading {topic}: {msg.error()}")
            deadline = time.monotonic() + timeout
            partition, offset = msg.partition(), msg.offset()
            if partition in ends and offset < ends[partition]:
                yield partition, offset, msg.value() or b""
                if offset + 1 >= ends[partition]:
                    del ends[partition]
    finally:
        consumer.close()
