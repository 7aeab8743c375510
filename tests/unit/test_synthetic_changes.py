"""Later events in synthetic streams: members who move, are made official or leave; constant memory."""

from __future__ import annotations

import random
import re
import tracemalloc
from collections import Counter
from datetime import date
from typing import Any

import pytest

from tooling.synthetic import generate_party_members, geography
from tooling.synthetic.changes import RESERVOIR_SIZE, with_changes

IDENTITY = ("full_name", "gender", "date_of_birth", "national_id", "ethnicity", "admission_date")


@pytest.fixture(scope="module")
def stream() -> list[dict[str, Any]]:
    return list(generate_party_members(20_000, seed=31, changes=0.25))


def test_changes_follow_the_members_they_change(stream: list[dict[str, Any]]) -> None:
    latest: dict[str, dict[str, Any]] = {}
    kinds: Counter[str] = Counter()
    for record in stream:
        before = latest.get(record["member_id"])
        latest[record["member_id"]] = record
        if before is None:
            continue
        assert before["status"] in ("PROBATIONARY", "OFFICIAL"), "members who left change no more"
        assert all(record[f] == before[f] for f in IDENTITY)
        changed = {k for k in record if record[k] != before[k]}
        assert changed
        if record["status"] != before["status"]:
            kinds[record["status"]] += 1
            if record["status"] == "OFFICIAL":
                admitted, official = date.fromisoformat(record["admission_date"]), record["official_date"]
                assert before["status"] == "PROBATIONARY" and official is not None
                assert date.fromisoformat(official).year == admitted.year + 1
            else:
                assert changed == {"status"}
        elif "phone" in changed:
            kinds["phone"] += 1
            assert changed == {"phone"} and re.fullmatch(r"0[35789]\d{8}", record["phone"])
        else:
            kinds["moved"] += 1
            assert changed <= {"province_code", "commune_code", "party_cell"}
            assert geography.province_of(record["commune_code"]).code == record["province_code"]
            assert re.fullmatch(rf"CB-{record['commune_code']}-\d{{3,}}", record["party_cell"])
    total = sum(kinds.values())
    assert 0.2 * 20_000 < total < 0.3 * 20_000
    assert kinds["moved"] / total > 0.5  # transfers are the commonest change
    assert kinds["OFFICIAL"] > 0 and kinds["DECEASED"] > 0 and kinds["TRANSFERRED_OUT"] > 0
    assert kinds["phone"] > 0 and kinds["EXPELLED"] < kinds["DECEASED"]


def test_most_transfers_stay_in_the_province(stream: list[dict[str, Any]]) -> None:
    latest: dict[str, dict[str, Any]] = {}
    same = other = 0
    for record in stream:
        before = latest.get(record["member_id"])
        latest[record["member_id"]] = record
        if before is not None and record["commune_code"] != before["commune_code"]:
            if record["province_code"] == before["province_code"]:
                same += 1
            else:
                other += 1
    assert same > 2 * other > 0


def test_old_members_change_as_late_as_new_ones(stream: list[dict[str, Any]]) -> None:
    seen: set[str] = set()
    late_changes_of_early_members = 0
    for position, record in enumerate(stream):
        if record["member_id"] in seen and position > 0.9 * len(stream):
            late_changes_of_early_members += int(record["member_id"][2:]) <= 2_000
        seen.add(record["member_id"])
    assert late_changes_of_early_members > 10


def test_memory_stays_bounded_with_changes() -> None:
    def peak(count: int) -> int:
        tracemalloc.start()
        try:
            for _ in generate_party_members(count, seed=8, changes=0.5):
                pass
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    peak(10)  # geography and Faker outside the measurement
    reservoir_full, four_times_more = peak(2 * RESERVOIR_SIZE), peak(8 * RESERVOIR_SIZE)
    assert four_times_more < reservoir_full + 1_500_000
    assert four_times_more < 20_000_000


def test_reservoir_draws_every_earlier_record_alike() -> None:
    rng = random.Random(1)
    records = ({"k": i, "n": 0} for i in range(50_000))
    hits: Counter[int] = Counter()

    def change(_rng: random.Random, r: dict[str, Any]) -> dict[str, Any]:
        hits[r["k"] // 10_000] += 1
        return {**r, "n": r["n"] + 1}

    out = list(with_changes(records, 0.5, rng, change, reservoir_size=1_000))
    assert len(out) > 50_000 + 0.45 * 50_000
    # Changes made after record t pick uniformly among 0..t: the first block is hit most, the last least.
    assert hits[0] > hits[1] > hits[2] > hits[3] > hits[4] > 0
