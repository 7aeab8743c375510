"""Plain confluent-kafka loops the baselines (and the hub's projection feed) are built from.

Every loop reads a topic from its start to the end offsets it had when reading began, with a deadline, so
no benchmark can hang on a broker that stopped answering.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from confluent_kafka import Consumer, Producer, TopicPartition

from sharehub.kafka import client_config, producer_config

BATCH = 500
#: No message for this long while some are still expected means the broker is stuck.
STALL_S = 60.0


class KafkaBenchError(RuntimeError):
    """A benchmark loop could not finish against the broker."""


class Msg(NamedTuple):
    """One message read, its coordinates checked (confluent-kafka types them all as optional)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """High watermark of every partition of ``topic``."""
    consumer = Consumer(client_config(bootstrap, **{"group.id": f"sharehub-bench-{uuid.uuid4()}"}))
    try:
        described = consumer.list_topics(topic, timeout=30).topics[topic]
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
            for p in sorted(described.partitions)
        }
    finally:
        consumer.close()


def read_batches(bootstrap: str, topic: str, batch: int = BATCH) -> Iterator[list[Msg]]:
    """Every message of ``topic`` from offset 0 to the current end, in batches of at most ``batch``."""
    ends = {p: e for p, e in end_offsets(bootstrap, topic).items() if e > 0}
    if not ends:
        return
    consumer = Consumer(
        client_config(
            bootstrap, **{"group.id": f"sharehub-bench-{uuid.uuid4()}", "enable.auto.commit": False}
        )
    )
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        remaining = dict(ends)
        deadline = time.monotonic() + STALL_S
        while remaining:
            # A short wait: consume() holds a partial batch until its timeout, and the last batch is partial.
            messages = consumer.consume(batch, timeout=0.05)
            if not messages:
                if time.monotonic() > deadline:
                    raise KafkaBenchError(f"reading {topic} stalled with {remaining} left")
                continue
            deadline = time.monotonic() + STALL_S
            kept = []
            for msg in messages:
                p, offset = msg.partition(), msg.offset()
                if msg.error() or p is None or offset is None:
                    raise KafkaBenchError(f"reading {topic}: {msg.error()}")
                if p in remaining and offset < ends[p]:
                    kept.append(Msg(topic, p, offset, msg.key(), msg.value() or b""))
                    if offset + 1 >= ends[p]:
                        del remaining[p]
            if kept:
                yield kept
    finally:
        consumer.close()


class RawProducer:
    """A bare confluent-kafka producer with the hub's producer settings (idempotent, acks=all)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._producer = Producer(producer_config(bootstrap))
        self._topic = topic
        self._failures: list[str] = []

    def send_all(self, messages: Iterable[tuple[bytes, bytes]]) -> int:
        """Produce (key, value) pairs and wait until the broker acknowledged every one."""
        sent = 0
        for key, value in messages:
            while True:
                try:
                    self._producer.produce(self._topic, value=value, key=key, on_delivery=self._delivered)
                    break
                except BufferError:  # local queue full: let deliveries drain
                    self._producer.poll(0.1)
            self._producer.poll(0)
            sent += 1
        if self._producer.flush(120):
            raise KafkaBenchError(f"{self._topic}: messages still unacknowledged after 120 s")
        if self._failures:
            raise KafkaBenchError(f"{self._topic}: {len(self._failures)} refused; first: {self._failures[0]}")
        return sent

    def _delivered(self, error: object, _msg: object) -> None:
        if error is not None:
            self._failures.append(str(error))
