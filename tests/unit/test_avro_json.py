"""The compiled JSON → Avro conversion gives exactly what the reference conversion gives: the same datum
for every valid record, the same error message for every invalid one."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sharehub.avro import load_schema, record_from_json
from sharehub.avro_json import compile_record
from sharehub.errors import RecordValidationError
from tests.unit.test_avro import member

SCHEMAS = [
    "party-members",
    "documents",
    "resolution-tasks",
    "handbook-activities",
    "handbook-attendance",
    "citizen-feedback",
]
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
_LIKELY = st.sampled_from(
    ["PM0000000001", "1990-01-01", "1990-13-40", "2026-12-06T09:30:15+07:00", "OFFICIAL", "FEMALE", "", 7]
)


def symbols(t: Any) -> list[str]:
    """Every enum symbol anywhere in a type (values a record is likely to hold, valid or not)."""
    if isinstance(t, list):
        return [s for branch in t for s in symbols(branch)]
    if isinstance(t, dict):
        found = list(t.get("symbols", []))
        for inner in ("items", "values", "type"):
            found += symbols(t.get(inner))
        return found + [s for f in t.get("fields", []) for s in symbols(f["type"])]
    return []


def outcome(convert: Any, obj: Any) -> Any:
    try:
        return ("datum", convert(obj))
    except RecordValidationError as exc:
        return ("refused", str(exc))


@settings(max_examples=100)
@given(name=st.sampled_from(SCHEMAS), data=st.data())
def test_compiled_and_reference_agree_on_any_record(name: str, data: st.DataObject) -> None:
    schema = load_schema(name)
    fields = list(schema.fields)
    base = member() if name == "party-members" else {}
    changed = data.draw(
        st.dictionaries(
            st.sampled_from([*fields, "not_a_field"]),
            _LIKELY | st.sampled_from(symbols(schema.raw) or [""]) | _JSON,
            max_size=2,
        )
    )
    record = {**base, **changed}
    for gone in data.draw(st.lists(st.sampled_from(fields), max_size=2)):
        record.pop(gone, None)
    compiled = compile_record(schema.raw)
    assert outcome(compiled, record) == outcome(lambda r: record_from_json(schema, r), record)


def test_every_symbol_and_every_field_type_of_a_member_converts_as_the_reference_does() -> None:
    schema = load_schema("party-members")
    compiled = compile_record(schema.raw)
    for name, spec in schema.fields.items():
        for value in [*symbols(spec.type), None, 7, "", "1990-01-01", [], {}]:
            record = member(**{name: value})
            assert outcome(compiled, record) == outcome(lambda r: record_from_json(schema, r), record)


@pytest.mark.parametrize("obj", [None, [], "PM1", 3, {"member_id": None}])
def test_compiled_refuses_what_is_not_a_record_as_the_reference_does(obj: Any) -> None:
    schema = load_schema("party-members")
    compiled = compile_record(schema.raw)
    assert outcome(compiled, obj) == outcome(lambda r: record_from_json(schema, r), obj)
    assert outcome(compiled, obj)[0] == "refused"


def test_a_valid_member_converts_as_the_reference_converts_it() -> None:
    schema = load_schema("party-members")
    datum = compile_record(schema.raw)(member())
    assert datum == record_from_json(schema, member())
    assert schema.encode(datum) == schema.encode(record_from_json(schema, member()))
