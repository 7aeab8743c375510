"""Synthetic ``party-members``: determinism, schema validity, real geography, plausibility, laziness, CLI."""

from __future__ import annotations

import itertools
import json
import random
import re
import time
import tracemalloc
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import fastavro
import pytest
import typer
from faker.providers.person.vi_VN import Provider as VietnamesePersons
from fastavro.validation import validate
from typer.testing import CliRunner

from services.cli import generate_commands
from tooling.synthetic import generate_party_members, geography, write_jsonl
from tooling.synthetic.party_members import GENERATION_DATE

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "party-members.avsc"
STATUSES = {"PROBATIONARY", "OFFICIAL", "TRANSFERRED_OUT", "DECEASED", "EXPELLED"}


@pytest.fixture(scope="module")
def sample() -> list[dict[str, Any]]:
    """20,000 records: enough to reach every province and to check shares within loose bounds."""
    return list(generate_party_members(20_000, seed=2026))


@pytest.fixture(scope="module")
def parsed_schema() -> Any:
    return fastavro.parse_schema(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))


def _date_fields(schema: dict[str, Any]) -> set[str]:
    def is_date(t: Any) -> bool:
        if isinstance(t, list):
            return any(is_date(branch) for branch in t)
        return isinstance(t, dict) and t.get("logicalType") == "date"

    return {f["name"] for f in schema["fields"] if is_date(f["type"])}


def _eighteenth_birthday(born: date) -> date:
    try:
        return born.replace(year=born.year + 18)
    except ValueError:
        return date(born.year + 18, 3, 1)


def _age(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


# --- Geography ------------------------------------------------------------------------------------------


def test_geography_has_the_2025_structure() -> None:
    provinces = geography.provinces()
    communes = geography.communes()
    assert len(provinces) == 34
    assert len(communes) == 3_321
    assert len({p.code for p in provinces}) == 34
    assert len({c.code for c in communes}) == 3_321
    assert all(re.fullmatch(r"\d{2}", p.code) for p in provinces)
    assert all(re.fullmatch(r"\d{5}", c.code) for c in communes)
    assert {c.kind for c in communes} == {"phường", "xã", "đặc khu"}
    assert geography.province("01").name == "Thành phố Hà Nội"
    assert geography.province_of("00070").code == "01"  # Phường Hoàn Kiếm
    assert all(geography.province_of(c.code).code == c.province_code for c in communes)


def test_geography_is_loaded_once() -> None:
    assert geography.communes() is geography.communes()


# --- Determinism and laziness ---------------------------------------------------------------------------


def test_same_seed_gives_identical_records_whatever_the_global_state() -> None:
    random.seed(1)
    first = list(generate_party_members(500, seed=42))
    random.seed(999)
    other = generate_party_members(500, seed=7)
    second = generate_party_members(500, seed=42)
    # Interleaving with another generator and drawing from the global random must not matter.
    interleaved = []
    for record, _ in zip(second, other, strict=True):
        random.random()
        interleaved.append(record)
    assert interleaved == first


def test_different_seeds_give_different_records() -> None:
    a = list(generate_party_members(200, seed=1))
    b = list(generate_party_members(200, seed=2))
    assert [r["member_id"] for r in a] == [r["member_id"] for r in b]
    assert sum(x != y for x, y in zip(a, b, strict=True)) == 200


def test_a_smaller_count_is_a_prefix_of_a_larger_one() -> None:
    assert list(generate_party_members(50, seed=3)) == list(generate_party_members(400, seed=3))[:50]


def test_generator_is_lazy() -> None:
    started = time.perf_counter()
    records = generate_party_members(10**9, seed=5)
    assert isinstance(records, Iterator)
    head = list(itertools.islice(records, 10))
    assert len(head) == 10
    assert time.perf_counter() - started < 10  # mostly Faker's start-up; a billion records would take hours


def test_memory_does_not_grow_with_count() -> None:
    def peak(count: int) -> int:
        tracemalloc.start()
        try:
            for _ in generate_party_members(count, seed=8):
                pass
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    peak(10)  # load the geography and Faker outside the measurement
    small, large = peak(2_000), peak(20_000)
    assert large < small + 1_500_000
    assert large < 10_000_000


def test_start_index_continues_ids_with_new_people() -> None:
    first = list(generate_party_members(300, seed=11))
    more = list(generate_party_members(300, seed=11, start_index=300))
    ids = [r["member_id"] for r in first + more]
    assert ids == [f"PM{i:010d}" for i in range(1, 601)]
    assert {r["national_id"] for r in first}.isdisjoint(r["national_id"] for r in more)
    assert [r["full_name"] for r in first] != [r["full_name"] for r in more]


def test_arguments_are_checked_on_the_call() -> None:
    with pytest.raises(ValueError):
        generate_party_members(-1, seed=0)
    with pytest.raises(ValueError):
        generate_party_members(1, seed=0, start_index=-1)
    with pytest.raises(ValueError):
        generate_party_members(2, seed=0, start_index=10**10 - 2)
    assert list(generate_party_members(0, seed=0)) == []
    assert [r["member_id"] for r in generate_party_members(1, seed=0, start_index=10**10 - 2)] == [
        "PM9999999999"
    ]


# --- Validity -------------------------------------------------------------------------------------------


def test_every_record_validates_against_the_avro_schema(
    sample: list[dict[str, Any]], parsed_schema: Any
) -> None:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    dates = _date_fields(schema)
    assert dates == {"date_of_birth", "admission_date", "official_date"}
    for record in sample[:5_000]:
        assert list(record) == [f["name"] for f in schema["fields"]]
        avro_record = {
            k: date.fromisoformat(v) if k in dates and v is not None else v for k, v in record.items()
        }
        assert validate(avro_record, parsed_schema, raise_errors=True)


def test_member_ids_are_unique_and_well_formed(sample: list[dict[str, Any]]) -> None:
    ids = [r["member_id"] for r in sample]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"PM\d{10}", i) for i in ids)


def test_places_are_real_and_consistent(sample: list[dict[str, Any]]) -> None:
    province_codes = {p.code for p in geography.provinces()}
    for r in sample:
        assert r["province_code"] in province_codes
        assert geography.province_of(r["commune_code"]).code == r["province_code"]


def test_twenty_thousand_records_cover_all_provinces(sample: list[dict[str, Any]]) -> None:
    assert {r["province_code"] for r in sample} == {p.code for p in geography.provinces()}


def test_urban_wards_are_denser_than_rural_communes(sample: list[dict[str, Any]]) -> None:
    kinds = {c.code: c.kind for c in geography.communes()}
    per_kind = Counter(kinds[r["commune_code"]] for r in sample)
    totals = Counter(kinds.values())
    assert per_kind["phường"] / totals["phường"] > 2 * per_kind["xã"] / totals["xã"]


def test_national_ids_follow_the_cccd_layout(sample: list[dict[str, Any]]) -> None:
    province_codes = {p.code for p in geography.provinces()}
    for r in sample:
        nid, born = r["national_id"], date.fromisoformat(r["date_of_birth"])
        assert re.fullmatch(r"\d{12}", nid)
        assert nid[0] == "0" and nid[1:3] in province_codes
        century = 0 if born.year < 2000 else 2
        assert int(nid[3]) == century + (r["gender"] == "FEMALE")
        assert nid[4:6] == f"{born.year % 100:02d}"
    # Most members are registered in the province they live in.
    assert sum(r["national_id"][1:3] == r["province_code"] for r in sample) > 0.7 * len(sample)
    assert len({r["national_id"] for r in sample}) == len(sample)


def test_phones_are_vietnamese_mobiles_or_missing(sample: list[dict[str, Any]]) -> None:
    phones = [r["phone"] for r in sample]
    assert 0.03 < phones.count(None) / len(phones) < 0.07
    assert all(re.fullmatch(r"0[35789]\d{8}", p) for p in phones if p is not None)


def test_ages_are_adult_and_mostly_middle_aged(sample: list[dict[str, Any]]) -> None:
    ages = [_age(date.fromisoformat(r["date_of_birth"]), GENERATION_DATE) for r in sample]
    assert min(ages) >= 18 and max(ages) <= 95
    middle = sum(30 <= a < 65 for a in ages) / len(ages)
    assert middle > 0.6
    assert sum(a < 30 for a in ages) > 0.05 * len(ages) and sum(a >= 65 for a in ages) > 0.02 * len(ages)


def test_admission_and_official_dates_follow_the_rules(sample: list[dict[str, Any]]) -> None:
    year_before = GENERATION_DATE.replace(year=GENERATION_DATE.year - 1)
    for r in sample:
        born = date.fromisoformat(r["date_of_birth"])
        admitted = date.fromisoformat(r["admission_date"])
        assert _eighteenth_birthday(born) < admitted < GENERATION_DATE
        assert r["status"] in STATUSES
        if r["status"] == "PROBATIONARY":
            assert r["official_date"] is None
            assert admitted > year_before
        else:
            assert r["official_date"] is not None
            official = date.fromisoformat(r["official_date"])
            assert (official.year - admitted.year, official.month) == (1, admitted.month)
            assert official.day == admitted.day or (admitted.month, admitted.day, official.day) == (2, 29, 28)
            assert official <= GENERATION_DATE


def test_status_shares(sample: list[dict[str, Any]]) -> None:
    shares = {s: n / len(sample) for s, n in Counter(r["status"] for r in sample).items()}
    assert set(shares) == STATUSES
    assert 0.065 < shares["PROBATIONARY"] < 0.095
    assert shares["TRANSFERRED_OUT"] + shares["DECEASED"] + shares["EXPELLED"] < 0.02
    assert shares["OFFICIAL"] > 0.88


def test_ethnicity_distribution(sample: list[dict[str, Any]]) -> None:
    counts = Counter(r["ethnicity"] for r in sample)
    assert 0.83 < counts["Kinh"] / len(sample) < 0.89
    assert {"Tày", "Thái", "Mường", "Khmer", "Hoa", "Nùng", "Mông", "Dao", "Gia Rai", "Ê Đê"} <= set(counts)
    # Minorities live mostly in their home regions: Khmer in the Mekong delta, not in Hà Nội.
    khmer = Counter(r["province_code"] for r in sample if r["ethnicity"] == "Khmer")
    assert khmer["86"] + khmer["92"] + khmer["91"] + khmer["96"] > 0.6 * sum(khmer.values())


def test_names_are_vietnamese_and_match_gender(sample: list[dict[str, Any]]) -> None:
    male_given = set(VietnamesePersons.first_names_male) | set(VietnamesePersons.first_names_unisex)
    female_given = set(VietnamesePersons.first_names_female) | set(VietnamesePersons.first_names_unisex)
    for r in sample:
        parts = r["full_name"].split(" ")
        assert 3 <= len(parts) <= 4
        if r["gender"] == "MALE":
            assert parts[-1] in male_given and "Thị" not in parts
        else:
            assert parts[-1] in female_given and "Văn" not in parts
    genders = Counter(r["gender"] for r in sample)
    assert 0.25 < genders["FEMALE"] / len(sample) < 0.5
    assert Counter(r["full_name"].split(" ")[0] for r in sample).most_common(1)[0][0] == "Nguyễn"


def test_party_cells_group_10_to_40_members_of_one_commune() -> None:
    records = generate_party_members(60_000, seed=4)
    sizes: dict[str, Counter[int]] = defaultdict(Counter)
    for r in records:
        commune_code, cell = str(r["commune_code"]), str(r["party_cell"])
        match = re.fullmatch(r"CB-(\d{5})-(\d{3,})", cell)
        assert match and match.group(1) == commune_code
        sizes[commune_code][int(match.group(2))] += 1
    full_cells = 0
    for cells in sizes.values():
        assert sorted(cells) == list(range(1, len(cells) + 1))
        for number, size in cells.items():
            assert size <= 40
            if number < len(cells):  # only a commune's last cell may still be filling up
                assert size >= 10
                full_cells += 1
    assert full_cells > 500


# --- JSON Lines -----------------------------------------------------------------------------------------


def test_write_jsonl_to_a_file(tmp_path: Path) -> None:
    records = list(generate_party_members(2_500, seed=9))
    path = tmp_path / "members.jsonl"
    assert write_jsonl(iter(records), path) == 2_500
    raw = path.read_bytes()
    assert raw.endswith(b"\n") and raw.count(b"\n") == 2_500
    assert "Nguyễn".encode() in raw and b"\\u" not in raw
    assert raw.split(b"\n")[0] == json.dumps(records[0], ensure_ascii=False, separators=(",", ":")).encode()
    assert [json.loads(line) for line in raw.decode("utf-8").splitlines()] == records


def test_write_jsonl_to_stdout(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    records = list(generate_party_members(3, seed=9))
    assert write_jsonl(records, None) == 3
    out = capsysbinary.readouterr().out
    assert [json.loads(line) for line in out.decode("utf-8").splitlines()] == records


# --- CLI ------------------------------------------------------------------------------------------------


@pytest.fixture()
def cli() -> typer.Typer:
    root = typer.Typer()
    root.add_typer(generate_commands.app, name="generate")

    @root.command()
    def version() -> None:  # a second command, so "generate" stays a sub-command as in sharehub
        pass

    return root


def _invoke(cli: typer.Typer, *args: str) -> Any:
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})


def test_cli_writes_a_deterministic_file(cli: typer.Typer, tmp_path: Path) -> None:
    out = tmp_path / "pm.jsonl"
    result = _invoke(cli, "generate", "party-members", "--count", "25", "--seed", "3", "--output", str(out))
    assert result.exit_code == 0, result.output
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(x) for x in lines] == list(generate_party_members(25, seed=3))


def test_cli_writes_to_stdout(cli: typer.Typer) -> None:
    result = _invoke(cli, "generate", "party-members", "--count", "4", "--seed", "3")
    assert result.exit_code == 0, result.output
    assert [json.loads(x) for x in result.stdout.splitlines()] == list(generate_party_members(4, seed=3))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["generate", "party-memberz", "--count", "5"],
            "known datasets: citizen-feedback, documents, handbook-activities, handbook-attendance, "
            "party-members, resolution-tasks",
        ),
        (["generate", "party-members", "--count", "0"], "--count"),
        (["generate", "party-members"], "--count"),
        (["generate", "party-members", "--count", "2", "--output", "/no/such/dir/x.jsonl"], "does not exist"),
    ],
)
def test_cli_rejects_bad_arguments_with_exit_code_2(cli: typer.Typer, args: list[str], message: str) -> None:
    result = _invoke(cli, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
