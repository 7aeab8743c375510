"""The stitch of a lane's parts, audited apart, against the audit of the whole lane: the same counts, the
same findings in the same order, the same hashes at checkpointed sequences; or no stitch at all (the lane
is then audited whole), never a different answer. Chains of two producers interleaved in one lane, cut
into parts of every size, honest and with each tampering at every place."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict

import pytest

from services.audit_status import EventStatus
from services.audit_stitch import LaneAudit, LaneChains, stitch
from sharehub.chain import Link
from sharehub.envelope import ZERO_HASH

TOPIC = "t-party-members"
Lane = list[tuple[str, Link]]


def honest(events: int, producers: tuple[str, ...] = ("coc", "go")) -> Lane:
    """``events`` events, the producers taking turns, each producer's one chain from sequence 1."""
    heads = dict.fromkeys(producers, (0, ZERO_HASH))
    lane: Lane = []
    for n in range(events):
        producer = producers[n % len(producers)]
        sequence, prev = heads[producer]
        own = hashlib.sha256(f"{producer} {sequence + 1} {n}".encode()).digest()
        lane.append((producer, Link(sequence + 1, prev, own)))
        heads[producer] = (sequence + 1, own)
    return lane


def audited(lane: Lane, *, start: int = 0, part: bool, every_event: bool, outside: set[int]) -> LaneAudit:
    """What the audit finds in ``lane`` (its first record at offset ``start``), as audit_lane judges it:
    every record authentic; those at offsets in ``outside`` out of the time window."""
    found = LaneAudit()
    chains = LaneChains(found, part=part)
    for offset, (producer, link) in enumerate(lane, start=start):
        status = EventStatus(TOPIC, 0, offset, producer, link.sequence)
        chains.walk(producer, link, status, offset not in outside)
        if offset not in outside:
            found.count(status, every_event)
    chains.finish({"coc": {1, 3, 6, 9}, "go": {2, 5}})
    return found


def stitched(lane: Lane, size: int, *, every_event: bool, outside: set[int]) -> LaneAudit | None:
    parts = [
        audited(lane[at : at + size], start=at, part=True, every_event=every_event, outside=outside)
        for at in range(0, len(lane), size)
    ]
    return stitch(parts, every_event)


def facts(found: LaneAudit) -> tuple[object, ...]:
    statuses = [asdict(s) for s in found.statuses]
    return found.records, found.verified, statuses, found.logged, found.sealed_in_custody


def dropped(lane: Lane, at: int) -> Lane:
    return lane[:at] + lane[at + 1 :]


def repeated(lane: Lane, at: int) -> Lane:
    return [*lane, lane[at]]


def swapped(lane: Lane, at: int) -> Lane:
    if at + 2 >= len(lane):
        return lane
    moved = list(lane)
    moved[at], moved[at + 2] = moved[at + 2], moved[at]  # the same producer's: its turn comes every 2
    return moved


def forked(lane: Lane, at: int) -> Lane:
    producer, link = lane[at]
    return [*lane[:at], (producer, link._replace(hash=b"\x01" * 32)), *lane[at + 1 :]]


def relinked(lane: Lane, at: int) -> Lane:
    producer, link = lane[at]
    return [*lane[:at], (producer, link._replace(prev_hash=b"\x02" * 32)), *lane[at + 1 :]]


def replayed(lane: Lane, at: int) -> Lane:
    producer, link = lane[at]
    return [*lane, (producer, link._replace(hash=b"\x03" * 32))]


TAMPERINGS: list[Callable[[Lane, int], Lane]] = [dropped, repeated, swapped, forked, relinked, replayed]


@pytest.mark.parametrize("every_event", [True, False])
def test_an_honest_lane_cut_anywhere_stitches_to_the_whole_lanes_audit(every_event: bool) -> None:
    lane = honest(15)
    whole = audited(lane, part=False, every_event=every_event, outside=set())
    assert whole.records == whole.verified == 15 and whole.logged
    for size in range(1, 17):
        found = stitched(lane, size, every_event=every_event, outside=set())
        assert found is not None, f"parts of {size}"
        assert facts(found) == facts(whole), f"parts of {size}"


@pytest.mark.parametrize("every_event", [True, False])
def test_a_gap_at_a_cut_is_the_first_events_finding_as_in_the_whole_lane(every_event: bool) -> None:
    lane = dropped(honest(12), 6)  # coc's sequence 4 deleted: its sequence 5 at offset 7 follows a gap
    outside = {2}
    whole = audited(lane, part=False, every_event=every_event, outside=outside)
    gaps = [s for s in whole.statuses if s.chain == "gap"]
    assert [(s.offset, s.detail) for s in gaps] == [(7, "sequences 4..4 are missing here")]
    for size in range(1, 13):  # size 7 cuts right before the event after the gap
        found = stitched(lane, size, every_event=every_event, outside=outside)
        assert found is not None, f"parts of {size}"
        assert facts(found) == facts(whole), f"parts of {size}"


def test_a_producer_first_seen_in_a_later_part_starts_its_chain_there() -> None:
    lane = honest(6, ("coc",)) + honest(4, ("go",))
    late_start = honest(6, ("coc",)) + honest(4, ("go",))[2:]  # go's first event in the lane: sequence 3
    for events in (lane, late_start):
        whole = audited(events, part=False, every_event=False, outside=set())
        for size in (2, 3, 5, 6):
            found = stitched(events, size, every_event=False, outside=set())
            assert found is not None and facts(found) == facts(whole)
    assert [
        (s.offset, s.chain)
        for s in audited(late_start, part=False, every_event=False, outside=set()).statuses
    ] == [(6, "gap")]


@pytest.mark.parametrize("tamper", TAMPERINGS, ids=lambda t: t.__name__)
@pytest.mark.parametrize("every_event", [True, False])
def test_a_tampered_lane_stitches_to_the_whole_lanes_findings_or_not_at_all(
    tamper: Callable[[Lane, int], Lane], every_event: bool
) -> None:
    stitches = refusals = tampered = 0
    for at in range(12):
        lane = tamper(honest(12), at)
        outside = {at % 5}
        whole = audited(lane, part=False, every_event=every_event, outside=outside)
        tampered += any(not s.ok for s in whole.statuses)
        for size in range(1, len(lane) + 1):
            found = stitched(lane, size, every_event=every_event, outside=outside)
            if found is None:
                refusals += 1
            else:
                stitches += 1
                assert facts(found) == facts(whole), f"{tamper.__name__} at {at}, parts of {size}"
    assert tampered >= 6  # (not at the lane's end, nor where the record out of the window is the one)
    assert stitches  # within a part, every tampering is stitched
    if tamper is dropped:
        assert not refusals  # a gap never stops the stitch
    else:
        assert refusals  # each of the others, at some cut, reaches back across it


def test_a_part_whose_link_reaches_back_before_its_first_is_not_stitched() -> None:
    lane = swapped(honest(8), 2)  # coc: 1, 3, 2, 4: sequence 2 comes after 3
    part = audited(lane[2:], start=2, part=True, every_event=False, outside=set())
    assert not part.stitchable
    first = audited(lane[:2], part=True, every_event=False, outside=set())
    assert stitch([first, part], every_event=False) is None
