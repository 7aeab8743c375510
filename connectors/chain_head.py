"""Where a producer's chains stand: recovered from the dataset's topic itself, the source of truth.

Each partition (lane) is read backwards in windows until its newest event that verifies as the producer's
is found. Forged or corrupt messages at the end of a lane are passed over, so they can never bend a chain.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator

from sharehub.chain import ChainHead, head_after
from sharehub.codec import DatasetCodec
from sharehub.envelope import Envelope
from sharehub.errors import BrokerError, EnvelopeError
from sharehub.kafka import Record, TopicReader, records

WINDOW = 200


def recover_chain_heads(
    bootstrap: str,
    topic: str,
    producer: str,
    codec: DatasetCodec,
    *,
    only: Collection[int] | None = None,
    timeout: float = 30.0,
) -> tuple[int, dict[int, ChainHead]]:
    """(number of lanes, chain head per lane that has one), verified with the dataset's ``codec``; with
    ``only``, the heads of those lanes alone."""
    with TopicReader(bootstrap, timeout=timeout) as reader:
        lanes = reader.partitions(topic)
        if not lanes:
            raise BrokerError(
                f"topic {topic!r} does not exist; governance creates it when the dataset is declared"
            )
        heads = {}
        for lane, (low, high) in lanes.items():
            if only is not None and lane not in only:
                continue
            found = _newest_in_lane(reader, topic, lane, low, high, producer, codec)
            if found is not None:
                heads[lane] = found
        return len(lanes), heads


def _newest_in_lane(
    reader: TopicReader, topic: str, lane: int, low: int, high: int, producer: str, codec: DatasetCodec
) -> ChainHead | None:
    for window in lane_windows(reader, topic, lane, low, high):
        best: ChainHead | None = None
        for _, envelope in verified_own(window, lane, producer, codec):
            if best is None or envelope.header.sequence > best.sequence:
                best = head_after(envelope)
        if best is not None:
            return best
    return None


def lane_windows(reader: TopicReader, topic: str, lane: int, low: int, high: int) -> Iterator[list[Record]]:
    """The records of one lane between ``low`` and ``high``, in windows of ``WINDOW``, the newest first."""
    end = high
    while end > low:
        start = max(low, end - WINDOW)
        yield list(records(reader.batches(topic, start={lane: start}, end={lane: end})))
        end = start


def verified_own(
    window: list[Record], lane: int, producer: str, codec: DatasetCodec
) -> Iterator[tuple[Record, Envelope]]:
    """The records of ``window`` whose envelope verifies as ``producer``'s; forged or corrupt ones are passed
    over."""
    for record in window:
        try:
            envelope = codec.parse(record.value)
            if envelope.header.producer != producer:
                continue
            codec.verify(envelope, lane)
        except EnvelopeError:
            continue
        yield record, envelope
