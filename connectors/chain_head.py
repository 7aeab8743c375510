"""Where a producer's hash chain stands: recovered from the dataset's topic itself, the source of truth.

Each partition is read backwards in windows until its newest event that verifies as the producer's is
found; the chain head is the highest sequence over all partitions. Forged or corrupt messages at the end of
a partition are passed over, so they can never bend the chain.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition

from sharehub.envelope import ZERO_HASH, SignerDirectory, parse, verify
from sharehub.errors import BrokerError, EnvelopeError
from sharehub.kafka import client_config

WINDOW = 200


@dataclass(frozen=True)
class ChainHead:
    sequence: int
    hash: bytes


GENESIS = ChainHead(0, ZERO_HASH)


def recover_chain_head(
    bootstrap: str, topic: str, producer: str, signers: SignerDirectory, *, timeout: float = 30.0
) -> ChainHead:
    consumer = Consumer(
        client_config(
            bootstrap,
            **{
                "group.id": f"sharehub-chain-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            },
        )
    )
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
        head = GENESIS
        for partition in described.partitions:
            found = _newest_in_partition(consumer, topic, partition, producer, signers, timeout)
            if found is not None and found.sequence > head.sequence:
                head = found
        return head
    finally:
        consumer.close()


def _newest_in_partition(
    consumer: Consumer, topic: str, partition: int, producer: str, signers: SignerDirectory, timeout: float
) -> ChainHead | None:
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
    end = high
    while end > low:
        start = max(low, end - WINDOW)
        best: ChainHead | None = None
        for value in _read_range(consumer, topic, partition, start, end, timeout):
            try:
                envelope = parse(value)
                if envelope.header.producer != producer:
                    continue
                verify(envelope, signers)
            except EnvelopeError:
                continue
            if best is None or envelope.header.sequence > best.sequence:
                best = ChainHead(envelope.header.sequence, envelope.hash)
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
