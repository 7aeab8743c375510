"""The synthetic datasets beyond party-members: schema conventions, validity, determinism, realism.

Every record, initial or later change, must pass ``sharehub.avro.record_from_json``: the hub's own edge
validator, so whatever the generators write, ``sharehub publish`` accepts.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from services.cli import generate_commands
from sharehub.avro import CLASSIFICATIONS, datum_to_json, load_schema, record_from_json
from tooling.synthetic import (
    generate_citizen_feedback,
    generate_documents,
    generate_handbook_activities,
    generate_handbook_attendance,
    generate_party_members,
    generate_resolution_tasks,
    geography,
)
from tooling.synthetic.documents import CLASSIFICATION_SHARES
from tooling.synthetic.handbook_activities import RATING_BANDS
from tooling.synthetic.topics import RESOLUTIONS

REPO = Path(__file__).resolve().parents[2]
Generator = Callable[..., Iterator[dict[str, Any]]]
#: dataset -> (generator, key field, a count typical of the real system).
DATASETS: dict[str, tuple[Generator, str, int]] = {
    "party-members": (generate_party_members, "member_id", 3_000),
    "documents": (generate_documents, "document_id", 3_000),
    "resolution-tasks": (generate_resolution_tasks, "task_id", 1_800),
    "handbook-activities": (generate_handbook_activities, "activity_id", 3_000),
    "handbook-attendance": (generate_handbook_attendance, "attendance_id", 3_000),
    "citizen-feedback": (generate_citizen_feedback, "feedback_id", 357),
}
NEW = [d for d in DATASETS if d != "party-members"]


def split(records: list[dict[str, Any]], key: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(first record of each key, every later one), in stream order."""
    seen: set[str] = set()
    initial, changes = [], []
    for r in records:
        (changes if r[key] in seen else initial).append(r)
        seen.add(r[key])
    return initial, changes


_cache: dict[tuple[str, float], list[dict[str, Any]]] = {}


def sample(dataset: str, changes: float = 0.5) -> list[dict[str, Any]]:
    if (dataset, changes) not in _cache:
        generator, _, count = DATASETS[dataset]
        _cache[dataset, changes] = list(generator(count, 7, changes=changes))
    return _cache[dataset, changes]


# --- Schemas --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_schema_follows_the_conventions(dataset: str) -> None:
    raw = json.loads((REPO / "schemas" / f"{dataset}.avsc").read_text(encoding="utf-8"))
    assert raw["type"] == "record" and raw["doc"] and raw["namespace"].startswith("vn.sharehub.datasets.")
    for field in raw["fields"]:
        assert field.get("classification") in CLASSIFICATIONS, field["name"]
    _, key, _ = DATASETS[dataset]
    assert next(f for f in raw["fields"] if f["name"] == key)["type"] == "string"
    assert f"Key: {key}" in raw["doc"]
    assert any(f.get("personal") for f in raw["fields"]), "every dataset names someone"


def test_personal_fields_are_the_ones_that_name_people() -> None:
    personal = {d: {n for n, f in load_schema(d).fields.items() if f.personal} for d in DATASETS}
    assert personal["documents"] == {"signer_name"}
    assert personal["resolution-tasks"] == {"responsible_officer"}
    assert personal["handbook-activities"] == {"chaired_by"}
    assert personal["handbook-attendance"] == {"full_name"}
    assert personal["citizen-feedback"] == {"submitter_name", "phone", "email", "address"}


def test_demo_governance_declares_each_dataset_with_its_key_and_highest_classification() -> None:
    spec = yaml.safe_load((REPO / "demo" / "hub.yaml").read_text(encoding="utf-8"))
    declared = {d["id"]: d for d in spec["datasets"]}
    owners = {
        "documents": "cpo",
        "resolution-tasks": "cpo",
        "handbook-activities": "coc",
        "handbook-attendance": "coc",
        "citizen-feedback": "go",
    }
    for dataset, owner in owners.items():
        ds = declared[dataset]
        assert (ds["owner"], ds["key_field"], ds["partitions"]) == (owner, DATASETS[dataset][1], 3)
        levels = [f.classification for f in load_schema(dataset).fields.values()]
        assert ds["classification"] == max(levels, key=CLASSIFICATIONS.index)
        assert any(a["dataset"] == dataset for a in spec["agreements"])


# --- Validity, keys, determinism, streaming -------------------------------------------------------------


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_every_record_and_change_passes_the_hubs_validator(dataset: str) -> None:
    schema = load_schema(dataset)
    records = sample(dataset)
    for record in records:
        assert list(record) == list(schema.fields)
        record_from_json(schema, record)
    _, changes = split(records, DATASETS[dataset][1])
    assert changes, "the sample has later events"


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_a_schema_turns_its_records_into_json_as_the_generic_conversion_does(dataset: str) -> None:
    """The projection converts only the fields that need it (dates, times, bytes): the result is the same."""
    schema = load_schema(dataset)
    converted = 0
    for record in sample(dataset)[:300]:
        decoded = schema.decode(schema.encode(record_from_json(schema, record)))
        as_json = schema.to_json(decoded)
        assert as_json == datum_to_json(decoded)
        json.dumps(as_json)  # JSON values only
        converted += as_json != decoded
    assert converted, "every dataset has a date or a time to convert"


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_keys_are_unique_and_changes_only_revisit_earlier_keys(dataset: str) -> None:
    generator, key, count = DATASETS[dataset]
    plain = list(generator(count, 7))
    assert len({r[key] for r in plain}) == len(plain) == count
    initial, changes = split(sample(dataset), key)
    assert initial == plain  # changes are interleaved without disturbing the records themselves
    assert 0 < len(changes) <= 0.5 * count * 1.3


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_same_seed_same_stream_other_seed_other_stream(dataset: str) -> None:
    generator, _, _ = DATASETS[dataset]
    first = list(generator(200, 3, changes=1.0))
    assert first == list(generator(200, 3, changes=1.0))
    assert first != list(generator(200, 4, changes=1.0))
    assert list(generator(50, 3)) == list(generator(200, 3))[:50]


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_streams_with_changes_are_lazy(dataset: str) -> None:
    generator, _, _ = DATASETS[dataset]
    started = time.perf_counter()
    head = list(itertools.islice(generator(9_999_999, 1, changes=2.0), 1_000))
    assert len(head) == 1_000
    assert time.perf_counter() - started < 15  # ten million records would take many minutes


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_arguments_are_checked_on_the_call(dataset: str) -> None:
    generator, _, _ = DATASETS[dataset]
    for bad in (
        {"count": -1, "seed": 0},
        {"count": 1, "seed": 0, "changes": -0.1},
        {"count": 1, "seed": 0, "changes": 11},
    ):
        with pytest.raises(ValueError):
            generator(**bad)
    assert list(generator(0, 0, changes=1.0)) == []


# --- Realism --------------------------------------------------------------------------------------------


def _shares(values: list[Any]) -> dict[Any, float]:
    return {k: n / len(values) for k, n in Counter(values).items()}


def test_documents_secrecy_levels_types_and_dates() -> None:
    docs, changes = split(list(generate_documents(20_000, 11, changes=0.5)), "document_id")
    shares = _shares([d["document_classification"] for d in docs])
    for level, percent in CLASSIFICATION_SHARES.items():
        assert abs(shares[level] - percent / 100) < 0.015, level
    types = _shares([d["document_type"] for d in docs])
    assert types["OFFICIAL_LETTER"] > 0.3 and types["RESOLUTION"] < 0.05
    numbers = [d["document_number"] for d in docs]
    assert all(re.fullmatch(r"\d+-[^\s/]+/[^\s/]+|\d+/[^\s/]+-[^\s/]+", n) for n in numbers)
    for d in docs:
        issued, received = date.fromisoformat(d["issued_date"]), date.fromisoformat(d["received_date"])
        assert date(2024, 1, 1) <= issued <= received <= date.fromisoformat(d["status_date"])
        assert d["sending_agency"] not in d["receiving_agencies"]
        assert 1 <= len(d["receiving_agencies"]) <= 6
    order = ["RECEIVED", "PROCESSING", "COMPLETED", "ARCHIVED"]
    latest = {d["document_id"]: d for d in docs}
    for c in changes:
        before = latest[c["document_id"]]
        assert order.index(c["status"]) == order.index(before["status"]) + 1
        assert c["status_date"] > before["status_date"]
        latest[c["document_id"]] = c


def test_documents_from_provinces_name_their_province() -> None:
    committees = {
        p.code: p.name.removeprefix("Thành phố ").removeprefix("Tỉnh ") for p in geography.provinces()
    }
    for d in generate_documents(3_000, 2):
        if d["sending_province_code"] is not None:
            assert d["sending_agency"].endswith(committees[d["sending_province_code"]])
            assert d["sending_agency"].startswith(("Tỉnh ủy", "Thành ủy"))
        else:
            assert not d["sending_agency"].startswith(("Tỉnh ủy", "Thành ủy"))


def test_resolution_tasks_spread_over_the_seven_resolutions_and_only_progress() -> None:
    tasks, reports = split(list(generate_resolution_tasks(1_800, 5, changes=3.0)), "task_id")
    per_resolution = Counter(t["resolution_number"] for t in tasks)
    assert set(per_resolution) == {number for number, _, _ in RESOLUTIONS} and len(per_resolution) == 7
    assert per_resolution.most_common(1)[0][0] == "57-NQ/TW"
    assert min(per_resolution.values()) > 80
    assert len(reports) > 1_800  # several progress reports per task
    latest = {t["task_id"]: t for t in tasks}
    for r in reports:
        before = latest[r["task_id"]]
        assert before["status"] != "COMPLETED"
        assert r["progress_percent"] > before["progress_percent"]
        assert r["last_report_date"] > (before["last_report_date"] or "")
        assert (r["status"] == "COMPLETED") == (r["progress_percent"] == 100)
        latest[r["task_id"]] = r
    for t in tasks:
        assert t["assigned_date"] < t["deadline"]
        assert 0 <= t["progress_percent"] <= 100
        if t["province_code"] is not None:
            assert geography.province(t["province_code"]).code == t["province_code"]


def test_handbook_meetings_are_plausible_and_in_real_communes() -> None:
    meetings, later = split(list(generate_handbook_activities(5_000, 3, changes=0.5)), "activity_id")
    for m in meetings + later:
        assert geography.province_of(m["commune_code"]).code == m["province_code"]
        assert m["party_cell"].startswith(f"CB-{m['commune_code']}-")
        assert 10 <= m["members_total"] <= 40
        assert m["members_present"] + m["members_excused"] <= m["members_total"]
        if m["votes_for"] is not None:
            assert m["votes_for"] + m["votes_against"] + m["votes_abstain"] == m["members_present"]
        if m["score"] is not None:
            band = next(name for name, lowest in RATING_BANDS if m["score"] >= lowest)
            assert m["quality_rating"] == band
    attendance = sum(m["members_present"] for m in meetings) / sum(m["members_total"] for m in meetings)
    assert 0.85 < attendance < 0.97
    assert 0.6 < _shares([m["activity_type"] for m in meetings])["REGULAR"] < 0.8
    assert 0.5 < sum(m["score"] is not None for m in meetings) / len(meetings) < 0.7
    assert {m["province_code"] for m in meetings} == {p.code for p in geography.provinces()}


def test_citizen_feedback_identities_and_places() -> None:
    items, handling = split(list(generate_citizen_feedback(3_000, 9, changes=1.0)), "feedback_id")
    assert 0.75 < _shares([i["submitter_type"] for i in items])["CITIZEN"] < 0.85
    for i in items:
        assert geography.province_of(i["commune_code"]).code == i["province_code"]
        assert geography.commune(i["commune_code"]).name in i["address"]
        assert datetime.fromisoformat(i["submitted_at"]).utcoffset() is not None
        if i["phone"] is not None:
            assert re.fullmatch(r"0[35789]\d{8}", i["phone"])
        if i["email"] is not None:
            assert re.fullmatch(r"[a-z]+\.[a-z]+\d+@[a-z]+\.com", i["email"])
        business = i["submitter_type"] == "BUSINESS"
        assert (i["tax_code"] is not None) == business == (i["business_name"] is not None)
    order = ["RECEIVED", "PROCESSING", "ANSWERED", "CLOSED"]
    latest = {i["feedback_id"]: i for i in items}
    for h in handling:
        assert order.index(h["status"]) == order.index(latest[h["feedback_id"]]["status"]) + 1
        latest[h["feedback_id"]] = h


# --- CLI ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", NEW)
def test_cli_generates_each_dataset(dataset: str, tmp_path: Path) -> None:
    root = typer.Typer()
    root.add_typer(generate_commands.app, name="generate")
    root.command()(lambda: None)
    out = tmp_path / "out.jsonl"
    args = ["generate", dataset, "--count", "30", "--seed", "2", "--changes", "0.5", "--output", str(out)]
    result = CliRunner().invoke(root, args)
    assert result.exit_code == 0, result.output
    generator, _, _ = DATASETS[dataset]
    assert [json.loads(x) for x in out.read_text("utf-8").splitlines()] == list(generator(30, 2, changes=0.5))


def test_resolution_tasks_come_with_progress_reports_by_default() -> None:
    _, default_rate = generate_commands.GENERATORS["resolution-tasks"]
    assert default_rate > 0
    assert all(rate == 0 for d, (_, rate) in generate_commands.GENERATORS.items() if d != "resolution-tasks")


def test_attendance_is_of_the_party_members_of_the_same_seed_at_their_cells_meetings() -> None:
    records = list(generate_handbook_attendance(12 * 400, 5))
    members = {m["member_id"]: m for m in generate_party_members(400, 5)}
    meetings: dict[tuple[str, int], set[tuple[str, str]]] = {}
    for r in records:
        member = members[r["member_id"]]
        assert [r[f] for f in ("full_name", "party_cell", "province_code", "commune_code")] == [
            member[f] for f in ("full_name", "party_cell", "province_code", "commune_code")
        ]
        assert r["attendance_id"] == f"{r['activity_id']}-{r['member_id']}"
        held = date.fromisoformat(r["meeting_date"])
        meetings.setdefault((r["party_cell"], held.month), set()).add((r["activity_id"], r["meeting_date"]))
        if r["attendance"] != "PRESENT":
            assert r["vote"] is None and r["opinions_raised"] == 0
        assert (r["activity_score"] == 0.0) == (r["attendance"] == "ABSENT")
        assert r["activity_score"] is None or 0.0 <= r["activity_score"] <= 10.0
    assert len(records) == 12 * len(members)
    assert all(len(same) == 1 for same in meetings.values()), "a cell's members share each month's meeting"
    assert set(Counter(cell for cell, _ in meetings).values()) == {12}, "each cell meets every month"
    shares = _shares([r["attendance"] for r in records])
    assert 0.85 < shares["PRESENT"] < 0.95 and shares["ABSENT"] < 0.06
    voted = [r["vote"] for r in records if r["vote"] is not None]
    assert 0.6 < len(voted) / len(records) < 0.85 and _shares(voted)["FOR"] > 0.85
