"""Where governance events are kept: the Kafka topic ``<prefix>-governance``, or memory (tests, planning).

The topic has one partition, because the log is one hash chain and Kafka orders a partition only; it keeps
every event for ever (:data:`sharehub.kafka.LOG_TOPIC_CONFIG`). Writes go through an idempotent acks=all
producer and are flushed before :meth:`KafkaLog.append` returns, so the service applies an event to its
state only once the broker holds it.

The reader is a small copy of ``services.audit.read_topic`` restricted to one partition: the ``sharehub``
package must not import ``services`` (see docs/architecture.md, "Layers").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from sharehub.errors import BrokerError, ChainViolation
from sharehub.gov.events import GovernanceEvent
from sharehub.kafka import ensure_topics, producer_config, reader_config, watermarks

PARTITION = 0
#: The reader only ever asks for events it knows are there (below the end offset): no reason for the broker
#: to hold a fetch back waiting for more, which would delay every refresh by up to librdkafka's 500 ms.
READER_CONFIG = {"enable.auto.commit": False, "fetch.wait.max.ms": 10}
#: Every governance event has the same Kafka key, so it would land in the one partition anyway.
MESSAGE_KEY = b"governance"


class EventLog(Protocol):
    """An append-only sequence of signed governance events (wire bytes)."""

    def append(self, event: GovernanceEvent) -> None: ...
    def read_all(self) -> list[bytes]: ...
    def read_new(self) -> list[bytes]:
        """Events appended since the last read or append of this object (by anyone), oldest first."""
        ...

    def close(self) -> None: ...


class MemoryLog:
    """A log in a list: for tests and for services that are not (yet) backed by Kafka."""

    def __init__(self, events: list[bytes] | None = None) -> None:
        self.events: list[bytes] = list(events or [])
        self._read = 0

    def append(self, event: GovernanceEvent) -> None:
        self.events.append(event.raw)
        self._read = len(self.events)

    def read_all(self) -> list[bytes]:
        self._read = len(self.events)
        return list(self.events)

    def read_new(self) -> list[bytes]:
        new, self._read = self.events[self._read :], len(self.events)
        return new

    def close(self) -> None:
        pass


class KafkaLog:
    """The governance topic of one hub on one Kafka cluster."""

    def __init__(
        self,
        bootstrap: str,
        topic_prefix: str,
        *,
        writer: Callable[[], str] | None = None,
        timeout: float = 30.0,
    ) -> None:
        """Reads with ``bootstrap``'s login; writes (and creates the topic) with ``writer()``'s, made only
        when the first event is appended (governance's; readers never hold it). Default: ``bootstrap``."""
        self.bootstrap = bootstrap
        self.topic = f"{topic_prefix}-governance"
        self._timeout = timeout
        self._writer = writer or (lambda: bootstrap)
        self._producer: Producer | None = None
        self._next_offset: int | None = None
        self._reader: Consumer | None = None

    def _producer_for_writing(self) -> Producer:
        if self._producer is None:
            access = self._writer()
            ensure_topics(access, [(self.topic, 1)], timeout=self._timeout)
            self._producer = Producer(producer_config(access))
        return self._producer

    def append(self, event: GovernanceEvent) -> None:
        """Write one event and wait until every in-sync replica has it; BrokerError otherwise.

        Before writing, the end of the topic must be where this writer left it: another writer appending
        meanwhile would fork the chain, so that is refused (a cheap guard, not a fence: see docs)."""
        failures: list[str] = []

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                failures.append(str(err))

        producer = self._producer_for_writing()
        end = self._end_offset()  # the topic may have been created just now
        if self._next_offset is not None and end != self._next_offset:
            raise ChainViolation(
                "concurrent_writer",
                f"{self.topic} holds {end} events, this service knew {self._next_offset}; reopen the service",
            )
        try:
            producer.produce(
                self.topic, value=event.raw, key=MESSAGE_KEY, partition=PARTITION, on_delivery=delivered
            )
            remaining = producer.flush(self._timeout)
        except (KafkaException, BufferError) as exc:
            raise BrokerError(f"could not write {event.describe()} to {self.topic}: {exc}") from None
        if remaining or failures:
            why = failures[0] if failures else "not delivered in time"
            raise BrokerError(f"{event.describe()} was not written to {self.topic}: {why}")
        self._next_offset = end + 1

    def read_all(self) -> list[bytes]:
        """Every event on the topic, from offset 0 to the end it had when reading began."""
        consumer = Consumer(reader_config(self.bootstrap, **READER_CONFIG))
        try:
            if not _exists(consumer, self.topic, self._timeout):
                self._next_offset = 0  # no governance event was ever written
                return []
            low, high = watermarks(consumer, self.topic, PARTITION, timeout=self._timeout)
            events: list[bytes] = []
            if high > low:
                consumer.assign([TopicPartition(self.topic, PARTITION, low)])
                events = _read_until(consumer, self.topic, high, self._timeout)
            self._next_offset = high
            return events
        finally:
            consumer.close()

    def read_new(self) -> list[bytes]:
        """Events from where this object last read or wrote to the current end, with one consumer kept
        open between calls (a refresh that finds nothing costs one watermark request)."""
        if self._next_offset is None:
            return self.read_all()
        if self._reader is None:
            self._reader = Consumer(reader_config(self.bootstrap, **READER_CONFIG))
        if self._next_offset == 0 and not _exists(self._reader, self.topic, self._timeout):
            return []
        high = watermarks(self._reader, self.topic, PARTITION, timeout=self._timeout)[1]
        if high <= self._next_offset:
            return []
        self._reader.assign([TopicPartition(self.topic, PARTITION, self._next_offset)])
        events = _read_until(self._reader, self.topic, high, self._timeout)
        self._next_offset = high
        return events

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(self._timeout)
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def _end_offset(self) -> int:
        consumer = Consumer(reader_config(self.bootstrap))
        try:
            return watermarks(consumer, self.topic, PARTITION, timeout=self._timeout)[1]
        finally:
            consumer.close()


def _exists(consumer: Consumer, topic: str, timeout: float) -> bool:
    try:
        found = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
    except KafkaException as exc:
        raise BrokerError(f"Kafka does not answer about {topic}: {exc}") from None
    if found is None or found.error is None:
        return found is not None
    if found.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
        return False
    raise BrokerError(f"{topic}: {found.error.str()}")


def _read_until(consumer: Consumer, topic: str, end: int, timeout: float) -> list[bytes]:
    events: list[bytes] = []
    deadline = time.monotonic() + timeout
    while True:
        msg = consumer.poll(0.5)
        if msg is None:
            if time.monotonic() > deadline:
                raise BrokerError(f"reading {topic} stalled after {len(events)} events")
            continue
        if msg.error():
            raise BrokerError(f"reading {topic}: {msg.error()}")
        deadline = time.monotonic() + timeout
        offset = msg.offset()
        if offset is not None and offset < end:
            events.append(msg.value() or b"")
            if offset + 1 >= end:
                return events
