"""Hash chains: each producer's events in each lane (partition) of a dataset form one chain.

An event continues the chain when its sequence is the head's plus one and its ``prev_hash`` is the head's
hash. Anything else is named: a gap, a replayed (old) sequence, a duplicate, or a fork. Chains are per lane
because Kafka orders events within a partition only; that lets the projection check every event online,
in order, and not only the auditor after the fact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from sharehub.envelope import ZERO_HASH, Envelope, Sealed

#: Verdicts on an event that does not simply continue its chain (stable reason codes).
GAP = "chain_gap"
REPLAYED = "replayed_sequence"
DUPLICATE = "duplicate"
FORK = "chain_fork"


@dataclass(frozen=True)
class ChainHead:
    sequence: int
    hash: bytes


GENESIS = ChainHead(0, ZERO_HASH)
#: The head of a chain whose earlier events the log no longer holds, its dataset's retention having
#: deleted them: the first event read continues it, whatever its sequence and predecessor.
RETAINED_AWAY = ChainHead(-1, ZERO_HASH)


class Link(NamedTuple):
    """One record's place in a chain: its sequence, the hash it names as its predecessor's, its own hash.
    Events are links; so are the access log's records (:mod:`sharehub.access_records`)."""

    sequence: int
    prev_hash: bytes
    hash: bytes


def link_of(envelope: Envelope | Sealed) -> Link:
    return Link(envelope.header.sequence, envelope.header.prev_hash, envelope.hash)


def judge(head: ChainHead | None, envelope: Envelope) -> str | None:
    """None when ``envelope`` continues the chain whose head is ``head``; otherwise the reason it does not."""
    return judge_link(head, link_of(envelope))


def judge_link(head: ChainHead | None, link: Link) -> str | None:
    """None when ``link`` continues the chain whose head is ``head``; otherwise the reason it does not."""
    head = head or GENESIS
    if head is RETAINED_AWAY:
        return None
    if link.sequence == head.sequence + 1:
        return None if link.prev_hash == head.hash else FORK
    if link.sequence <= head.sequence:
        return DUPLICATE if link.sequence == head.sequence and link.hash == head.hash else REPLAYED
    return GAP


def head_after(envelope: Envelope | Sealed | Link) -> ChainHead:
    if isinstance(envelope, Link):
        return ChainHead(envelope.sequence, envelope.hash)
    return ChainHead(envelope.header.sequence, envelope.hash)
