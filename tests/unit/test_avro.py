"""Avro: fingerprints, single-object encoding, JSON → Avro conversion with clear errors."""

from __future__ import annotations

import datetime as dt
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sharehub.avro import RecordSchema, fingerprint, load_schema, record_from_json, split_single_object
from sharehub.errors import RecordValidationError, UnknownReferenceError

PARTY_MEMBERS = load_schema("party-members")


def member(**overrides: Any) -> dict[str, Any]:
    record = {
        "member_id": "PM0000000001",
        "full_name": "Nguyễn Thị Lan",
        "gender": "FEMALE",
        "date_of_birth": "1980-02-29",
        "national_id": "087180123456",
        "phone": "0912345678",
        "ethnicity": "Kinh",
        "province_code": "82",
        "commune_code": "28315",
        "party_cell": "CB-28315-001",
        "admission_date": "2005-05-19",
        "official_date": "2006-05-19",
        "status": "OFFICIAL",
    }
    record.update(overrides)
    return record


def test_fingerprint_matches_the_avro_specification_vector() -> None:
    # The Avro spec's test data gives 7195948357588979594 as the CRC-64-AVRO of "null".
    assert struct.unpack("<q", fingerprint("null"))[0] == 7195948357588979594


def test_single_object_encoding_carries_the_schema_fingerprint() -> None:
    encoded = PARTY_MEMBERS.encode_single_object(record_from_json(PARTY_MEMBERS, member()))
    fp, body = split_single_object(encoded)
    assert encoded[:2] == b"\xc3\x01"
    assert fp == PARTY_MEMBERS.fingerprint
    assert PARTY_MEMBERS.decode(body)["full_name"] == "Nguyễn Thị Lan"


def test_decode_refuses_trailing_bytes() -> None:
    body = PARTY_MEMBERS.encode(record_from_json(PARTY_MEMBERS, member()))
    with pytest.raises(ValueError, match="trailing"):
        PARTY_MEMBERS.decode(body + b"\x00")


def test_json_dates_become_dates_and_defaults_fill_in() -> None:
    record = member()
    del record["phone"]
    datum = record_from_json(PARTY_MEMBERS, record)
    assert datum["date_of_birth"] == dt.date(1980, 2, 29)
    assert datum["phone"] is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"date_of_birth": "1980-02-30"}, "date_of_birth: '1980-02-30' is not a valid date"),
        ({"gender": "OTHER"}, "gender: 'OTHER' is not one of MALE, FEMALE"),
        ({"status": None}, "status: may not be null"),
        ({"member_id": 42}, "member_id: expected a string, got the number 42"),
        ({"nickname": "x"}, "unknown field(s) 'nickname'"),
    ],
)
def test_invalid_records_name_the_field_and_the_reason(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(RecordValidationError) as caught:
        record_from_json(PARTY_MEMBERS, member(**overrides))
    assert message in str(caught.value)


NUMBERS = RecordSchema.from_json(
    "numbers",
    {
        "type": "record",
        "name": "Numbers",
        "fields": [
            {"name": "score", "type": ["null", "double"], "default": None},
            {"name": "readings", "type": {"type": "array", "items": "float"}, "default": []},
            {"name": "label", "type": "string", "default": ""},
        ],
    },
)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_nan_or_an_infinity_is_refused_where_a_number_is_expected(value: float) -> None:
    with pytest.raises(RecordValidationError, match="score: expected a finite number"):
        record_from_json(NUMBERS, {"score": value})
    with pytest.raises(RecordValidationError, match=r"readings\[1\]: expected a finite number"):
        record_from_json(NUMBERS, {"readings": [1.5, value]})
    with pytest.raises(RecordValidationError, match="score: the number is too large for an Avro double"):
        record_from_json(NUMBERS, {"score": 10**400})
    too_large_for_a_float = r"readings\[0\]: the number is too large for an Avro float"
    with pytest.raises(RecordValidationError, match=too_large_for_a_float):
        record_from_json(NUMBERS, {"readings": [1e39]})
    assert record_from_json(NUMBERS, {"score": 1e308, "readings": [-2]}) == {
        "score": 1e308,
        "readings": [-2.0],
        "label": "",
    }


def test_a_decoded_record_names_its_first_non_finite_field() -> None:
    assert NUMBERS.non_finite_field({"score": 2.5, "readings": [0.0], "label": "nan"}) is None
    assert NUMBERS.non_finite_field({"score": None, "readings": [0.0, float("nan")]}) == "readings"
    assert NUMBERS.non_finite_field({"score": float("-inf"), "readings": []}) == "score"


def test_a_missing_required_field_is_named() -> None:
    record = member()
    del record["national_id"]
    with pytest.raises(RecordValidationError, match="national_id: required field is missing"):
        record_from_json(PARTY_MEMBERS, record)


NESTED = RecordSchema.from_json(
    "nested",
    {
        "type": "record",
        "name": "Nested",
        "fields": [
            {
                "name": "address",
                "type": {
                    "type": "record",
                    "name": "Address",
                    "fields": [
                        {"name": "street", "type": "string"},
                        {
                            "name": "rooms",
                            "type": {
                                "type": "array",
                                "items": {
                                    "type": "record",
                                    "name": "Room",
                                    "fields": [{"name": "lit", "type": "boolean"}],
                                },
                            },
                            "default": [],
                        },
                    ],
                },
            },
            {"name": "counts", "type": {"type": "map", "values": ["null", "int"]}, "default": {}},
            {
                "name": "either",
                "type": ["null", "int", {"type": "int", "logicalType": "date"}],
                "default": None,
            },
            {
                "name": "seen",
                "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}],
                "default": None,
            },
        ],
    },
)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"address": None}, "address: may not be null"),
        ({"address": {"street": "Hung Vuong", "floor": 2}}, "address: unknown field(s) 'floor'"),
        ({"address": {}}, "address.street: required field is missing"),
        (
            {"address": {"street": "Hung Vuong", "rooms": [{"lit": True}, {"lit": 1}]}},
            "address.rooms[1].lit: expected true or false, got the number 1",
        ),
        (
            {"address": {"street": "x"}, "counts": {"a": 1, "b": "2"}},
            "counts.b: expected an integer (int), got the string '2'",
        ),
        ({"address": {"street": "x"}, "either": "soon"}, "either: matches no branch of the union"),
        (
            {"address": {"street": "x"}, "seen": "2026-01-31T17:00:00"},
            "seen: timestamp '2026-01-31T17:00:00' needs a UTC offset",
        ),
        ("a string", "record: expected a JSON object, got the string 'a string'"),
    ],
)
def test_a_refusal_names_the_whole_path_to_the_value(record: Any, message: str) -> None:
    """Records inside records, lists and maps: the refusal names each step to the value, and a union of
    one branch besides null says why that branch refused it."""
    with pytest.raises(RecordValidationError) as caught:
        record_from_json(NESTED, record)
    assert str(caught.value) == message


def test_nested_values_convert_and_fill_their_defaults() -> None:
    datum = record_from_json(
        NESTED,
        {"address": {"street": "x", "rooms": [{"lit": False}]}, "counts": {"a": None}, "either": 3,
         "seen": "2026-01-31T17:00:00+07:00"},
    )  # fmt: skip
    assert datum == {
        "address": {"street": "x", "rooms": [{"lit": False}]},
        "counts": {"a": None},
        "either": 3,
        "seen": dt.datetime(2026, 1, 31, 10, 0, tzinfo=dt.UTC),
    }
    assert record_from_json(NESTED, {"address": {"street": "y"}})["address"]["rooms"] == []


def test_a_record_must_be_an_object() -> None:
    with pytest.raises(RecordValidationError, match="expected a JSON object"):
        record_from_json(PARTY_MEMBERS, ["not", "a", "record"])


def test_unknown_schema_is_a_clear_error() -> None:
    with pytest.raises(UnknownReferenceError, match="no schema named 'no-such-dataset'"):
        load_schema("no-such-dataset")


def test_every_field_carries_a_classification() -> None:
    assert PARTY_MEMBERS.fields["national_id"].classification == "secret"
    assert PARTY_MEMBERS.fields["national_id"].personal
    assert not PARTY_MEMBERS.fields["status"].personal


names = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40)
dates = st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2099, 12, 31))


@given(
    full_name=names,
    born=dates,
    admitted=dates,
    official=st.none() | dates,
    phone=st.none() | st.from_regex(r"0[35789][0-9]{8}", fullmatch=True),
    status=st.sampled_from(["PROBATIONARY", "OFFICIAL", "TRANSFERRED_OUT", "DECEASED", "EXPELLED"]),
)
def test_round_trip_of_any_party_member(
    full_name: str, born: dt.date, admitted: dt.date, official: dt.date | None, phone: str | None, status: str
) -> None:
    record = member(
        full_name=full_name,
        date_of_birth=born.isoformat(),
        admission_date=admitted.isoformat(),
        official_date=official.isoformat() if official else None,
        phone=phone,
        status=status,
    )
    datum = record_from_json(PARTY_MEMBERS, record)
    _, body = split_single_object(PARTY_MEMBERS.encode_single_object(datum))
    assert PARTY_MEMBERS.decode(body) == datum
