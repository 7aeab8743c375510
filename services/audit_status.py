"""What the audit says of each record it reads (:class:`EventStatus`), of each topic (:class:`TopicSummary`),
which records it reports (:class:`TimeWindow`), and how it walks one chain in log order (:func:`walk`):
shared by the audit of the whole log (:mod:`services.audit`) and its lane-by-lane part
(:mod:`services.audit_lanes`), which may run in worker processes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sharehub import chain


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
    #: ok, or what is wrong with the chain here: gap, duplicate, out_of_order, fork, broken_link,
    #: misrouted, truncated, checkpoint_mismatch, deleted_records (governance: chain_gap, duplicate,
    #: replayed_sequence, chain_fork, rule_violation); "-" when the record is not authentic.
    chain: str = "ok"
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.signature == "ok" and self.chain == "ok"

    @property
    def reason(self) -> str:
        """The one reason code of a finding (what is wrong first), or ok."""
        return self.signature if self.signature != "ok" else self.chain


@dataclass
class TopicSummary:
    records: int = 0
    verified: int = 0
    findings: int = 0
    note: str = ""
    #: Records the topic no longer holds, before each partition's first (its dataset's retention deleted
    #: them; kept-for-ever topics that lost records have a finding instead).
    retained_away: int = 0


@dataclass(frozen=True)
class TimeWindow:
    """Report only records the broker stamped in [start, end); either end open when None."""

    start: dt.datetime | None = None
    end: dt.datetime | None = None

    @property
    def whole_log(self) -> bool:
        return self.start is None and self.end is None

    def holds(self, timestamp_ms: int) -> bool:
        if self.whole_log:
            return True
        at = dt.datetime.fromtimestamp(timestamp_ms / 1000, dt.UTC)
        return (self.start is None or at >= self.start) and (self.end is None or at < self.end)


@dataclass
class ChainWalk:
    """One chain (a producer's events in one lane of a dataset, or an API instance's access records) as the
    audit walks it: its head, and every sequence it has seen with the hash it had there."""

    head: chain.ChainHead | None = None
    seen: dict[int, bytes] = field(default_factory=dict)


def walk(lane: ChainWalk, link: chain.Link, status: EventStatus) -> None:
    """Judge ``link`` against its chain as walked so far (in log order); the finding in ``status``."""
    verdict = chain.judge_link(lane.head, link)
    earlier = lane.seen.get(link.sequence)
    if verdict is None or verdict == chain.GAP:
        if verdict == chain.GAP:
            expected = (lane.head.sequence if lane.head else 0) + 1
            status.chain, status.detail = (
                "gap",
                f"sequences {expected}..{link.sequence - 1} are missing here",
            )
        lane.head = chain.head_after(link)
        lane.seen[link.sequence] = link.hash
    elif verdict == chain.FORK:
        status.chain, status.detail = "broken_link", "prev_hash is not the hash of the previous event"
    elif earlier is None:
        status.chain, status.detail = (
            "out_of_order",
            f"sequence {link.sequence} after {lane.head.sequence if lane.head else 0}",
        )
        lane.seen[link.sequence] = link.hash
    elif earlier == link.hash:
        status.chain, status.detail = "duplicate", f"sequence {link.sequence} appears again"
    else:
        status.chain, status.detail = "fork", f"another record already holds sequence {link.sequence}"
