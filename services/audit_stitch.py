"""What the audit of a lane, or of a part of one, finds (:class:`LaneAudit`), and the stitch of a lane's
parts, audited apart, into what the audit of the whole lane finds (:func:`stitch`).

A part is a range of a lane's offsets audited without the chains' state at its start: each producer's
first link there is taken to continue its chain (its :class:`Opening`), and every later link is judged
against the chain as the part walked it. Where the first link does continue the chain the earlier parts
end with (the same sequence plus one, naming its hash), or follows a gap, every later verdict in the part is
the one the whole lane gives: the heads move alike from there, and the sequences the part has seen are all
after the earlier parts' (a gap is the first link's finding, as in the whole lane). Anything else at a cut
(a fork, a replay, an event out of order or a duplicate that may name an event of an earlier part) is not
stitched: the lane must be audited whole."""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from services.audit_status import ChainWalk, EventStatus, walk
from sharehub import chain


@dataclass
class Opening:
    """A producer's first link in a part of a lane, its status and whether the time window holds it."""

    link: chain.Link
    status: EventStatus
    in_window: bool


@dataclass
class LaneAudit:
    """What the audit found in one lane, or in a part of one (records the time window holds only)."""

    records: int = 0
    verified: int = 0
    #: The findings in log order; every record's status when every one is kept.
    statuses: list[EventStatus] = field(default_factory=list)
    #: Producer → authentic events the hub sealed on its behalf, in custody.
    sealed_in_custody: Counter[str] = field(default_factory=Counter)
    #: (producer, sequence) → the hash the lane holds there, for each checkpointed sequence it holds.
    logged: dict[tuple[str, int], bytes] = field(default_factory=dict)
    #: Of a part: producer → its first link here, taken to continue its chain.
    openings: dict[str, Opening] = field(default_factory=dict)
    #: Of a part: producer → the head its chain ends at here.
    heads: dict[str, chain.ChainHead] = field(default_factory=dict)
    #: Producer → the least sequence of its chain held here (what a checkpoint below it names may have been
    #: retained away).
    first_held: dict[str, int] = field(default_factory=dict)
    #: Of a part: False when a link reaches back before its producer's first one here (a replay, a
    #: duplicate or an event out of order, which may name an earlier part's event): not stitched.
    stitchable: bool = True

    def count(self, status: EventStatus, every_event: bool) -> None:
        """Count a record the time window holds; keep its status if a finding, or if ``every_event``."""
        self.records += 1
        if status.ok:
            self.verified += 1
            if not every_event:
                return
        self.statuses.append(status)


class LaneChains:
    """The chains of a lane, or of a part of one (``part``), as the audit walks them in log order; what the
    stitch needs of a part is noted in its :class:`LaneAudit`."""

    def __init__(self, found: LaneAudit, *, part: bool, retained_away: bool = False) -> None:
        """``retained_away``: the whole lane, whose records before its first were retained away: each
        producer's first event here goes on from its earlier ones, gone."""
        self._found, self._part = found, part
        self._first_head = chain.RETAINED_AWAY if retained_away else None
        self._walks: dict[str, ChainWalk] = {}

    def walk(self, producer: str, link: chain.Link, status: EventStatus, in_window: bool) -> None:
        """Judge ``link``, the next authentic event of ``producer`` here; the finding in ``status``."""
        walked = self._walks.get(producer)
        if walked is None:
            walked = self._walks[producer] = ChainWalk(self._first_head)
            if self._part:  # taken to continue the chain; the stitch judges it
                walked.head = chain.ChainHead(link.sequence - 1, link.prev_hash)
                self._found.openings[producer] = Opening(link, status, in_window)
        elif self._part and link.sequence < self._found.openings[producer].link.sequence:
            self._found.stitchable = False
        walk(walked, link, status)

    def finish(self, asked: Mapping[str, set[int]]) -> None:
        """Note the hashes held at the sequences ``asked`` (producer → sequences), and a part's heads."""
        for producer, sequences in asked.items():
            seen = self._walks[producer].seen if producer in self._walks else {}
            self._found.logged.update({(producer, s): seen[s] for s in sequences if s in seen})
            if seen:
                self._found.first_held[producer] = min(seen)
        if self._part:
            heads = {producer: walked.head for producer, walked in self._walks.items()}
            self._found.heads = {producer: head for producer, head in heads.items() if head is not None}


def stitch(parts: list[LaneAudit], every_event: bool, retained_away: bool = False) -> LaneAudit | None:
    """The audit of a whole lane from the audits of its ``parts`` (in offset order, each made with
    :func:`~services.audit_lanes.audit_lane`'s ``part``), or None when its chains do not join cleanly at a
    cut. ``every_event``: the parts kept every record's status. ``retained_away``: the lane's records
    before its first part were retained away. The parts are used up."""
    whole = LaneAudit()
    heads: dict[str, chain.ChainHead] = {}
    first_head = chain.RETAINED_AWAY if retained_away else None
    for part in parts:
        if not part.stitchable:
            return None
        for producer, opening in part.openings.items():
            if not _joins(heads.get(producer, first_head), opening, part, every_event):
                return None
        for producer, first in part.first_held.items():
            whole.first_held[producer] = min(first, whole.first_held.get(producer, first))
        heads.update(part.heads)
        whole.records += part.records
        whole.verified += part.verified
        whole.statuses += part.statuses
        whole.sealed_in_custody.update(part.sealed_in_custody)
        whole.logged.update(part.logged)
    return whole


def _joins(head: chain.ChainHead | None, opening: Opening, part: LaneAudit, every_event: bool) -> bool:
    """Whether ``opening`` (of ``part``) continues the chain that ends at ``head`` (None: no event of its
    producer before it in the lane), or follows a gap, which then is its finding in ``part``."""
    status = opening.status  # ok: the part took it to continue its chain
    walk(ChainWalk(head), opening.link, status)
    if status.chain == "ok":
        return True
    if status.chain != "gap":
        return False
    if opening.in_window:
        part.verified -= 1
        if not every_event:  # a finding now: in its place, by offset, among the part's
            bisect.insort(part.statuses, status, key=lambda s: s.offset)
    return True
