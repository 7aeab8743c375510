"""The Kafka reading and producing the baselines (and the hub's projection feed) are built from.

Reading is the kernel's :func:`sharehub.kafka.read_topic` (from a topic's start to the end offsets it had
when reading began, with a deadline, so no benchmark can hang on a broker that stopped answering); the raw
producer is a bare confluent-kafka producer with the hub's producer settings.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from confluent_kafka import Producer

from sharehub.errors import BenchmarkError
from sharehub.kafka import Record, TopicReader, producer_config, read_topic

BATCH = 500
#: No message for this long while some are still expected means the broker is stuck.
STALL_S = 60.0


class KafkaBenchError(BenchmarkError):
    """A benchmark loop could not finish against the broker."""


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """High watermark of every partition of ``topic``."""
    with TopicReader(bootstrap, timeout=STALL_S) as reader:
        return {p: high for p, (_, high) in reader.partitions(topic).items()}


def read_batches(bootstrap: str, topic: str, batch: int = BATCH) -> Iterator[list[Record]]:
    """Every message of ``topic`` from its start to the current end, in batches of at most ``batch``."""
    yield from read_topic(bootstrap, topic, size=batch, timeout=STALL_S)


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


#: The size of an access record, about: what a round trip of the broker is timed with.
ROUND_TRIP_BYTES = 600


class RoundTrips:
    """One message at a time to ``topic`` (acks=all, idempotent, sent at once: the access log's settings),
    each waited for until the broker acknowledges it: the broker's part of a query's latency."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._producer = Producer({**producer_config(bootstrap), "linger.ms": 0})
        self._topic = topic
        self._value = bytes(ROUND_TRIP_BYTES)

    def send(self, _i: int = 0) -> None:
        outcome: list[object] = []

        def answered(err: object, _msg: object) -> None:
            outcome.append(err)

        self._producer.produce(self._topic, value=self._value, on_delivery=answered)
        deadline = time.monotonic() + STALL_S
        while not outcome:
            if time.monotonic() > deadline:
                raise KafkaBenchError(f"{self._topic}: not acknowledged in {STALL_S:.0f} s")
            self._producer.poll(0.05)
        if outcome[0] is not None:
            raise KafkaBenchError(f"{self._topic}: refused: {outcome[0]}")

    def close(self) -> None:
        self._producer.flush(STALL_S)
