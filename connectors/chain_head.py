"""Where a producer's chains stand: recovered from the dataset's topic itself, the source of truth.

Each partition (lane) is read backwards in windows until its newest event that verifies as the producer's
is found. Forged or corrupt messages at the end of a lane are passed over, so they can never bend a chain.
"""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaException, TopicPartition

from sharehub.chain import ChainHead, head_after
from sharehub.envelope import SignerDirectory, parse, verify
from sharehub.errors import BrokerError, EnvelopeError
from sharehub.kafka import reader_config, watermarks

WINDOW = 200


def recover_chain_heads(
    bootstrap: str, topic: str, producer: str, signers: SignerDirectory, *, timeout: float = 30.0
) -> tuple[int, dict[int, ChainHead]]:
    """(number of lanes, chain head per lane that has one)."""
    consumer = Consumer(reader_config(bootstrap, **{"enable.partition.eof": True}))
    try:
        try:
            metadata = consumer.list_topics(topic, timeout=timeout)
        except KafkaException as exc:
            raise BrokerError(f"Kafka at {bootstrap} does not answer: {exc}") from None
        described = metadata.topics.get(topic)
        if described is None or described.error is not None:
            raise BrokerError(
                f"topic {topic!r} does not exist; governance creates it when the dataset is declared"
            )
        heads = {}
        for lane in sorted(described.partitions):
            found = _newest_in_lane(consumer, topic, lane, producer, signers, timeout)
            if found is not None:
                heads[lane] = found
        return len(described.partitions), heads
    finally:
        consumer.close()


def _newest_in_lane(
    consumer: Consumer, topic: str, lane: int, producer: str, signers: SignerDirectory, timeout: float
) -> ChainHead | None:
    low, high = watermarks(consumer, topic, lane, timeout=timeout)
    end = high
    while end > low:
        start = max(low, end - WINDOW)
        best: ChainHead | None = None
        for value in _read_range(consumer, topic, lane, start, end, timeout):
            try:
                envelope = parse(value)
                if envelope.header.producer != producer or envelope.header.lane != lane:
                    continue
                verify(envelope, signers)
            except EnvelopeError:
                continue
            if best is None or envelope.header.sequence > best.sequence:
                best = head_after(envelope)
        if best is not None:
            return best
        end = start
    return None


def _read_range(
    consumer: Consumer, topic: str, partition: int, start: int, end: int, timeout: float
) -> list[bytes]:
    consumer.assign([TopicPartition(topic, partition, start)])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == -191:  # _PARTITION_EOF: nothing more to read
                break
            raise BrokerError(f"reading {topic}[{partition}]: {msg.error()}")
        if msg.offset() >= end:
            break
        values.append(msg.value() or b"")
        if msg.offset() == end - 1:
            break
    else:
        raise BrokerError(f"reading {topic}[{partition}] {start}..{end} took longer than {timeout:.0f} s")
    return values
