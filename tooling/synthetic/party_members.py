"""Deterministic, streaming generator of synthetic ``party-members`` records.

Records follow ``schemas/party-members.avsc`` in the JSON Lines form ``sharehub publish`` reads: dates as
ISO ``YYYY-MM-DD`` strings, enums as their symbols, nullable fields as ``None``.

Determinism: every random choice comes from one ``random.Random`` seeded from ``(seed, start_index)``, and
Faker('vi_VN') is seeded from it; the global ``random`` state is never used. The same arguments give the same
records in the same order, and a smaller ``count`` gives a prefix of a larger one.

Streaming: nothing grows with ``count``. The only state carried from record to record is one party-cell
cursor per commune and one counter per national-id prefix (province x gender x birth year), both bounded
by the geography and the calendar. With ``changes``, later states of earlier members (transfers,
promotions, new phones, exits) are drawn from a fixed-size reservoir (:mod:`tooling.synthetic.changes`).

Realism is deliberately coarse: population is proxied by commune kind (urban wards weigh more), ethnic
minorities are concentrated in their home provinces, ages and statuses follow rough national shares.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta

from tooling.synthetic import geography
from tooling.synthetic.changes import check_rate, with_changes
from tooling.synthetic.people import Names, mobile
from tooling.synthetic.weighted import Weighted

__all__ = ["GENERATION_DATE", "generate_party_members"]

#: Ages, statuses and admission dates are computed as of this day, so output does not drift with the clock.
GENERATION_DATE = date(2026, 1, 1)
MIN_AGE = 18
MAX_AGE = 95
MEMBER_ID_DIGITS = 10
MAX_MEMBER_INDEX = 10**MEMBER_ID_DIGITS - 2  # ids are index + 1 and must fit in MEMBER_ID_DIGITS digits

Record = dict[str, str | None]

# --- Distributions --------------------------------------------------------------------------------------

#: Percent of members per status. The three exits together stay under 2 %.
_STATUSES = Weighted(
    [
        ("PROBATIONARY", 8.0),
        ("OFFICIAL", 90.3),
        ("TRANSFERRED_OUT", 0.8),
        ("DECEASED", 0.6),
        ("EXPELLED", 0.3),
    ]
)

#: Relative population of one commune by kind: urban wards are denser than rural communes.
_COMMUNE_KIND_WEIGHT = {"phường": 3.0, "xã": 1.0, "đặc khu": 1.5}

#: Women are about a third of all members but close to half of recent admissions.
_FEMALE_SHARE = 0.36
_FEMALE_SHARE_PROBATIONARY = 0.46

#: Share of members registered at birth in the province they live in now.
_BORN_IN_HOME_PROVINCE = 0.8

_PHONE_MISSING = 0.05

#: Ethnic minorities: (official name, percent of members nationally, provinces where most of them live).
#: Shares follow the 2019 census; home provinces use the 2025 codes (merged provinces included).
_ETHNIC_MINORITIES: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("Tày", 1.9, ("04", "20", "08", "19", "15")),
    ("Thái", 1.9, ("14", "11", "12", "40", "38")),
    ("Mường", 1.5, ("25", "38", "37")),
    ("Mông", 1.5, ("08", "15", "11", "12", "14", "04")),
    ("Khmer", 1.4, ("86", "92", "91", "96")),
    ("Nùng", 1.1, ("20", "04", "24", "19", "08")),
    ("Dao", 0.9, ("08", "15", "22", "04", "19")),
    ("Hoa", 0.8, ("79", "75", "91", "92")),
    ("Gia Rai", 0.5, ("52", "51")),
    ("Ê Đê", 0.4, ("66",)),
    ("Ba Na", 0.3, ("52", "51")),
    ("Xơ Đăng", 0.2, ("51", "48")),
    ("Sán Chay", 0.2, ("08", "19", "24")),
    ("Cơ Ho", 0.2, ("68",)),
    ("Chăm", 0.2, ("56", "68", "91")),
    ("Sán Dìu", 0.2, ("25", "19", "22", "24")),
    ("Hrê", 0.15, ("51",)),
    ("Mnông", 0.1, ("68",)),
    ("Ra Glai", 0.1, ("56",)),
)
#: Share of each minority living in its home provinces; the rest is spread over the country.
_HOME_SHARE = 0.85
#: Even in the most minority-heavy province, keep some Kinh members.
_MAX_MINORITY_SHARE = 0.95


# --- Dates ----------------------------------------------------------------------------------------------

_GENERATION_ORD = GENERATION_DATE.toordinal()
_DAYS_PER_YEAR = 365.2425
#: Probationary members were admitted within the 12 months before the generation date.
_PROBATION_FIRST_ADMISSION = (
    GENERATION_DATE.replace(year=GENERATION_DATE.year - 1) + timedelta(days=1)
).toordinal()
_LAST_ADMISSION = _GENERATION_ORD - 1
#: Official members finished their 12 months of probation by the generation date.
_OFFICIAL_LAST_ADMISSION = GENERATION_DATE.replace(year=GENERATION_DATE.year - 1).toordinal()
#: Born before this day, a member would be over MAX_AGE on the generation date.
_OLDEST_BIRTH = GENERATION_DATE.replace(year=GENERATION_DATE.year - MAX_AGE - 1).toordinal() + 1


def _coming_of_age(born: date) -> date:
    """The MIN_AGE-th birthday: admission must come after it."""
    try:
        return born.replace(year=born.year + MIN_AGE)
    except ValueError:  # born on 29 February: conservatively of age only from 1 March
        return date(born.year + MIN_AGE, 3, 1)


def _latest_birth_for_admission(last_admission: int) -> int:
    """Ordinal of the latest birth day that comes of age strictly before ``last_admission``."""
    born = date.fromordinal(last_admission - 1)
    born = date(born.year - MIN_AGE, born.month, min(born.day, 28))  # near the answer; 28 dodges 29 Feb
    while _coming_of_age(born + timedelta(days=1)).toordinal() < last_admission:
        born += timedelta(days=1)
    while _coming_of_age(born).toordinal() >= last_admission:
        born -= timedelta(days=1)
    return born.toordinal()


def _add_twelve_months(day: date) -> date:
    try:
        return day.replace(year=day.year + 1)
    except ValueError:  # 29 February: the end of the same month next year
        return date(day.year + 1, 2, 28)


#: Probationary members may be as young as MIN_AGE; official ones needed 12 more months.
_PROBATIONARY_LATEST_BIRTH = _latest_birth_for_admission(_LAST_ADMISSION)
_OFFICIAL_LATEST_BIRTH = _latest_birth_for_admission(_OFFICIAL_LAST_ADMISSION)


def _draw_age(rng: random.Random, status: str) -> float:
    if status == "PROBATIONARY":
        # New members come mostly from the Youth Union; some join mid-career.
        return rng.triangular(MIN_AGE, 36.0, 21.0) if rng.random() < 0.85 else rng.uniform(30.0, 55.0)
    age = rng.normalvariate(47.0, 14.0)
    if status == "DECEASED":
        age = max(age, rng.normalvariate(47.0, 14.0))  # skews the deceased older
    return age


def _draw_birth(rng: random.Random, status: str) -> date:
    latest = _PROBATIONARY_LATEST_BIRTH if status == "PROBATIONARY" else _OFFICIAL_LATEST_BIRTH
    while True:  # rejection sampling truncates the age distribution; nearly every draw is accepted
        born = _GENERATION_ORD - int(_draw_age(rng, status) * _DAYS_PER_YEAR)
        if _OLDEST_BIRTH <= born <= latest:
            return date.fromordinal(born)


def _draw_admission(rng: random.Random, born: date, probationary: bool) -> date:
    earliest = _coming_of_age(born).toordinal() + 1
    if probationary:
        return date.fromordinal(rng.randint(max(earliest, _PROBATION_FIRST_ADMISSION), _LAST_ADMISSION))
    span = _OFFICIAL_LAST_ADMISSION - earliest
    # Most members join in their early twenties, with a long tail of later admissions.
    offset = int(rng.triangular(0.0, 30.0, 3.0) * _DAYS_PER_YEAR)
    if offset > span:
        offset = rng.randint(0, span)
    return date.fromordinal(earliest + offset)


# --- Per-run state --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Place:
    commune_code: str
    province_code: str
    ethnicities: Weighted[str]


def _ethnicities_by_province(province_weight: dict[str, float]) -> dict[str, Weighted[str]]:
    """Per-province ethnicity tables whose population-weighted mix gives the national shares."""
    total = sum(province_weight.values())
    minority: dict[str, list[tuple[str, float]]] = {code: [] for code in province_weight}
    for name, percent, homes in _ETHNIC_MINORITIES:
        home_weight = sum(province_weight[code] for code in homes)
        # Share of the group among members of a province = its mass there / the province's mass;
        # spreading mass proportionally to weight makes that constant inside and outside the homes.
        at_home = percent / 100 * _HOME_SHARE * total / home_weight
        away = percent / 100 * (1 - _HOME_SHARE) * total / (total - home_weight)
        for code, entries in minority.items():
            entries.append((name, at_home if code in homes else away))
    tables: dict[str, Weighted[str]] = {}
    for code, entries in minority.items():
        share = sum(s for _, s in entries)
        scale = min(1.0, _MAX_MINORITY_SHARE / share)
        tables[code] = Weighted([("Kinh", 1.0 - share * scale)] + [(n, s * scale) for n, s in entries])
    return tables


def _places(rng: random.Random) -> tuple[Weighted[_Place], Weighted[str], dict[str, int]]:
    """Communes weighted by a population proxy, provinces weighted alike, and each commune's slot."""
    communes = geography.communes()
    # Jitter: communes of one kind still differ in size.
    weights = [_COMMUNE_KIND_WEIGHT.get(c.kind, 1.0) * rng.uniform(0.6, 1.4) for c in communes]
    province_weight: dict[str, float] = {}
    for commune, weight in zip(communes, weights, strict=True):
        province_weight[commune.province_code] = province_weight.get(commune.province_code, 0.0) + weight
    ethnicities = _ethnicities_by_province(province_weight)
    places = Weighted(
        (_Place(c.code, c.province_code, ethnicities[c.province_code]), w)
        for c, w in zip(communes, weights, strict=True)
    )
    slots = {c.code: i for i, c in enumerate(communes)}
    return places, Weighted(province_weight.items()), slots


class _PartyCells:
    """Fills each commune's party cells in turn, each with 10-40 members."""

    def __init__(self, communes: int) -> None:
        self._number = [0] * communes
        self._room = [0] * communes

    def count(self, slot: int) -> int:
        """How many cells the commune in ``slot`` has so far."""
        return self._number[slot]

    def assign(self, rng: random.Random, slot: int, commune_code: str) -> str:
        if self._room[slot] == 0:
            self._number[slot] += 1
            self._room[slot] = round(rng.triangular(10, 40, 22))
        self._room[slot] -= 1
        # Past 999 cells (~25,000 members in one commune) the number simply widens.
        return f"CB-{commune_code}-{self._number[slot]:03d}"


class _NationalIds:
    """Issues 12-digit citizen identity (CCCD) numbers, unique within one run.

    Layout: 3 digits province of birth, 1 digit gender and century (0/1 male/female born 1900-1999,
    2/3 for 2000-2099), 2 digits year of birth, 6 serial digits. The serial is the n-th issue of its
    prefix through an affine bijection of 0..999,999, so it looks random yet never repeats.
    """

    _SERIALS = 1_000_000

    def __init__(self, rng: random.Random) -> None:
        multiplier = rng.randrange(1, self._SERIALS)
        while multiplier % 2 == 0 or multiplier % 5 == 0:  # coprime with 10**6, hence a bijection
            multiplier = rng.randrange(1, self._SERIALS)
        self._multiplier = multiplier
        self._offset = rng.randrange(self._SERIALS)
        self._issued: dict[str, list[int]] = {}

    def issue(self, birth_province: str, female: bool, birth_year: int) -> str:
        century = 0 if birth_year < 2000 else 2
        prefix = f"0{birth_province}{century + female}{birth_year % 100:02d}"
        state = self._issued.get(prefix)
        if state is None:
            # a per-prefix start keeps prefixes from sharing one visible serial sequence
            state = self._issued[prefix] = [0, (self._offset + int(prefix) * 7_919) % self._SERIALS]
        issued, start = state
        if issued == self._SERIALS:
            raise OverflowError(f"all {self._SERIALS:,} national-id serials of prefix {prefix} are used")
        state[0] = issued + 1
        return f"{prefix}{(start + issued * self._multiplier) % self._SERIALS:06d}"


# --- The generator --------------------------------------------------------------------------------------


def generate_party_members(
    count: int, seed: int, start_index: int = 0, *, changes: float = 0.0
) -> Iterator[Record]:
    """Yield ``count`` synthetic party members, deterministically for ``(seed, start_index, changes)``.

    Members are numbered from ``start_index``: ``member_id`` is ``"PM"`` and ``start_index + i + 1`` on ten
    digits, so a later call continuing at ``start_index = previous start + previous count`` never reuses
    an id. ``start_index`` also feeds the random stream, so such a continuation brings new people rather
    than the same ones under new ids.

    ``changes`` interleaves, on average that many per member, later full records of earlier members:
    transfers to another commune (mostly in the same province), probationary members made official,
    new phone numbers, and the rare exit (transferred out, deceased, expelled). A change keeps the
    ``member_id``; it happens after :data:`GENERATION_DATE`, so an official date it sets may lie past it.
    The stream then holds ``count`` members and about ``count * changes`` changes.

    Arguments are checked on the call; the work happens lazily, one record per ``next()``.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if start_index < 0:
        raise ValueError(f"start_index must be >= 0, got {start_index}")
    if start_index + count - 1 > MAX_MEMBER_INDEX:
        raise ValueError(f"member ids would exceed {MEMBER_ID_DIGITS} digits")
    check_rate(changes)
    return _generate(count, seed, start_index, changes)


def _generate(count: int, seed: int, start_index: int, changes: float) -> Iterator[Record]:
    # A str seed is hashed with SHA-512: stable across processes and Python builds, unlike hash().
    rng = random.Random(f"sharehub/party-members/{seed}/{start_index}")
    names = Names(rng)
    places, provinces, slots = _places(rng)
    cells = _PartyCells(len(slots))
    national_ids = _NationalIds(rng)

    def members() -> Iterator[Record]:
        for index in range(start_index, start_index + count):
            status = _STATUSES.draw(rng)
            probationary = status == "PROBATIONARY"
            female = rng.random() < (_FEMALE_SHARE_PROBATIONARY if probationary else _FEMALE_SHARE)
            place = places.draw(rng)
            full_name = names.full_name(rng, female)
            born = _draw_birth(rng, status)
            admitted = _draw_admission(rng, born, probationary)
            home = place.province_code
            birth_province = home if rng.random() < _BORN_IN_HOME_PROVINCE else provinces.draw(rng)
            phone = None if rng.random() < _PHONE_MISSING else mobile(rng)
            yield {
                "member_id": f"PM{index + 1:0{MEMBER_ID_DIGITS}d}",
                "full_name": full_name,
                "gender": "FEMALE" if female else "MALE",
                "date_of_birth": born.isoformat(),
                "national_id": national_ids.issue(birth_province, female, born.year),
                "phone": phone,
                "ethnicity": place.ethnicities.draw(rng),
                "province_code": place.province_code,
                "commune_code": place.commune_code,
                "party_cell": cells.assign(rng, slots[place.commune_code], place.commune_code),
                "admission_date": admitted.isoformat(),
                "official_date": None if probationary else _add_twelve_months(admitted).isoformat(),
                "status": status,
            }

    change_rng = random.Random(f"sharehub/party-members/changes/{seed}/{start_index}")
    moves = _Moves(provinces, cells, slots) if changes else None
    return with_changes(members(), changes, change_rng, moves.change if moves else _no_change)


def _no_change(_rng: random.Random, _record: Record) -> None:
    return None


# --- Later changes --------------------------------------------------------------------------------------

#: What happens to an active member after the generation date, in percent of changes.
_CHANGE_KINDS = Weighted(
    [
        ("MOVE_COMMUNE", 50.0),
        ("MOVE_PROVINCE", 15.0),
        ("NEW_PHONE", 20.0),
        ("TRANSFERRED_OUT", 6.0),
        ("DECEASED", 7.0),
        ("EXPELLED", 2.0),
    ]
)
#: A probationary member picked for a change has, about half the time, just finished probation.
_PROMOTION_SHARE = 0.5


class _Moves:
    """Later states of members: transfers (to a cell that exists), promotions, phones, exits."""

    def __init__(self, provinces: Weighted[str], cells: _PartyCells, slots: dict[str, int]) -> None:
        self._provinces = provinces
        self._cells = cells
        self._slots = slots
        by_province: dict[str, list[tuple[str, float]]] = {}
        for c in geography.communes():
            by_province.setdefault(c.province_code, []).append(
                (c.code, _COMMUNE_KIND_WEIGHT.get(c.kind, 1.0))
            )
        self._communes = {code: Weighted(entries) for code, entries in by_province.items()}

    def change(self, rng: random.Random, member: Record) -> Record | None:
        status = member["status"]
        if status not in ("PROBATIONARY", "OFFICIAL"):
            return None  # members who left change no more
        if status == "PROBATIONARY" and rng.random() < _PROMOTION_SHARE:
            admitted = date.fromisoformat(str(member["admission_date"]))
            return {**member, "status": "OFFICIAL", "official_date": _add_twelve_months(admitted).isoformat()}
        kind = _CHANGE_KINDS.draw(rng)
        if kind == "NEW_PHONE":
            return {**member, "phone": mobile(rng)}
        if kind in ("TRANSFERRED_OUT", "DECEASED", "EXPELLED"):
            return {**member, "status": kind}
        province = str(member["province_code"]) if kind == "MOVE_COMMUNE" else self._provinces.draw(rng)
        commune = self._communes[province].draw(rng)
        if commune == member["commune_code"]:
            return None  # drew the commune it is in: no transfer this time
        # Join a cell that exists (read only): the stream of new members must not depend on the changes.
        cell = rng.randint(1, max(1, self._cells.count(self._slots[commune])))
        return {
            **member,
            "province_code": province,
            "commune_code": commune,
            "party_cell": f"CB-{commune}-{cell:03d}",
        }
