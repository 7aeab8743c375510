"""Where a source stands on the dataset's topic: the last position of one source that the producer actually
wrote in each lane, read from the topic itself (the source of truth, as for chain heads).

Every event a connector publishes carries, in two Kafka message headers, the source it came from (a stable
id: a file's content hash, an outbox table, a gateway idempotency key) and its position there (a line
number, a commit-ordered row id, an item index). A lane is written in order (one producer, idempotent), so
the newest message of a source in a lane holds that source's highest position in the lane; it is found by
reading the lane backwards from its end down to a mark the connector wrote down before sending anything
later (see :mod:`connectors.exactly_once`). Only messages whose envelope verifies as the producer's count:
the headers are not signed, but a message is trusted only beside an envelope the producer signed, on a
topic only the producer may write (R1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from connectors.chain_head import lane_windows, verified_own
from sharehub.codec import DatasetCodec
from sharehub.kafka import Record, TopicReader

SOURCE_HEADER = "sharehub-source"
POSITION_HEADER = "sharehub-position"

#: Kafka message headers, as confluent-kafka takes them.
Headers = list[tuple[str, str | bytes | None]]


@dataclass(frozen=True)
class SourcePosition:
    """A record's place in its source: the source's stable id and an increasing position in it."""

    source: str
    position: int

    def headers(self) -> Headers:
        return [(SOURCE_HEADER, self.source.encode()), (POSITION_HEADER, str(self.position).encode())]

    @classmethod
    def of(cls, record: Record) -> SourcePosition | None:
        """The position a message carries, or None (published without one, or unreadable headers)."""
        found = dict(record.headers)
        try:
            return cls(found[SOURCE_HEADER].decode(), int(found[POSITION_HEADER]))
        except (KeyError, ValueError):
            return None


def written_positions(
    bootstrap: str,
    topic: str,
    producer: str,
    codec: DatasetCodec,
    source: str,
    since: Mapping[int, int],
    *,
    timeout: float = 30.0,
) -> dict[int, int]:
    """Lane → the highest position of ``source`` that ``producer`` wrote there at or after offset
    ``since[lane]`` (lanes without one are left out)."""
    found: dict[int, int] = {}
    with TopicReader(bootstrap, timeout=timeout) as reader:
        for lane, (low, high) in reader.partitions(topic).items():
            start = max(low, since.get(lane, low))
            for window in lane_windows(reader, topic, lane, start, high):
                # Headers first (cheap), signatures only for the messages that name the source.
                claimed = {
                    r.offset: p.position
                    for r in window
                    if (p := SourcePosition.of(r)) is not None and p.source == source
                }
                ours = [r for r in window if r.offset in claimed]
                positions = [claimed[r.offset] for r, _ in verified_own(ours, lane, producer, codec)]
                if positions:
                    found[lane] = max(positions)
                    break
    return found
