"""Where governance events are kept: the Kafka topic ``<prefix>-governance``, or memory (tests, planning).

The topic has one partition, because the log is one hash chain and Kafka orders a partition only; it keeps
every event for ever (:data:`sharehub.kafka.LOG_TOPIC_CONFIG`). Writes go through an idempotent acks=all
producer and are flushed before :meth:`KafkaLog.append` returns, so the service applies an event to its
state only once the broker holds it.

It is read with the kernel's :class:`~sharehub.kafka.TopicReader`, kept open between reads, so that a
follower's refresh that finds nothing new costs one watermark request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from sharehub.errors import BrokerError, ChainViolation
from sharehub.gov.events import GovernanceEvent
from sharehub.kafka import TopicReader, ensure_topics, producer_config, records

PARTITION = 0
#: Every governance event has the same Kafka key, so it would land in the one partition anyway.
MESSAGE_KEY = b"governance"


class Logged(NamedTuple):
    """One record of the log as read: its position (the topic's offset, or the index in a list) and bytes,
    which need not be a governance event at all (whoever may write the topic may write junk)."""

    offset: int
    raw: bytes


class EventLog(Protocol):
    """An append-only sequence of signed governance events (wire bytes)."""

    def append(self, event: GovernanceEvent) -> None: ...
    def read_all(self) -> list[bytes]: ...
    def read_new(self) -> list[bytes]:
        """Events appended since the last read or append of this object (by anyone), oldest first."""
        ...

    def entries_all(self) -> list[Logged]:
        """:meth:`read_all` with each record's position."""
        ...

    def entries_new(self) -> list[Logged]:
        """:meth:`read_new` with each record's position."""
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
        return [entry.raw for entry in self.entries_all()]

    def read_new(self) -> list[bytes]:
        return [entry.raw for entry in self.entries_new()]

    def entries_all(self) -> list[Logged]:
        self._read = len(self.events)
        return [Logged(offset, raw) for offset, raw in enumerate(self.events)]

    def entries_new(self) -> list[Logged]:
        start, self._read = self._read, len(self.events)
        return [Logged(start + i, raw) for i, raw in enumerate(self.events[start:])]

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
        self._reader: TopicReader | None = None

    def _producer_for_writing(self) -> Producer:
        if self._producer is None:
            access = self._writer()
            if ensure_topics(access, [(self.topic, 1)], timeout=self._timeout) and self._reader is not None:
                # A reader that asked before the topic existed keeps what it learnt then: start a fresh one.
                self._reader.close()
                self._reader = None
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
        return [entry.raw for entry in self.entries_all()]

    def read_new(self) -> list[bytes]:
        """Events from where this object last read or wrote to the current end (see :meth:`entries_new`)."""
        return [entry.raw for entry in self.entries_new()]

    def entries_all(self) -> list[Logged]:
        """Every record on the topic with its offset, from the start to the end it had when reading began."""
        bounds = self._reading().partitions(self.topic)
        if not bounds:
            self._next_offset = 0  # no governance event was ever written
            return []
        low, high = bounds[PARTITION]
        events = self._read(low, high)
        self._next_offset = high
        return events

    def entries_new(self) -> list[Logged]:
        """Records from where this object last read or wrote to the current end, with one reader kept open
        between calls (a refresh that finds nothing costs one watermark request)."""
        if self._next_offset is None or self._next_offset == 0:
            return self.entries_all()  # (the topic may not exist yet)
        high = self._reading().high(self.topic, PARTITION)
        if high <= self._next_offset:
            return []
        events = self._read(self._next_offset, high)
        self._next_offset = high
        return events

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(self._timeout)
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def _reading(self) -> TopicReader:
        if self._reader is None:
            self._reader = TopicReader(self.bootstrap, timeout=self._timeout)
        return self._reader

    def _read(self, start: int, end: int) -> list[Logged]:
        batches = self._reading().batches(self.topic, start={PARTITION: start}, end={PARTITION: end})
        return [Logged(record.offset, record.value) for record in records(batches)]

    def _end_offset(self) -> int:
        return self._reading().high(self.topic, PARTITION)
