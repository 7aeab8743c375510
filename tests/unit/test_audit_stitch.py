"""The stitch of a lane's parts, audited apart, against the audit of the whole lane: the same counts, the
same findings in the same order, the same hashes at checkpointed sequences; or no stitch at all (the lane
is then audited whole), never a different answer. Chains of two producers interleaved in one lane, cut
into parts of every size, honest and with each tampering at every place."""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable
from dataclasses import asdict
from typing import cast

import pytest

from services.audit_lanes import Lane, audit_lanes, parts_of
from services.audit_status import EventStatus, TimeWindow
from services.audit_stitch import LaneAudit, LaneChains, stitch
from sharehub.chain import Link
from sharehub.envelope import ZERO_HASH
from sharehub.errors import InputError
from sharehub.gov.state import GovState
from sharehub.kafka import TopicReader

TOPIC = "t-party-members"
Links = list[tuple[str, Link]]


def honest(events: int, producers: tuple[str, ...] = ("coc", "go")) -> Links:
    """``events`` events, the producers taking turns, each producer's one chain from sequence 1."""
    heads = dict.fromkeys(producers, (0, ZERO_HASH))
    lane: Links = []
    for n in range(events):
        producer = producers[n % len(producers)]
        sequence, prev = heads[producer]
        own = hashlib.sha256(f"{producer} {sequence + 1} {n}".encode()).digest()
        lane.append((producer, Link(sequence + 1, prev, own)))
        heads[producer] = (sequence + 1, own)
    return lane


def audited(
    lane: Links,
    *,
    start: int = 0,
    part: bool,
    every_event: bool,
    outside: set[int],
    retained_away: bool = False,
) -> LaneAudit:
    """What the audit finds in ``lane`` (its first record at offset ``start``), as audit_lane judges it:
    every record authentic; those at offsets in ``outside`` out of the time window. ``retained_away``: the
    whole lane, whose records before it were retained away."""
    found = LaneAudit()
    chains = LaneChains(found, part=part, retained_away=retained_away)
    for offset, (producer, link) in enumerate(lane, start=start):
        status = EventStatus(TOPIC, 0, offset, producer, link.sequence)
        chains.walk(producer, link, status, offset not in outside)
        if offset not in outside:
            found.count(status, every_event)
    chains.finish({"coc": {1, 3, 6, 9}, "go": {2, 5}})
    return found


def stitched(lane: Links, size: int, *, every_event: bool, outside: set[int]) -> LaneAudit | None:
    """``lane`` audited in parts of ``size`` records, each sent as from a worker process, and stitched."""
    parts = [
        audited(lane[at : at + size], start=at, part=True, every_event=every_event, outside=outside)
        for at in range(0, len(lane), size)
    ]
    return stitch([pickle.loads(pickle.dumps(part)) for part in parts], every_event)


def facts(found: LaneAudit) -> tuple[object, ...]:
    statuses = [asdict(s) for s in found.statuses]
    return found.records, found.verified, statuses, found.logged, found.sealed_in_custody


def dropped(lane: Links, at: int) -> Links:
    return lane[:at] + lane[at + 1 :]


def repeated(lane: Links, at: int) -> Links:
    return [*lane, lane[at]]


def swapped(lane: Links, at: int) -> Links:
    if at + 2 >= len(lane):
        return lane
    moved = list(lane)
    moved[at], moved[at + 2] = moved[at + 2], moved[at]  # the same producer's: its turn comes every 2
    return moved


def forked(lane: Links, at: int) -> Links:
    producer, link = lane[at]
    return [*lane[:at], (producer, link._replace(hash=b"\x01" * 32)), *lane[at + 1 :]]


def relinked(lane: Links, at: int) -> Links:
    producer, link = lane[at]
    return [*lane[:at], (producer, link._replace(prev_hash=b"\x02" * 32)), *lane[at + 1 :]]


def replayed(lane: Links, at: int) -> Links:
    producer, link = lane[at]
    return [*lane, (producer, link._replace(hash=b"\x03" * 32))]


TAMPERINGS: list[Callable[[Links, int], Links]] = [dropped, repeated, swapped, forked, relinked, replayed]


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
    tamper: Callable[[Links, int], Links], every_event: bool
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


def test_a_lane_is_cut_into_consecutive_parts_and_a_part_of_no_record_is_refused() -> None:
    lane = Lane("party-members", TOPIC, 1, 10, 21)
    assert [(p.start, p.end) for p in parts_of(lane, 4)] == [(10, 14), (14, 18), (18, 21)]
    assert parts_of(lane, 11) == [lane] and parts_of(Lane("d", TOPIC, 0, 5, 5), 3) == []
    with pytest.raises(InputError, match="at least 1 record"):
        audit_lanes(
            "127.0.0.1:9", cast(GovState, None), cast(TopicReader, None), checkpointed={},
            window=TimeWindow(), every_event=False, workers=2, part_size=0,
        )  # fmt: skip


@pytest.mark.parametrize("every_event", [False, True])
def test_a_lane_whose_first_records_were_retained_away_has_no_gap_whole_or_cut(
    every_event: bool,
) -> None:
    lane = honest(20)[7:]  # coc's 1..4 and go's 1..3 retained away
    whole = audited(lane, start=7, part=False, every_event=every_event, outside=set(), retained_away=True)
    assert (whole.records, whole.verified) == (13, 13)
    assert whole.first_held == {"coc": 5, "go": 4}
    for size in range(1, len(lane) + 1):
        parts = [
            audited(lane[at : at + size], start=7 + at, part=True, every_event=every_event, outside=set())
            for at in range(0, len(lane), size)
        ]
        found = stitch(parts, every_event, retained_away=True)
        assert found is not None and facts(found) == facts(whole), f"parts of {size}"
        assert found.first_held == whole.first_held
    # The same lane, in a dataset kept for ever: each chain's first event follows a gap.
    kept = audited(lane, start=7, part=False, every_event=False, outside=set())
    assert [s.chain for s in kept.statuses] == ["gap", "gap"]
