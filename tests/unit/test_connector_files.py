"""The file side of the connectors, without a broker: CSV cells converted by the dataset's schema, a file's
source id and line count, the journal's lock and durability, rejects written once, health from the journal."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from connectors.csv_source import read_csv
from connectors.file_drop import FileFacts, RejectsFile
from connectors.health import site_health
from connectors.journal import Journal, SourceState, journal_path, read_journal
from connectors.jsonl_source import BadLine, Line
from sharehub.avro import RecordSchema, load_schema, record_from_json
from sharehub.errors import ConfigurationError, RecordValidationError

HEADER = "member_id,full_name,gender,date_of_birth,national_id,phone,ethnicity,province_code,commune_code,"
HEADER += "party_cell,admission_date,official_date,status\n"
ROW = "PM1,Lê Văn A,MALE,1980-01-02,001080000001,,Kinh,01,00001,CB-1,2005-03-04,,OFFICIAL\n"


@pytest.fixture
def schema() -> RecordSchema:
    return load_schema("party-members")


def test_csv_rows_become_records_of_the_schema_and_bad_rows_are_reasons_with_line_numbers(
    tmp_path: Path, schema: RecordSchema
) -> None:
    path = tmp_path / "m.csv"
    path.write_text(HEADER + ROW + "\n" + "PM2,x\n" + ROW.replace("MALE", "OTHER"), encoding="utf-8")
    lines = list(read_csv(path, schema))
    assert isinstance(lines[0], Line) and lines[0].number == 2
    assert lines[0].record["phone"] is None and lines[0].record["official_date"] is None
    assert lines[1] == BadLine(4, "2 cells where the header names 13 columns")
    assert isinstance(lines[2], Line) and lines[2].number == 5
    with pytest.raises(RecordValidationError, match="gender"):  # the schema's own check names the field
        record_from_json(schema, lines[2].record)


def test_typed_cells_that_do_not_convert_are_rejected_not_raised(tmp_path: Path) -> None:
    schema = RecordSchema.from_json(
        "t",
        {"type": "record", "name": "T", "fields": [
            {"name": "n", "type": "long"}, {"name": "ok", "type": "boolean"},
            {"name": "x", "type": ["null", "double"]},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
        ]},
    )  # fmt: skip
    path = tmp_path / "t.csv"
    path.write_text(
        'n,ok,x,tags\n7,yes,,"[""a""]"\nseven,no,1.5,[]\n1,maybe,2,[]\n1,0,2,[\n', encoding="utf-8"
    )
    lines = list(read_csv(path, schema))
    assert lines[0] == Line(2, {"n": 7, "ok": True, "x": None, "tags": ["a"]})
    assert lines[1] == BadLine(3, "n: 'seven' is not an integer")
    assert lines[2] == BadLine(4, "ok: 'maybe' is not true or false")
    assert isinstance(lines[3], BadLine) and lines[3].reason.startswith("tags: not valid JSON")


def test_a_files_source_is_its_content_and_its_lines_are_counted(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_bytes(b"{}\n{}\n{}")
    b.write_bytes(b"{}\n{}\n{}")
    assert FileFacts.of(a) == FileFacts.of(b) and FileFacts.of(a).lines == 3
    b.write_bytes(b"{}\n{}\n{}\n")
    assert FileFacts.of(b).source != FileFacts.of(a).source and FileFacts.of(b).lines == 3


def test_the_journal_is_held_by_one_connector_and_survives_it(tmp_path: Path) -> None:
    with Journal(tmp_path, "ds") as journal:
        with pytest.raises(ConfigurationError, match="another connector of 'ds' is running"):
            Journal(tmp_path, "ds")
        journal.put("file:sha256:ab", SourceState(name="a.csv", total=10, acked=4, marks={0: 7}, rejected=1))
    again = Journal(tmp_path, "ds")
    state = again.get("file:sha256:ab")
    assert state is not None and state.acked == 4 and state.marks == {0: 7}
    again.close()
    (health,) = site_health(tmp_path)
    assert (health.name, health.acknowledged, health.pending, health.rejected) == ("a.csv", 4, 6, 1)


def test_an_unreadable_journal_is_a_clear_error(tmp_path: Path) -> None:
    path = journal_path(tmp_path, "ds")
    path.parent.mkdir()
    path.write_text("{not a database")
    with pytest.raises(ConfigurationError, match="unreadable"):
        read_journal(path)
    with pytest.raises(ConfigurationError, match="unreadable"):
        Journal(tmp_path, "ds").close()


def test_rejects_are_written_once_per_line_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "rejects" / "a.csv.rejects.jsonl"
    RejectsFile(path).write([BadLine(3, "bad"), BadLine(9, "worse")])
    RejectsFile(path).write([BadLine(9, "worse"), BadLine(12, "worst")])
    assert path.read_text().splitlines() == [
        '{"line": 3, "reason": "bad"}', '{"line": 9, "reason": "worse"}', '{"line": 12, "reason": "worst"}',
    ]  # fmt: skip


def test_a_journal_kept_as_json_moves_into_the_database_once(tmp_path: Path) -> None:
    old = tmp_path / "connectors" / "ds.journal.json"
    old.parent.mkdir()
    kept = SourceState(name="a.csv", total=10, acked=10, published=9, rejected=1, done=True)
    old.write_text(json.dumps({"sources": {"file:sha256:ab": dataclasses.asdict(kept)}}))
    with Journal(tmp_path, "ds") as journal:
        assert journal.get("file:sha256:ab") == kept
        journal.put("file:sha256:cd", SourceState(name="b.csv", total=3))
    assert not old.exists()
    assert set(read_journal(journal_path(tmp_path, "ds"))) == {"file:sha256:ab", "file:sha256:cd"}
    assert journal_path(tmp_path, "ds").stat().st_mode & 0o077 == 0, "owner-only"


def test_forgotten_sources_are_gone_after_a_reopen(tmp_path: Path) -> None:
    with Journal(tmp_path, "ds") as journal:
        for n in range(3):
            journal.put(f"idem:{n}", SourceState(name=f"request {n}", done=True))
        journal.forget(["idem:0", "idem:2"])
    with Journal(tmp_path, "ds") as journal:
        assert set(journal.sources) == {"idem:1"}
