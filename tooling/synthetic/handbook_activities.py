"""Deterministic, streaming generator of synthetic ``handbook-activities`` (its schema in ``schemas/``).

Party-cell meetings as the Electronic Party Member Handbook records them: a cell of 10-40 members in a real
commune meets monthly, sometimes on a theme or to study one of the key resolutions; most members attend,
the main motion passes by a wide margin, and the superior committee rates the meeting later. Meetings
are written as held; later events (``changes``) add the rating of an unrated meeting or correct its
attendance.

Streaming: no state is carried between meetings beyond the per-run tables.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date
from typing import Any

from tooling.synthetic import geography
from tooling.synthetic.changes import check_rate, with_changes
from tooling.synthetic.people import Names
from tooling.synthetic.topics import RESOLUTIONS, SUBJECTS
from tooling.synthetic.weighted import Weighted

__all__ = ["RATING_BANDS", "generate_handbook_activities"]

Record = dict[str, Any]
ID_DIGITS = 10
FIRST_DAY = date(2025, 1, 1).toordinal()
LAST_DAY = date(2025, 12, 31).toordinal()

_TYPES = Weighted([("REGULAR", 70.0), ("THEMATIC", 15.0), ("RESOLUTION_STUDY", 10.0), ("EXTRAORDINARY", 5.0)])
#: Relative number of cells per commune by kind, as for party members: wards are denser.
_COMMUNE_KIND_WEIGHT = {"phường": 3.0, "xã": 1.0, "đặc khu": 1.5}
#: Most cells of a commune have small numbers: cell n exists in fewer communes than cell 1.
_MAX_CELL = 60
_RATED_SHARE = 0.6
_VOTE_SHARE = 0.8
#: Lowest score of each rating (out of 100), best first.
RATING_BANDS = (("EXCELLENT", 85.0), ("GOOD", 70.0), ("AVERAGE", 50.0), ("POOR", 0.0))
_THEMES = (
    "Nâng cao chất lượng sinh hoạt chi bộ",
    "Học tập và làm theo tư tưởng, đạo đức, phong cách Hồ Chí Minh",
    "Vai trò nêu gương của đảng viên",
    "Chuyển đổi số ở cơ sở",
    "Xây dựng nông thôn mới, đô thị văn minh",
)


def generate_handbook_activities(count: int, seed: int, *, changes: float = 0.0) -> Iterator[Record]:
    """Yield ``count`` meetings (ids SH0000000001…) and about ``count * changes`` later ratings or fixes."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if count > 10**ID_DIGITS - 1:
        raise ValueError(f"activity ids would exceed {ID_DIGITS} digits")
    check_rate(changes)
    rng = random.Random(f"sharehub/handbook-activities/{seed}")
    change_rng = random.Random(f"sharehub/handbook-activities/changes/{seed}")
    return with_changes(_meetings(count, rng), changes, change_rng, _later)


def _meetings(count: int, rng: random.Random) -> Iterator[Record]:
    names = Names(rng)
    communes = Weighted((c, _COMMUNE_KIND_WEIGHT.get(c.kind, 1.0)) for c in geography.communes())
    for index in range(count):
        commune = communes.draw(rng)
        cell = min(_MAX_CELL, 1 + int(rng.expovariate(0.15)))
        kind = _TYPES.draw(rng)
        held = date.fromordinal(rng.randint(FIRST_DAY, LAST_DAY))
        total = round(rng.triangular(10, 40, 22))
        present = min(total, round(total * rng.betavariate(18, 1.5)))
        excused = round((total - present) * rng.uniform(0.5, 1.0))
        votes: dict[str, int | None] = {"votes_for": None, "votes_against": None, "votes_abstain": None}
        if rng.random() < _VOTE_SHARE:
            against = min(present, int(rng.expovariate(1.5)))
            abstain = min(present - against, int(rng.expovariate(2.0)))
            votes = {
                "votes_for": present - against - abstain,
                "votes_against": against,
                "votes_abstain": abstain,
            }
        meeting = {
            "activity_id": f"SH{index + 1:0{ID_DIGITS}d}",
            "party_cell": f"CB-{commune.code}-{cell:03d}",
            "province_code": commune.province_code,
            "commune_code": commune.code,
            "activity_type": kind,
            "meeting_date": held.isoformat(),
            "topic": _topic(rng, kind, held),
            "chaired_by": names.full_name(rng, rng.random() < 0.3),
            "members_total": total,
            "members_present": present,
            "members_excused": excused,
            **votes,
            "opinions_count": int(rng.expovariate(0.3)),
            "minutes_summary": (
                f"Chi bộ thảo luận về {rng.choice(SUBJECTS)}; thống nhất giao nhiệm vụ cho "
                f"{rng.randint(1, 5)} đảng viên và báo cáo kết quả tại kỳ sinh hoạt sau."
            ),
            "quality_rating": None,
            "score": None,
        }
        if rng.random() < _RATED_SHARE:
            meeting.update(_rating(rng))
        yield meeting


def _topic(rng: random.Random, kind: str, held: date) -> str:
    if kind == "REGULAR":
        return f"Sinh hoạt chi bộ định kỳ tháng {held.month}/{held.year}"
    if kind == "RESOLUTION_STUDY":
        number, title, _ = rng.choice(RESOLUTIONS)
        return f"Học tập, quán triệt Nghị quyết số {number} {title[0].lower()}{title[1:]}"
    if kind == "THEMATIC":
        return f"Sinh hoạt chuyên đề: {rng.choice(_THEMES)}"
    return f"Sinh hoạt bất thường về {rng.choice(SUBJECTS)}"


def _rating(rng: random.Random) -> dict[str, Any]:
    score = round(min(100.0, max(30.0, rng.normalvariate(80.0, 9.0))), 1)
    rating = next(name for name, lowest in RATING_BANDS if score >= lowest)
    return {"quality_rating": rating, "score": score}


def _later(rng: random.Random, meeting: Record) -> Record | None:
    if meeting["quality_rating"] is None:
        return {**meeting, **_rating(rng)}
    absent = meeting["members_total"] - meeting["members_present"]
    if absent and rng.random() < 0.3:
        # A member marked absent turns out to have attended (signed in late in the app).
        fixed = {**meeting, "members_present": meeting["members_present"] + 1}
        fixed["members_excused"] = min(fixed["members_excused"], absent - 1)
        if fixed["votes_for"] is not None:
            fixed["votes_for"] += 1
        return fixed
    return None
