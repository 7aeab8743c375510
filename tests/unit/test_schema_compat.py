"""Schema evolution: a table of changes to schemas/party-members.avsc, each judged by check_compatible and
cross-checked with fastavro, the Avro library that reads the events: every change the checker accepts is
proven by writing an old event and reading it with the new schema, and every change it refuses that Avro
itself cannot resolve fails in fastavro too."""

from __future__ import annotations

import copy
import datetime as dt
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import fastavro
import pytest
from fastavro.read import SchemaResolutionError

from sharehub.avro import RecordSchema, load_schema, record_from_json
from sharehub.errors import InputError, SchemaIncompatible
from sharehub.schema_compat import check_compatible, require_compatible
from tests.unit.test_avro import member as json_member

PARTY_MEMBERS = load_schema("party-members")
Change = Callable[[dict[str, Any]], None]

MEMBER = record_from_json(PARTY_MEMBERS, json_member())


# --- building variants of party-members ----------------------------------------------------------------


def variant(*changes: Change) -> RecordSchema:
    raw = copy.deepcopy(PARTY_MEMBERS.raw)
    for change in changes:
        change(raw)
    return RecordSchema.from_json("party-members", raw)


def field_of(raw: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in raw["fields"] if f["name"] == name)


def add(spec: dict[str, Any]) -> Change:
    return lambda raw: raw["fields"].append(copy.deepcopy(spec))


def remove(name: str) -> Change:
    return lambda raw: raw["fields"].remove(field_of(raw, name))


def update(field_name: str, /, **attributes: Any) -> Change:
    """Set attributes of a field; ``None`` deletes one (``default=None`` is spelled ``default=NULL``)."""

    def change(raw: dict[str, Any]) -> None:
        spec = field_of(raw, field_name)
        for key, value in attributes.items():
            if value is None:
                spec.pop(key, None)
            else:
                spec[key] = None if value is NULL else copy.deepcopy(value)

    return change


def rename_record(name: str, aliases: list[str] | None = None) -> Change:
    def change(raw: dict[str, Any]) -> None:
        raw["name"] = name
        if aliases:
            raw["aliases"] = aliases

    return change


NULL = object()
STATUS = field_of(PARTY_MEMBERS.raw, "status")["type"]
WITHOUT_EXPELLED = [s for s in STATUS["symbols"] if s != "EXPELLED"]


def extra(name: str, avro_type: Any, **more: Any) -> dict[str, Any]:
    return {"name": name, "type": avro_type, "classification": "internal", **more}


def record_type(name: str, *fields: dict[str, Any]) -> dict[str, Any]:
    return {"type": "record", "name": name, "fields": list(fields)}


# --- the table -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One schema change. ``problems`` are substrings the checker must report (none: compatible);
    ``avro_refuses`` says fastavro fails to read ``datum``, an old event that exercises the change."""

    old: RecordSchema
    new: RecordSchema
    problems: tuple[str, ...] = ()
    avro_refuses: bool = False
    datum: dict[str, Any] = field(default_factory=dict)
    read_back: dict[str, Any] = field(default_factory=dict)


def old_event(**fields: Any) -> dict[str, Any]:
    return {**MEMBER, **fields}


def without(name: str) -> dict[str, Any]:
    return {k: v for k, v in MEMBER.items() if k != name}


EMAIL = extra("email", ["null", "string"], default=None)
YEARS_INT = extra("years_of_service", "int")
YEARS_LONG = extra("years_of_service", "long")
ADDRESS_V1 = extra("address", record_type("Address", {"name": "street", "type": "string"}))
ADDRESS_NO_DEFAULT = extra(
    "address",
    record_type("Address", {"name": "street", "type": "string"}, {"name": "ward", "type": "string"}),
)
ADDRESS_DEFAULT = extra(
    "address",
    record_type(
        "Address", {"name": "street", "type": "string"}, {"name": "ward", "type": "string", "default": ""}
    ),
)

CASES: dict[str, Case] = {
    "unchanged": Case(PARTY_MEMBERS, PARTY_MEMBERS, datum=old_event()),
    "optional field added with a default": Case(
        PARTY_MEMBERS, variant(add(EMAIL)), datum=old_event(), read_back={"email": None}
    ),
    "required field added without a default": Case(
        PARTY_MEMBERS,
        variant(add(extra("email", "string"))),
        problems=(
            "field 'email': the new version reads it (string) but version 1 did not write it "
            "(record PartyMember has no such field), and it has no default",
        ),
        avro_refuses=True,
        datum=old_event(),
    ),
    "required field added with a default": Case(
        PARTY_MEMBERS,
        variant(add(extra("email", "string", default=""))),
        datum=old_event(),
        read_back={"email": ""},
    ),
    "int widened to long": Case(
        variant(add(YEARS_INT)),
        variant(add(YEARS_LONG)),
        datum=old_event(years_of_service=31),
        read_back={"years_of_service": 31},
    ),
    "int widened to double": Case(
        variant(add(YEARS_INT)),
        variant(add(extra("years_of_service", "double"))),
        datum=old_event(years_of_service=31),
        read_back={"years_of_service": 31.0},
    ),
    "long narrowed to int": Case(
        variant(add(YEARS_LONG)),
        variant(add(YEARS_INT)),
        problems=("field 'years_of_service': version 1 wrote long, which the new type int cannot read",),
        avro_refuses=True,
        datum=old_event(years_of_service=31),
    ),
    "string read as bytes": Case(
        PARTY_MEMBERS,
        variant(update("member_id", type="bytes")),
        datum=old_event(),
        read_back={"member_id": b"PM0000000001"},
    ),
    "string changed to int": Case(
        PARTY_MEMBERS,
        variant(update("commune_code", type="int")),
        problems=("field 'commune_code': version 1 wrote string, which the new type int cannot read",),
        avro_refuses=True,
        datum=old_event(),
    ),
    "field removed": Case(PARTY_MEMBERS, variant(remove("ethnicity")), datum=old_event()),
    "field renamed without an alias": Case(
        PARTY_MEMBERS,
        variant(update("party_cell", name="cell")),
        problems=("field 'cell': the new version reads it (string) but version 1 did not write it",),
        avro_refuses=True,
        datum=old_event(),
    ),
    "field renamed with an alias": Case(
        PARTY_MEMBERS,
        variant(update("party_cell", name="cell", aliases=["party_cell"])),
        datum=old_event(),
        read_back={"cell": "CB-28315-001"},
    ),
    "enum symbol removed": Case(
        PARTY_MEMBERS,
        variant(update("status", type={**STATUS, "symbols": WITHOUT_EXPELLED})),
        problems=(
            "field 'status': symbol 'EXPELLED' written by version 1 is missing from the new enum "
            "MemberStatus (and it has no default)",
        ),
        avro_refuses=True,
        datum=old_event(status="EXPELLED"),
    ),
    "enum symbol removed, but the enum has a default": Case(
        PARTY_MEMBERS,
        variant(
            update("status", type={**STATUS, "symbols": [*WITHOUT_EXPELLED, "OTHER"], "default": "OTHER"})
        ),
        datum=old_event(status="EXPELLED"),
        read_back={"status": "OTHER"},
    ),
    "enum symbol added": Case(
        PARTY_MEMBERS,
        variant(update("status", type={**STATUS, "symbols": [*STATUS["symbols"], "RESIGNED"]})),
        datum=old_event(status="EXPELLED"),
        read_back={"status": "EXPELLED"},
    ),
    "enum renamed without an alias": Case(
        PARTY_MEMBERS,
        variant(update("status", type={**STATUS, "name": "Status"})),
        problems=(
            "field 'status': version 1 wrote enum MemberStatus, which the new type enum Status cannot read "
            "(the names differ",
        ),
        avro_refuses=True,
        datum=old_event(),
    ),
    "enum renamed with an alias": Case(
        PARTY_MEMBERS,
        variant(update("status", type={**STATUS, "name": "Status", "aliases": ["MemberStatus"]})),
        datum=old_event(),
        read_back={"status": "OFFICIAL"},
    ),
    "nullable widening of a one-branch union": Case(
        variant(update("ethnicity", type=["string"])),
        variant(update("ethnicity", type=["null", "string"])),
        datum=old_event(),
        read_back={"ethnicity": "Kinh"},
    ),
    "nullable widening of a plain type": Case(
        PARTY_MEMBERS,
        variant(update("national_id", type=["null", "string"], default=NULL)),
        datum=old_event(),
        read_back={"national_id": "087180123456"},
    ),
    "nullable narrowing": Case(
        PARTY_MEMBERS,
        variant(update("phone", type="string", default=None)),
        problems=(
            "field 'phone': version 1 may write null (a branch of [null, string]), which the new type string "
            "cannot read",
        ),
        avro_refuses=True,
        datum=old_event(phone=None),
    ),
    "union widened by promotion": Case(
        variant(add(extra("years_of_service", ["null", "int"], default=None))),
        variant(add(extra("years_of_service", ["null", "string", "long"], default=None))),
        datum=old_event(years_of_service=31),
        read_back={"years_of_service": 31},
    ),
    "plain type into a union without a matching branch": Case(
        variant(add(YEARS_LONG)),
        variant(add(extra("years_of_service", ["null", "int"], default=None))),
        problems=(
            "field 'years_of_service': version 1 wrote long, which no branch of the new type [null, int]",
        ),
        avro_refuses=True,
        datum=old_event(years_of_service=31),
    ),
    "date read as a plain int": Case(
        PARTY_MEMBERS,
        variant(update("admission_date", type="int")),
        problems=(
            "field 'admission_date': version 1 wrote int (date), the new version reads int: a logical type "
            "may not change",
        ),
        avro_refuses=False,  # Avro would hand out day numbers: the checker refuses the change of meaning
        datum=old_event(),
    ),
    "date changed to a string": Case(
        PARTY_MEMBERS,
        variant(update("admission_date", type="string")),
        problems=(
            "field 'admission_date': version 1 wrote int (date), which the new type string cannot read",
        ),
        avro_refuses=True,
        datum=old_event(),
    ),
    "nested record gains a field without a default": Case(
        variant(add(ADDRESS_V1)),
        variant(add(ADDRESS_NO_DEFAULT)),
        problems=("field 'address.ward': the new version reads it (string) but version 1 did not write it",),
        avro_refuses=True,
        datum=old_event(address={"street": "1 Hùng Vương"}),
    ),
    "nested record gains a field with a default": Case(
        variant(add(ADDRESS_V1)),
        variant(add(ADDRESS_DEFAULT)),
        datum=old_event(address={"street": "1 Hùng Vương"}),
        read_back={"address": {"street": "1 Hùng Vương", "ward": ""}},
    ),
    "array items widened": Case(
        variant(add(extra("scores", {"type": "array", "items": "int"}))),
        variant(add(extra("scores", {"type": "array", "items": "long"}))),
        datum=old_event(scores=[1, 2]),
        read_back={"scores": [1, 2]},
    ),
    "array items narrowed": Case(
        variant(add(extra("scores", {"type": "array", "items": "long"}))),
        variant(add(extra("scores", {"type": "array", "items": "int"}))),
        problems=("field 'scores[]': version 1 wrote long, which the new type int cannot read",),
        avro_refuses=True,
        datum=old_event(scores=[1, 2]),
    ),
    "map values narrowed": Case(
        variant(add(extra("notes", {"type": "map", "values": "string"}))),
        variant(add(extra("notes", {"type": "map", "values": "boolean"}))),
        problems=("field 'notes{}': version 1 wrote string, which the new type boolean cannot read",),
        avro_refuses=True,
        datum=old_event(notes={"a": "b"}),
    ),
    "fixed size changed": Case(
        variant(add(extra("digest", {"type": "fixed", "name": "Digest", "size": 4}))),
        variant(add(extra("digest", {"type": "fixed", "name": "Digest", "size": 8}))),
        problems=("field 'digest': version 1 wrote fixed Digest of 4 bytes; the new fixed Digest has 8",),
        avro_refuses=True,
        datum=old_event(digest=b"\x00\x01\x02\x03"),
    ),
    "record renamed without an alias": Case(
        PARTY_MEMBERS,
        variant(rename_record("Member")),
        problems=(
            "the record: version 1 wrote record PartyMember, which the new type record Member cannot read",
        ),
        avro_refuses=True,
        datum=old_event(),
    ),
    "record renamed with an alias": Case(
        PARTY_MEMBERS, variant(rename_record("Member", aliases=["PartyMember"])), datum=old_event()
    ),
    "classification lowered": Case(
        PARTY_MEMBERS,
        variant(update("national_id", classification="confidential")),
        problems=(
            "field 'national_id': classification lowered from secret (version 1) to confidential; "
            "it may only be raised",
        ),
        datum=old_event(),  # a governance rule: Avro itself reads the event
    ),
    "classification raised": Case(
        PARTY_MEMBERS, variant(update("ethnicity", classification="secret")), datum=old_event()
    ),
    "classification lowered under a new name": Case(
        PARTY_MEMBERS,
        variant(update("national_id", name="citizen_id", aliases=["national_id"], classification="internal")),
        problems=("field 'citizen_id': classification lowered from secret (version 1) to internal",),
        datum=old_event(),
    ),
    "personal tag dropped": Case(
        PARTY_MEMBERS,
        variant(update("full_name", personal=None)),
        problems=(
            "field 'full_name': version 1 tagged it personal and the new version drops the tag; "
            "a personal field stays personal",
        ),
        datum=old_event(),
    ),
    "personal tag added": Case(PARTY_MEMBERS, variant(update("ethnicity", personal=True)), datum=old_event()),
}


def read_with_fastavro(case: Case) -> Any:
    """Write the old event with the old schema and read it back with the new one, as a consumer would."""
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, case.old.parsed, case.datum)
    buffer.seek(0)
    return fastavro.schemaless_reader(buffer, case.old.parsed, case.new.parsed)


def cases(keep: Callable[[Case], bool]) -> list[Any]:
    return [pytest.param(case, id=name) for name, case in CASES.items() if keep(case)]


@pytest.mark.parametrize("case", cases(lambda case: True))
def test_the_checker_reports_exactly_the_expected_problems(case: Case) -> None:
    problems = check_compatible(case.new, [case.old])
    assert len(problems) == len(case.problems), problems
    for expected, problem in zip(case.problems, problems, strict=True):
        assert problem.startswith(expected), problem


@pytest.mark.parametrize("case", cases(lambda case: not case.problems))
def test_every_change_called_compatible_is_readable_by_fastavro(case: Case) -> None:
    read = read_with_fastavro(case)
    assert read == {**{k: v for k, v in case.datum.items() if k in read}, **case.read_back}
    assert set(read) == {f["name"] for f in case.new.raw["fields"]}


@pytest.mark.parametrize("case", cases(lambda case: case.avro_refuses))
def test_fastavro_refuses_too(case: Case) -> None:
    assert case.problems
    with pytest.raises(SchemaResolutionError):
        read_with_fastavro(case)


@pytest.mark.parametrize("case", cases(lambda case: bool(case.problems) and not case.avro_refuses))
def test_where_the_checker_is_stricter_than_avro_fastavro_still_reads(case: Case) -> None:
    # Governance rules and logical types: Avro resolution would let these through.
    read_with_fastavro(case)


def test_the_table_covers_every_kind_of_outcome() -> None:
    assert sum(not c.problems for c in CASES.values()) >= 15
    assert sum(c.avro_refuses for c in CASES.values()) >= 10


def test_problems_name_the_version_that_wrote_the_event() -> None:
    v1, v2 = variant(add(YEARS_INT)), variant(add(YEARS_LONG))
    assert check_compatible(v2, [v1, v2]) == []
    assert check_compatible(variant(add(YEARS_INT)), [v1, v2]) == [
        "field 'years_of_service': version 2 wrote long, which the new type int cannot read"
    ]
    removed = variant(add(YEARS_LONG), update("status", type={**STATUS, "symbols": WITHOUT_EXPELLED}))
    missing = "is missing from the new enum MemberStatus (and it has no default)"
    assert check_compatible(removed, [v1, v2]) == [
        f"field 'status': symbol 'EXPELLED' written by version 1 {missing}",
        f"field 'status': symbol 'EXPELLED' written by version 2 {missing}",
    ]


def test_an_empty_history_accepts_anything() -> None:
    assert check_compatible(variant(rename_record("Member")), []) == []


def test_every_problem_of_one_change_is_reported() -> None:
    new = variant(
        update("phone", type="string", default=None),
        update("national_id", classification="internal", personal=None),
        add(extra("email", "string")),
    )
    problems = check_compatible(new, [PARTY_MEMBERS])
    assert [p.split(":")[0] for p in problems] == [
        "field 'phone'",
        "field 'email'",
        "field 'national_id'",
        "field 'national_id'",
    ]


def test_recursive_types_terminate() -> None:
    node: dict[str, Any] = {
        "type": "record",
        "name": "Node",
        "fields": [
            {"name": "value", "type": "int"},
            {"name": "next", "type": ["null", "Node"], "default": None},
        ],
    }
    old = RecordSchema.from_json("nodes", node)
    widened = copy.deepcopy(node)
    widened["fields"][0]["type"] = "long"
    assert check_compatible(RecordSchema.from_json("nodes", widened), [old]) == []
    assert check_compatible(old, [RecordSchema.from_json("nodes", widened)]) == [
        "field 'value': version 1 wrote long, which the new type int cannot read"
    ]


def test_require_compatible() -> None:
    require_compatible(variant(add(EMAIL)), [PARTY_MEMBERS])
    new = variant(update("full_name", personal=None), update("national_id", classification="public"))
    with pytest.raises(SchemaIncompatible) as caught:
        require_compatible(new, [PARTY_MEMBERS])
    assert isinstance(caught.value, InputError)
    message = str(caught.value)
    assert message.startswith(
        "the new version of schema 'party-members' cannot read every old event (2 problems)"
    )
    for problem in check_compatible(new, [PARTY_MEMBERS]):
        assert problem in message


def test_dates_in_old_events_stay_dates() -> None:
    read = read_with_fastavro(CASES["optional field added with a default"])
    assert read["admission_date"] == dt.date(2005, 5, 19)
