"""Deterministic, streaming generator of synthetic ``handbook-attendance`` (its schema in ``schemas/``).

The Electronic Party Member Handbook's record of each member at each meeting: the members are those of
``generate_party_members`` for the same seed (their ids, names, cells and communes), and each one's cell
meets monthly through 2025. What a meeting is (its id, its day, whether its main motion was put to the
vote) follows from the cell and the month alone, so every member of a cell has the same twelve meetings;
what a member did there (attended, voted, raised opinions, was scored) is drawn for the member. Later
events (``changes``) correct an absence (a member who signed in late) or add a score not given yet.

Records come member by member, twelve meetings each; a smaller ``count`` gives a prefix of a larger one.
Streaming: nothing is carried from member to member.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Iterator
from datetime import date
from typing import Any

from tooling.synthetic.changes import check_rate, with_changes
from tooling.synthetic.party_members import generate_party_members
from tooling.synthetic.weighted import Weighted

__all__ = ["MEETINGS_PER_MEMBER", "generate_handbook_attendance"]

Record = dict[str, Any]
YEAR = 2025
MEETINGS_PER_MEMBER = 12
ID_DIGITS = 10
_ATTENDANCE = Weighted([("PRESENT", 90.0), ("EXCUSED", 7.0), ("ABSENT", 3.0)])
_VOTES = Weighted([("FOR", 93.0), ("ABSTAIN", 4.0), ("AGAINST", 3.0)])
_VOTE_SHARE = 0.8
_SCORED_SHARE = 0.7


def generate_handbook_attendance(count: int, seed: int, *, changes: float = 0.0) -> Iterator[Record]:
    """Yield ``count`` member-meetings (the first ``ceil(count / 12)`` members' year) and about
    ``count * changes`` later corrections."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    check_rate(changes)
    rng = random.Random(f"sharehub/handbook-attendance/{seed}")
    change_rng = random.Random(f"sharehub/handbook-attendance/changes/{seed}")
    return with_changes(_attendances(count, seed, rng), changes, change_rng, _later)


def _attendances(count: int, seed: int, rng: random.Random) -> Iterator[Record]:
    members = generate_party_members(-(-count // MEETINGS_PER_MEMBER), seed)
    meetings = ((m, month) for m in members for month in range(1, MEETINGS_PER_MEMBER + 1))
    for member, month in itertools.islice(meetings, count):
        yield _attendance(rng, member, _Meeting(str(member["party_cell"]), month))


class _Meeting:
    """A cell's meeting of one month: its id, its day and whether a motion was voted on, from the cell and
    the month alone (every member of the cell gets the same)."""

    def __init__(self, cell: str, month: int) -> None:
        digest = hashlib.blake2b(f"{cell}/{YEAR}-{month:02d}".encode(), digest_size=8).digest()
        drawn = int.from_bytes(digest, "big")
        self.activity_id = f"SH{drawn % 10**ID_DIGITS:0{ID_DIGITS}d}"
        self.day = date(YEAR, month, 1 + (drawn >> 40) % 28)
        self.voted = (drawn >> 48) % 100 < _VOTE_SHARE * 100


def _attendance(rng: random.Random, member: Record, meeting: _Meeting) -> Record:
    attendance = _ATTENDANCE.draw(rng)
    present = attendance == "PRESENT"
    score: float | None = None
    if attendance == "ABSENT":
        score = 0.0
    elif present and rng.random() < _SCORED_SHARE:
        score = _score(rng)
    return {
        "attendance_id": f"{meeting.activity_id}-{member['member_id']}",
        "activity_id": meeting.activity_id,
        "member_id": member["member_id"],
        "full_name": member["full_name"],
        "party_cell": member["party_cell"],
        "province_code": member["province_code"],
        "commune_code": member["commune_code"],
        "meeting_date": meeting.day.isoformat(),
        "attendance": attendance,
        "vote": _VOTES.draw(rng) if present and meeting.voted else None,
        "opinions_raised": int(rng.expovariate(1.2)) if present else 0,
        "activity_score": score,
    }


def _score(rng: random.Random) -> float:
    return round(min(10.0, max(0.0, rng.normalvariate(8.0, 1.0))) * 2) / 2


def _later(rng: random.Random, record: Record) -> Record | None:
    if record["attendance"] == "ABSENT" and rng.random() < 0.5:
        # Marked absent, then found signed in late in the app: present after all, and scored.
        return {**record, "attendance": "PRESENT", "activity_score": _score(rng)}
    if record["attendance"] == "PRESENT" and record["activity_score"] is None:
        return {**record, "activity_score": _score(rng)}
    return None
